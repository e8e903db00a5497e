from django.db.models import QuerySet

from annotation.models import Campaign
from generation.models import KnowledgeItem


def campaign_items(*, campaign: Campaign) -> QuerySet[KnowledgeItem]:
    """The items a campaign rates: its batches' items of its kinds, on the campaign's posts."""
    items = KnowledgeItem.objects.filter(
        batch__in=campaign.batches.all(), post__dataset_id=campaign.dataset_id
    )
    if campaign.kinds:
        items = items.filter(kind__in=campaign.kinds)
    return items
