"""Fixtures of the annotation tests: a MIKO dataset and a two-member campaign over it."""

import pytest

from annotation.services import campaign_create
from tests.factories import DatasetFactory, miko_batch


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
