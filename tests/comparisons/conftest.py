"""The comparisons suite's fixture: posts of a reference campaign, as `evaluate` reads them."""

import pytest

from tests.factories import campaign_create, posts_with_items


@pytest.fixture
def reference(db):
    """Campaign `references` on dataset `references-data`: three posts (p0, p1, p2) with an xWant
    and an open item each, every post with an image description."""
    campaign = campaign_create(name="references")
    items = posts_with_items(campaign, posts=3, kinds=["xWant", "open"])
    for index, post in enumerate(sorted({i.post for i in items}, key=lambda p: p.pk)):
        post.external_id = f"p{index}"
        post.save(update_fields=["external_id"])
    campaign.items = items
    return campaign
