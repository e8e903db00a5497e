import json

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Campaign
from evaluation.alpha import LEVELS
from evaluation.management.exclusion_options import add_exclusion_arguments, exclusion_options
from evaluation.selectors.agreement import campaign_agreement
from evaluation.selectors.exclusions import MIN_GOLD_ACCURACY
from evaluation.services import agreement_current


class Command(BaseCommand):
    help = (
        "Krippendorff's alpha of a campaign, per question and per item kind. Gold items and "
        "annotators below the gold accuracy threshold are left out (and reported) by default."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--campaign", required=True, help="campaign name")
        parser.add_argument(
            "--level", choices=LEVELS, default="", help="default: the level each scale implies"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        add_exclusion_arguments(parser, gold_help="count the gold items in alpha")

    def handle(self, *args, campaign: str, level: str, json: bool, **options) -> None:
        try:
            found = Campaign.objects.get(name=campaign)
        except Campaign.DoesNotExist:
            raise CommandError(f"no campaign named {campaign!r}") from None
        excluded = exclusion_options(options)
        defaults = (
            not excluded["include_gold"]
            and not excluded["include_low_accuracy"]
            and excluded["min_gold_accuracy"] == MIN_GOLD_ACCURACY
        )
        if defaults:
            # Computed here when the ratings changed, however large the campaign: the caller
            # waits. The cache holds the default exclusions only.
            result = agreement_current(campaign=found, level=level, inline_limit=10**12).result
        else:
            result = campaign_agreement(campaign=found, level=level, **excluded)
        if json:
            self.stdout.write(_dumps(result))
            return
        if not result["questions"]:
            self.stdout.write(f"Campaign {campaign} has no questions.")
        for name, figures in result["questions"].items():
            self.stdout.write(f"{name} ({figures['level']}): {_line(figures)}")
            for kind, kind_figures in figures["kinds"].items():
                self.stdout.write(f"  {kind:<16} {_line(kind_figures)}")
        for line in _excluded_lines(result):
            self.stdout.write(line)


def _dumps(result: dict) -> str:
    return json.dumps(result, ensure_ascii=False)


def _line(figures: dict) -> str:
    counts = f"{figures['n_items']} items, {figures['n_ratings']} ratings"
    if figures["alpha"] is None:
        return f"alpha n/a ({figures['reason']}); {counts}"
    ci = figures["ci95"]
    interval = f" [95% CI {ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
    return f"alpha {figures['alpha']:.3f}{interval}; {counts}"


def _excluded_lines(result: dict) -> list[str]:
    """What was left out, and alpha on the gold items alone. Results cached before exclusions
    existed have neither key."""
    excluded = result.get("excluded")
    if not excluded:
        return []
    lines = []
    if excluded["gold_items"]:
        state = "left out" if excluded["gold_items_excluded"] else "included"
        lines.append(
            f"Gold items: {excluded['gold_items']} ({excluded['gold_item_ratings']} ratings), "
            f"{state}."
        )
        for name, figures in result.get("gold", {}).items():
            lines.append(f"  gold {name}: {_line(figures)}")
    threshold = excluded["min_gold_accuracy"]
    for annotator in excluded["low_accuracy_annotators"]:
        state = "left out" if annotator["annotator"] in excluded["annotators_excluded"] else "kept"
        lines.append(
            f"Annotator {annotator['annotator']}: gold accuracy {annotator['gold_accuracy']:.0%} "
            f"of {annotator['gold_ratings']} < {threshold:.0%}, {annotator['ratings']} ratings "
            f"{state}."
        )
    return lines
