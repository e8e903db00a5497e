"""Reads of judge runs: lists, a run's latest failures."""

from django.db.models import QuerySet

from annotation.models import Campaign
from judges.models import JudgeRating, JudgeRun


def judge_run_list(*, campaign: Campaign | None = None) -> QuerySet[JudgeRun]:
    runs = JudgeRun.objects.select_related("campaign", "endpoint", "launched_by")
    if campaign is not None:
        runs = runs.filter(campaign=campaign)
    return runs.prefetch_related("questions").order_by("-id")


def judge_run_failures(*, run: JudgeRun, limit: int = 20) -> list[JudgeRating]:
    """The latest failed ratings, with their raw answers and errors."""
    return list(
        run.ratings.filter(status=JudgeRating.Status.FAILED)
        .select_related("item", "item__post", "question")
        .order_by("-updated_at", "-id")[:limit]
    )
