import json

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Campaign
from evaluation.alpha import LEVELS
from evaluation.services import agreement_current


class Command(BaseCommand):
    help = "Krippendorff's alpha of a campaign, per question and per item kind."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--campaign", required=True, help="campaign name")
        parser.add_argument(
            "--level", choices=LEVELS, default="", help="default: the level each scale implies"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, campaign: str, level: str, json: bool, **options) -> None:
        try:
            found = Campaign.objects.get(name=campaign)
        except Campaign.DoesNotExist:
            raise CommandError(f"no campaign named {campaign!r}") from None
        # Computed here when the ratings changed, however large the campaign: the caller waits.
        record = agreement_current(campaign=found, level=level, inline_limit=10**12)
        result = record.result
        if json:
            self.stdout.write(_dumps(result))
            return
        if not result["questions"]:
            self.stdout.write(f"Campaign {campaign} has no questions.")
        for name, figures in result["questions"].items():
            self.stdout.write(f"{name} ({figures['level']}): {_line(figures)}")
            for kind, kind_figures in figures["kinds"].items():
                self.stdout.write(f"  {kind:<16} {_line(kind_figures)}")


def _dumps(result: dict) -> str:
    return json.dumps(result, ensure_ascii=False)


def _line(figures: dict) -> str:
    counts = f"{figures['n_items']} items, {figures['n_ratings']} ratings"
    if figures["alpha"] is None:
        return f"alpha n/a ({figures['reason']}); {counts}"
    ci = figures["ci95"]
    interval = f" [95% CI {ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
    return f"alpha {figures['alpha']:.3f}{interval}; {counts}"
