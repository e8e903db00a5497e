from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.models import Campaign
from evaluation.exports import FORMATS
from evaluation.selectors import ItemFilters
from evaluation.services import export_to_path


class Command(BaseCommand):
    help = "Export a campaign's rated items, filtered on their scores, with a manifest."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--campaign", required=True)
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument("--output", required=True, help="file (a folder for hf)")
        parser.add_argument("--min-plausibility", type=float, help="minimum mean plausibility")
        parser.add_argument("--min-typicality", type=float, help="minimum mean typicality")
        parser.add_argument(
            "--min",
            action="append",
            default=[],
            metavar="QUESTION=X",
            help="minimum mean of any question (repeatable)",
        )
        parser.add_argument("--min-ratings", type=int, default=1, help="per question (default 1)")
        parser.add_argument("--max-spread", type=float, help="max − min of an item's ratings")
        parser.add_argument("--kinds", default="", help="comma-separated item kinds")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument(
            "--drop-empty",
            action="store_true",
            help="cotpd: leave out posts none of whose items passed (default: kept, empty)",
        )

    def handle(self, *args, **options) -> None:
        try:
            campaign = Campaign.objects.get(name=options["campaign"])
        except Campaign.DoesNotExist:
            raise CommandError(f"no campaign named {options['campaign']!r}") from None
        min_mean = {}
        for spec in options["min"]:
            name, sep, value = spec.partition("=")
            try:
                min_mean[name.strip()] = float(value)
            except ValueError:
                raise CommandError(f"--min wants QUESTION=NUMBER, not {spec!r}") from None
            if not sep:
                raise CommandError(f"--min wants QUESTION=NUMBER, not {spec!r}")
        for question in ("plausibility", "typicality"):
            if options[f"min_{question}"] is not None:
                min_mean[question] = options[f"min_{question}"]
        if options["min_ratings"] < 0:
            raise CommandError("--min-ratings must be 0 or more")
        filters = ItemFilters(
            min_mean=min_mean,
            kinds=tuple(k.strip() for k in options["kinds"].split(",") if k.strip()),
            min_ratings=options["min_ratings"],
            max_spread=options["max_spread"],
        )
        bar = tqdm(
            total=100, unit="%", disable=options["no_progress"], file=self.stderr._out, leave=False
        )

        def progress(percent: int, written: int) -> None:
            bar.n = percent
            bar.set_postfix(items=written, refresh=False)
            bar.refresh()

        try:
            manifest = export_to_path(
                campaign=campaign,
                fmt=options["format"],
                filters=filters,
                output=Path(options["output"]),
                progress=progress,
                drop_empty=options["drop_empty"],
            )
        except (ValueError, OSError) as error:
            raise CommandError(str(error)) from error
        finally:
            bar.close()
        counts = manifest["counts"]
        self.stdout.write(
            f"Wrote {counts['items']} items of {counts['posts']} posts to {options['output']} "
            f"(manifest: {options['output']}.manifest.json)"
        )
