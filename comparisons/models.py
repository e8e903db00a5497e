"""A blind comparison: the answers of two or more evaluation runs on the same posts, rated by
people in one campaign without knowing which run wrote which, and the run each item came from."""

from django.conf import settings
from django.db import models

from annotation.models import Campaign
from generation.models import Batch, Dataset, KnowledgeItem
from students.models import EvaluationRun


class Comparison(models.Model):
    """The campaign that rates the runs' answers, and the finished batch that holds them."""

    campaign = models.OneToOneField(Campaign, on_delete=models.CASCADE, related_name="comparison")
    batch = models.OneToOneField(Batch, on_delete=models.CASCADE, related_name="+")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    split = models.CharField(max_length=50)
    # Orders the items' creation (so a post's items do not follow the runs' order) and draws the
    # report's bootstrap samples.
    seed = models.BigIntegerField()
    # Posts every run answered with at least one usable answer, and posts some run answered that
    # were left out (another run asked nothing there, or all its answers there failed).
    posts_compared = models.PositiveIntegerField(default=0)
    posts_left_out = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Comparison {self.pk} ({self.campaign_id})"


class ComparedRun(models.Model):
    """One run of a comparison, in the order given, with what became of its answers."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="runs")
    # Null once the run is deleted: its label, counts and items stay.
    run = models.ForeignKey(
        EvaluationRun, null=True, on_delete=models.SET_NULL, related_name="comparisons"
    )
    position = models.PositiveSmallIntegerField()
    # The run's endpoint name when compared (admins read it in the report; annotators never).
    label = models.CharField(max_length=100)
    answers = models.PositiveIntegerField(default=0)  # all of the run's answers
    failed = models.PositiveIntegerField(default=0)  # errors and empty answers: not rated
    items = models.ManyToManyField(KnowledgeItem, through="ComparedItem", related_name="+")

    class Meta:
        ordering = ["comparison_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["comparison", "position"], name="compared_run_position"
            ),
            models.UniqueConstraint(fields=["comparison", "run"], name="compared_run_once"),
        ]

    def __str__(self) -> str:
        return f"{self.label} in comparison {self.comparison_id}"


class ComparedItem(models.Model):
    """A run wrote this item: an item two runs wrote alike is rated once and counts for both."""

    compared_run = models.ForeignKey(ComparedRun, on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey(KnowledgeItem, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["compared_run", "item"], name="compared_item_once"),
        ]
