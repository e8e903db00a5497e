from django.conf import settings
from django.db import models
from django.db.models import Q

from generation.models import Batch, Dataset, KnowledgeItem, Post


class Campaign(models.Model):
    name = models.CharField(max_length=200, unique=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="campaigns")
    batches = models.ManyToManyField(Batch, blank=True, related_name="campaigns")
    # Item kinds to rate; empty means every kind the batches produced.
    kinds = models.JSONField(default=list, blank=True)
    overlap = models.PositiveSmallIntegerField(default=3)
    lease_minutes = models.PositiveIntegerField(default=15)
    instructions = models.TextField(blank=True, help_text="Markdown, rendered safely.")
    gold_rate = models.FloatField(default=0.0)
    show_gold_accuracy = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="campaigns")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="campaign_overlap_gte_1"),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="campaign_gold_rate_0_1"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Question(models.Model):
    """A question asked of every item, on a scale named in `annotation.scales`."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="questions")
    name = models.SlugField(max_length=50)
    prompt = models.TextField()
    scale = models.CharField(max_length=20, default="1-5")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["campaign_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "name"], name="question_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class Task(models.Model):
    """A post in a campaign, with the counter the assignment claim reads and locks.

    How many of its assignments are done is not kept here: the submission would then update this
    row, and the k annotators of a post, who tend to submit together, would wait on one another's
    commits. `annotation.selectors` counts done assignments where progress is shown.
    """

    # No index of its own on `campaign` here, nor below where a composite index or unique
    # constraint starts with the column: every claim and submission writes these tables, and each
    # index is one more write per row.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="tasks", db_index=False
    )
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="+")
    is_gold = models.BooleanField(default=False)
    # Assignments that are leased or done; never above the campaign's overlap.
    taken = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "post"], name="task_post_unique"),
        ]
        indexes = [
            # Gold posts, offered to everyone, in the same order (few rows: claims of ordinary
            # posts do not write to it).
            models.Index(
                fields=["campaign", "-taken", "id"],
                condition=Q(is_gold=True),
                name="task_gold_claim_order",
            ),
            # The claim's order: closest to completion first, then oldest; gold posts apart.
            models.Index(
                fields=["campaign", "-taken", "id"],
                condition=Q(is_gold=False),
                name="task_claim_order",
            ),
        ]


class Assignment(models.Model):
    class Status(models.TextChoices):
        LEASED = "leased"
        DONE = "done"
        SKIPPED = "skipped"
        EXPIRED = "expired"

    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    task = models.ForeignKey(
        Task, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.LEASED)
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    seconds_spent = models.FloatField(null=True, blank=True)
    # Raised by every submission. A page (or client) sends the version it was shown, and a
    # submission from a page that is out of date (a second tab of the same annotator) is refused
    # instead of overwriting the answers saved since. The claim's plain INSERT relies on the
    # database default.
    version = models.PositiveIntegerField(default=0, db_default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "annotator"], name="assignment_once_per_annotator"
            ),
            # One open lease per annotator and campaign: a reload gets the same post back.
            models.UniqueConstraint(
                fields=["campaign", "annotator"],
                condition=Q(status="leased"),
                name="assignment_one_open_lease",
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "annotator", "status"]),
            models.Index(fields=["status", "expires_at"]),
            models.Index(
                fields=["campaign", "expires_at"],
                condition=Q(status="leased"),
                name="assignment_open_leases",
            ),
        ]


class Rating(models.Model):
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="ratings", db_index=False
    )
    item = models.ForeignKey(
        KnowledgeItem, on_delete=models.CASCADE, related_name="ratings", db_index=False
    )
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="ratings")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ratings"
    )
    assignment = models.ForeignKey(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="ratings"
    )
    value = models.IntegerField()
    seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "question", "annotator"], name="rating_once_per_annotator"
            ),
        ]
        indexes = [models.Index(fields=["campaign", "question"])]


class GoldAnswer(models.Model):
    """The expected answer for an item of a gold post, scored against each annotator."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="gold_answers")
    item = models.ForeignKey(KnowledgeItem, on_delete=models.CASCADE, related_name="+")
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="+")
    value = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "item", "question"], name="gold_answer_unique"
            ),
        ]
