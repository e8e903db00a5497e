"""A critic's scores are found by item too (`critic_score_item`): deleting items, a batch's or a
dataset's, removes their scores without scanning every critic's."""

import pytest
from django.db import connection

from critics.models import Critic, CriticScore
from generation.models import KnowledgeItem
from tests.factories import campaign_create, posts_with_items

pytestmark = pytest.mark.django_db


def test_deleting_items_removes_their_scores_by_the_item_index() -> None:
    campaign = campaign_create(name="scored")
    items = posts_with_items(campaign, posts=3, kinds=["xIntent", "xWant"])
    question = campaign.questions.get(name="plausibility")
    critics = [
        Critic.objects.create(name=f"c{n}", campaign=campaign, question=question, threshold=3.5)
        for n in range(2)
    ]
    CriticScore.objects.bulk_create(
        CriticScore(critic=critic, item=item, score=0.5) for critic in critics for item in items
    )
    table = CriticScore._meta.db_table
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, table)
    assert indexes["critic_score_item"]["columns"] == ["item_id"]

    KnowledgeItem.objects.filter(pk__in=[item.pk for item in items[:2]]).delete()
    assert CriticScore.objects.count() == 2 * (len(items) - 2)
    campaign.dataset.delete()
    assert not CriticScore.objects.exists()
