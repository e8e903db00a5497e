"""Gold accuracy is computed in one place, campaign-wide, and read by the home page and progress."""

from django.urls import reverse

from annotation.selectors import annotator_progress, gold_accuracies, gold_accuracy, task_view
from annotation.services import (
    RatingInput,
    assignment_claim,
    assignment_submit,
    gold_answers_set,
)


def _rate_everything(campaign, user, value):
    lease = assignment_claim(campaign=campaign, annotator=user)
    view = task_view(assignment=lease)
    ratings = [
        RatingInput(item.item.pk, q.question.pk, value)
        for item in view.items
        for q in view.questions
    ]
    assignment_submit(assignment=lease, ratings=ratings)


def test_one_gold_accuracy_for_the_campaign_one_annotator_and_the_pages(
    campaign, annotator, other_annotator, annotator_client
):
    items = list(campaign.tasks.order_by("id").first().post.items.order_by("position")[:2])
    gold_answers_set(
        campaign=campaign,
        answers=[(items[0].pk, "plausibility", 4), (items[1].pk, "plausibility", 2)],
    )
    campaign.gold_rate = 1.0
    campaign.save()
    assert gold_accuracies(campaign=campaign) == {}
    assert gold_accuracy(campaign=campaign, annotator=annotator) is None
    _rate_everything(campaign, annotator, 4)  # matches one of the two answers
    _rate_everything(campaign, other_annotator, 3)  # matches none
    assert gold_accuracies(campaign=campaign) == {annotator.pk: (1, 2), other_annotator.pk: (0, 2)}
    assert gold_accuracies(campaign=campaign, annotator=annotator) == {annotator.pk: (1, 2)}
    assert gold_accuracy(campaign=campaign, annotator=annotator) == 0.5
    progress = {
        row["username"]: row["gold_accuracy"] for row in annotator_progress(campaign=campaign)
    }
    assert progress == {"anna": 0.5, "otto": 0.0}
    home = annotator_client.get(reverse("annotation:home")).content.decode()
    assert "50%" in home
