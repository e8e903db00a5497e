from django import template

from generation.models import Dataset
from students.selectors import dataset_splits

register = template.Library()


@register.inclusion_tag("students/_dataset_splits.html")
def dataset_splits_summary(dataset: Dataset) -> dict:
    """The splits of a dataset, for its page."""
    return {
        **dataset_splits(dataset=dataset),
        "dataset_name": dataset.name,
        "dataset_id": dataset.pk,
    }
