"""Gold answers: the expected answer for an item and question; its post becomes a gold task."""

from collections.abc import Sequence

from django.db import transaction

from annotation.errors import AnnotationError
from annotation.models import Campaign, GoldAnswer, Task
from annotation.scales import get_scale
from annotation.selectors import campaign_items
from annotation.services.campaigns import campaign_add_tasks


@transaction.atomic
def gold_answers_set(
    *, campaign: Campaign, answers: Sequence[tuple[int, str, int]]
) -> list[GoldAnswer]:
    """Expected answers, as (item id, question name, value); their posts become gold tasks."""
    questions = {q.name: q for q in campaign.questions.all()}
    items = campaign_items(campaign=campaign).in_bulk([item_id for item_id, _, _ in answers])
    stored = []
    for item_id, question_name, value in answers:
        question = questions.get(question_name)
        if question is None:
            raise AnnotationError(f"question {question_name!r} is not in this campaign")
        item = items.get(item_id)
        if item is None:
            raise AnnotationError(f"item {item_id} is not in this campaign")
        if value not in get_scale(question.scale):
            raise AnnotationError(f"{value} is not on the scale of {question_name!r}")
        gold, _ = GoldAnswer.objects.update_or_create(
            campaign=campaign, item=item, question=question, defaults={"value": value}
        )
        stored.append(gold)
    post_ids = {item.post_id for item in items.values()}
    campaign_add_tasks(campaign=campaign, post_ids=post_ids)
    Task.objects.filter(campaign=campaign, post_id__in=post_ids).update(is_gold=True)
    return stored
