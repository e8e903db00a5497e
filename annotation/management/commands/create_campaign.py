"""`create_campaign NAME --dataset NAME [--batch ID ...] [--kinds K,K] [--questions Q,Q]
[--scale 1-5] [--overlap 3] [--annotators A,B]`, and the options the apps above annotation add
(`annotation.extensions`: `--compare-runs 3,4`)."""

import re

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.extensions import campaign_sources
from annotation.models import Task
from annotation.scales import DEFAULT_QUESTIONS, SCALES
from annotation.services import AnnotationError, campaign_create, question_specs
from generation.models import Batch, Dataset


def _names(value: str | list[str]) -> list[str]:
    """`a,b` from the command line; call_command may also pass a list (or a string, untyped)."""
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [name.strip() for name in parts if name.strip()]


class Command(BaseCommand):
    help = "Create a rating campaign over a dataset's generated items, one task per post."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--dataset", required=True)
        parser.add_argument(
            "--batch", type=int, action="append", default=[], help="batch id (repeatable)"
        )
        parser.add_argument("--kinds", type=_names, default=[], help="item kinds, e.g. xWant,open")
        parser.add_argument("--questions", type=_names, default=list(DEFAULT_QUESTIONS))
        parser.add_argument("--scale", choices=list(SCALES), default="1-5")
        parser.add_argument("--overlap", type=int, default=3, help="annotators per post (k)")
        parser.add_argument("--lease-minutes", type=int, default=15)
        parser.add_argument("--instructions", default="", help="markdown")
        parser.add_argument(
            "--annotators", type=_names, default=[], help="usernames, comma-separated"
        )
        for source in campaign_sources():
            parser.add_argument(source.option, default="", help=source.help)

    def handle(self, *args, **options) -> None:
        # call_command(..., name=value) skips argparse's `type`: normalise here too.
        for key in ("kinds", "questions", "annotators"):
            options[key] = _names(options[key])
        if not all(re.fullmatch(r"[0-9]+", str(b).strip()) for b in options["batch"]):
            raise CommandError(f"batch ids must be numbers: {options['batch']}")
        options["batch"] = [int(b) for b in options["batch"]]
        source = next((s for s in campaign_sources() if options.get(s.dest)), None)
        if source is not None and (options["batch"] or options["kinds"]):
            raise CommandError(f"{source.option} takes no --batch or --kinds")
        try:
            dataset = Dataset.objects.get(name=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset named {options['dataset']!r}") from None
        batches = list(Batch.objects.filter(pk__in=options["batch"], dataset=dataset))
        missing = set(options["batch"]) - {b.pk for b in batches}
        if missing:
            raise CommandError(f"no batch {sorted(missing)} in dataset {dataset.name!r}")
        users = list(get_user_model().objects.filter(username__in=options["annotators"]))
        unknown = set(options["annotators"]) - {u.username for u in users}
        if unknown:
            raise CommandError(f"unknown annotator(s): {', '.join(sorted(unknown))}")
        if source is not None:
            line = source.create(
                options[source.dest],
                dataset=dataset,
                name=options["name"],
                questions=options["questions"],
                scale=options["scale"],
                overlap=options["overlap"],
                lease_minutes=options["lease_minutes"],
                instructions=options["instructions"],
                members=users,
            )
            self.stdout.write(self.style.SUCCESS(line))
            return
        try:
            campaign = campaign_create(
                name=options["name"],
                dataset=dataset,
                batches=batches,
                kinds=options["kinds"],
                questions=question_specs(names=options["questions"], scale=options["scale"]),
                overlap=options["overlap"],
                lease_minutes=options["lease_minutes"],
                instructions=options["instructions"],
                members=users,
            )
        except AnnotationError as error:
            raise CommandError(str(error)) from None
        tasks = Task.objects.filter(campaign=campaign).count()
        self.stdout.write(
            self.style.SUCCESS(
                f"campaign {campaign.name} (id {campaign.pk}): {tasks} posts, "
                f"k = {campaign.overlap}, {len(users)} annotator(s)"
            )
        )
