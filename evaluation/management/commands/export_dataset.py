import math
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.models import Campaign
from config.errors import ApplicationError
from evaluation.exports.formats import FORMATS
from evaluation.extensions import export_critic
from evaluation.management.exclusion_options import add_exclusion_arguments, exclusion_options
from evaluation.selectors.filters import AtLeast, ItemFilters
from evaluation.services import export_to_path
from evaluation.validators import validate_agree_count, validate_min_ratings


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
        parser.add_argument(
            "--min-median",
            action="append",
            default=[],
            metavar="QUESTION=X",
            help="minimum median of a question (repeatable)",
        )
        parser.add_argument(
            "--min-agree",
            action="append",
            default=[],
            metavar="QUESTION=X:M",
            help="at least M of an item's ratings of QUESTION at or above X (repeatable)",
        )
        parser.add_argument("--min-ratings", type=int, default=1, help="per question (default 1)")
        parser.add_argument("--max-spread", type=float, help="max − min of an item's ratings")
        parser.add_argument("--kinds", default="", help="comma-separated item kinds")
        add_exclusion_arguments(parser, gold_help="export gold items too (left out by default)")
        parser.add_argument(
            "--split",
            action="append",
            default=[],
            metavar="NAME",
            help="only the posts of this split (repeatable; default: every split)",
        )
        parser.add_argument(
            "--force-split",
            action="store_true",
            help="let test posts into a training format (parquet, sft-chat, alpaca, cotpd, hf)",
        )
        parser.add_argument(
            "--critic",
            metavar="NAME",
            help="also export the unrated items this critic keeps (NAME or NAME:vN); rated items "
            "pass or fail on the filters above",
        )
        parser.add_argument(
            "--min-precision",
            type=float,
            metavar="P",
            help="with --critic: the score threshold whose held-out precision reaches P",
        )
        parser.add_argument(
            "--critic-threshold", type=float, metavar="S", help="with --critic: a score threshold"
        )
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
        critic = _critic(options, campaign)
        min_mean = dict(_question_values(options["min"], "--min"))
        for question in ("plausibility", "typicality"):
            if options[f"min_{question}"] is not None:
                min_mean[question] = options[f"min_{question}"]
        min_agree = {}
        for name, spec in _question_values(options["min_agree"], "--min-agree", parse=str):
            min_agree[name] = _at_least(spec, name)
        try:
            validate_min_ratings(options["min_ratings"])
            for rule in min_agree.values():
                validate_agree_count(rule.count)
        except ValidationError as error:
            raise CommandError(error.messages[0]) from None
        filters = ItemFilters(
            min_mean=min_mean,
            kinds=tuple(k.strip() for k in options["kinds"].split(",") if k.strip()),
            min_ratings=options["min_ratings"],
            max_spread=options["max_spread"],
            min_median=dict(_question_values(options["min_median"], "--min-median")),
            min_agree=min_agree,
            **exclusion_options(options),
            splits=tuple(dict.fromkeys(name.strip() for name in options["split"])),
            force_split=options["force_split"],
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
                critic=critic,
            )
        except (ApplicationError, OSError) as error:
            raise CommandError(str(error)) from error
        finally:
            bar.close()
        counts = manifest["counts"]
        self.stdout.write(
            f"Wrote {counts['items']} items of {counts['posts']} posts to {options['output']} "
            f"(manifest: {options['output']}.manifest.json)"
        )


def _critic(options: dict, campaign: Campaign):
    """The critic selection of `--critic` with `--min-precision` or `--critic-threshold`."""
    if options["critic"] is None:
        if options["min_precision"] is not None or options["critic_threshold"] is not None:
            raise CommandError("--min-precision and --critic-threshold go with --critic")
        return None
    try:
        return export_critic(
            name=options["critic"],
            campaign=campaign,
            min_precision=options["min_precision"],
            threshold=options["critic_threshold"],
        )
    except ApplicationError as error:
        raise CommandError(error.message) from None


def _question_values(specs: list[str], option: str, parse=float) -> list[tuple[str, object]]:
    """`QUESTION=VALUE` arguments as (question, parsed value)."""
    found = []
    for spec in specs:
        name, sep, value = spec.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError(spec)
            parsed = parse(value.strip())
            if isinstance(parsed, float) and not math.isfinite(parsed):
                raise ValueError(spec)
            found.append((name.strip(), parsed))
        except ValueError:
            wanted = "QUESTION=NUMBER" if parse is float else "QUESTION=X:M"
            raise CommandError(f"{option} wants {wanted}, not {spec!r}") from None
    return found


def _at_least(spec: str, question: str) -> AtLeast:
    """`X:M` of `--min-agree`: at least M ratings at or above X."""
    value, sep, count = spec.partition(":")
    try:
        if not sep:
            raise ValueError(spec)
        if not math.isfinite(float(value)):
            raise ValueError(spec)
        return AtLeast(value=float(value), count=int(count))
    except ValueError:
        raise CommandError(
            f"--min-agree wants QUESTION=X:M (at least M ratings at or above X, M a whole "
            f"number ≥ 1), not {question}={spec!r}"
        ) from None
