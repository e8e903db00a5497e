"""The export form's preview: how many items a filter would keep, before the export starts."""

from annotation.models import Campaign
from evaluation.selectors.filters import ItemFilters
from evaluation.selectors.scores import item_scores


def export_item_count(*, campaign: Campaign, filters: ItemFilters) -> int:
    """The items an export with `filters` keeps, counted from the export's own statement
    (`item_scores`), so the preview and the export cannot disagree about the rule."""
    return sum(1 for _ in item_scores(campaign=campaign, filters=filters, chunk_size=10_000))
