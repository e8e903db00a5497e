"""The command-line options of what alpha, item scores and exports leave out (gold items, and
annotators below a gold accuracy), shared by `agreement` and `export_dataset`."""

from argparse import ArgumentParser

from django.core.management.base import CommandError

from evaluation.selectors.exclusions import MIN_GOLD_ACCURACY


def add_exclusion_arguments(parser: ArgumentParser, *, gold_help: str) -> None:
    parser.add_argument("--include-gold", action="store_true", help=gold_help)
    parser.add_argument(
        "--include-low-accuracy",
        action="store_true",
        help="count the ratings of annotators below --min-gold-accuracy (left out by default)",
    )
    parser.add_argument(
        "--min-gold-accuracy",
        type=float,
        default=MIN_GOLD_ACCURACY,
        metavar="A",
        help=f"annotators whose gold accuracy is below A (0-1) are left out "
        f"(default {MIN_GOLD_ACCURACY})",
    )


def exclusion_options(options: dict) -> dict:
    """`include_gold`, `include_low_accuracy` and `min_gold_accuracy` from the parsed options."""
    if not 0 <= options["min_gold_accuracy"] <= 1:
        raise CommandError("--min-gold-accuracy must be between 0 and 1")
    return {
        name: options[name]
        for name in ("include_gold", "include_low_accuracy", "min_gold_accuracy")
    }
