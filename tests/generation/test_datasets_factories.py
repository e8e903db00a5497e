import pytest

from tests.factories import KnowledgeItemFactory, PostFactory, miko_items_for

pytestmark = pytest.mark.django_db


def test_factories_build_a_consistent_post_with_ten_items():
    post = PostFactory()
    items = miko_items_for(post)
    assert [item.position for item in items] == list(range(1, 11))
    assert {item.batch.dataset_id for item in items} == {post.dataset_id}
    lone = KnowledgeItemFactory()
    assert lone.batch.dataset_id == lone.post.dataset_id
