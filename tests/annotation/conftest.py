import pytest
from django.core.cache import cache

from annotation.services import campaign_create
from tests.annotation.factories import DatasetFactory, miko_batch


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


@pytest.fixture
def dataset(db):
    return DatasetFactory(name="miko")


@pytest.fixture
def campaign(dataset, annotator, other_annotator):
    """Four MIKO posts with ten items each, k=2, two members."""
    miko_batch(dataset=dataset, posts=4)
    return campaign_create(
        name="pilot",
        dataset=dataset,
        overlap=2,
        instructions="Rate **every** item. <script>alert(1)</script>",
        members=[annotator, other_annotator],
    )


def full_ratings(view, value=3):
    """RatingInputs for every item and question of a TaskView."""
    from annotation.services import RatingInput

    return [
        RatingInput(item.item.pk, q.question.pk, value)
        for item in view.items
        for q in view.questions
    ]
