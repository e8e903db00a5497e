"""Judge runs: an endpoint rating a campaign's items on its questions, as a model rater.

A judge's ratings live here, never in `annotation.Rating`: human alpha, item scores and exports
read people only unless they are asked to add a judge (docs/judges.md).
"""

from django.db import models
from django.db.models import Q

from annotation.models import Campaign, Question
from generation.models import Batch, Endpoint, KnowledgeItem, ModelCall, RunnerJob


class JudgeRun(RunnerJob):
    """A judge run: its lease, tokens, calls, budget and times are a `RunnerJob`'s."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        CANCELLED = "cancelled"
        DONE = "done"
        FAILED = "failed"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="judge_runs")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="judge_runs")
    # Only the items of this batch among the campaign's, when set.
    batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="judge_runs"
    )
    questions = models.ManyToManyField(Question, related_name="judge_runs")
    # The prompt template as it was when the run was created: its version, text and sha256.
    template_version = models.CharField(max_length=50)
    template_text = models.TextField()
    template_hash = models.CharField(max_length=64)
    # Effective sampling parameters (the endpoint's and the run's), and whether the endpoint was
    # asked for a JSON-schema answer.
    parameters = models.JSONField(default=dict, blank=True)
    structured_output = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    # Counters over (item, question) pairs, rewritten by the runner at every flush.
    ratings_total = models.PositiveIntegerField(default=0)
    ratings_done = models.PositiveIntegerField(default=0)
    ratings_failed = models.PositiveIntegerField(default=0)
    ratings_cached = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Judge run {self.pk} ({self.endpoint_id} on {self.campaign_id})"

    @property
    def ratings_pending(self) -> int:
        return max(0, self.ratings_total - self.ratings_done - self.ratings_failed)

    @property
    def percent(self) -> int:
        if not self.ratings_total:
            return 100 if self.status == self.Status.DONE else 0
        finished = self.ratings_done + self.ratings_failed
        return min(100, round(100 * finished / self.ratings_total))


class JudgeRating(ModelCall):
    """One (item, question) the judge was asked: its value, or the raw answer and the error (the
    call as a `ModelCall` stores it).

    `call_key` is the sha256 of the call (endpoint, model, request): a rating of another run
    under the same key is copied (`cached`), never asked again.
    """

    class Status(models.TextChoices):
        OK = "ok"
        FAILED = "failed"

    run = models.ForeignKey(JudgeRun, on_delete=models.CASCADE, related_name="ratings")
    item = models.ForeignKey(KnowledgeItem, on_delete=models.CASCADE, related_name="+")
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="+")
    call_key = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    value = models.IntegerField(null=True, blank=True)
    cached = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "item", "question"], name="judge_rating_once_per_run"
            ),
            models.CheckConstraint(
                condition=Q(status="failed") | Q(value__isnull=False),
                name="judge_rating_ok_has_value",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.question_id} of item {self.item_id}: {self.value} ({self.status})"
