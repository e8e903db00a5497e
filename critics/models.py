"""Critics: classifiers trained on a campaign's human ratings ("people would rate this item at
least X on question Q"), their cross-validated metrics, and their score of every item of the
dataset."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotation.models import Campaign, Question
from generation.models import JobState, JobStatus, KnowledgeItem


class RealField(models.FloatField):
    """A 4-byte float (`real`): a score needs no more, and the score table is one row per item of
    the dataset (1.37 million for MIKO)."""

    def db_type(self, connection) -> str:
        return "real"


def critic_file_path(critic: "Critic", filename: str) -> str:
    return f"critics/{critic.campaign_id}/{filename}"


class Critic(JobState):
    """One trained version of a named critic; training again under the same name adds a version.

    `status` and `error` (a `JobState`'s) are the training's; `scoring_status` the scoring of the
    dataset's items, which stores its scores chunk by chunk in id order and records the last item
    id stored (`scored_through`), so a scoring that stopped resumes after it.
    """

    class Kind(models.TextChoices):
        HASHED = "hashed", "Hashed word and character n-grams + logistic regression"
        ENCODER = "encoder", "Local encoder embeddings + logistic regression"

    name = models.SlugField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="+")
    threshold = models.FloatField(help_text="people would rate the item at least this (mean)")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.HASHED)
    encoder = models.CharField(max_length=500, blank=True, help_text="local model folder")
    # The gold and annotator exclusions the labels were computed with (as an export's filters).
    exclusions = models.JSONField(default=dict, blank=True)
    # Put the campaign's unclaimed posts in order of this critic's uncertainty once it has scored.
    order_tasks = models.BooleanField(default=False)

    metrics = models.JSONField(null=True, blank=True)
    model_file = models.FileField(upload_to=critic_file_path, blank=True, max_length=500)
    sklearn_version = models.CharField(max_length=20, blank=True)
    seconds = models.FloatField(null=True, blank=True)

    scoring_status = models.CharField(max_length=10, choices=JobStatus.choices, blank=True)
    scoring_error = models.TextField(blank=True)
    scored_through = models.BigIntegerField(default=0)
    scored = models.PositiveIntegerField(default=0)
    to_score = models.PositiveIntegerField(default=0)
    scoring_seconds = models.FloatField(null=True, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    trained_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="critic_version_unique"),
            models.CheckConstraint(
                condition=Q(kind="hashed") | ~Q(encoder=""), name="critic_encoder_named"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def label(self) -> str:
        return f"{self.question.name} ≥ {self.threshold:g}"

    @property
    def scoring_percent(self) -> int:
        if self.scoring_status == self.Status.DONE:
            return 100
        return min(99, int(100 * self.scored / self.to_score)) if self.to_score else 0


class CriticScore(models.Model):
    """A critic's probability that people would rate the item at least its threshold."""

    pk = models.CompositePrimaryKey("critic_id", "item_id")
    critic = models.ForeignKey(Critic, on_delete=models.CASCADE, related_name="+")
    # Reads go by critic (the primary key starts with it); the index below serves deleting items
    # (a dataset's or a batch's): the cascade and PostgreSQL's foreign-key check find an item's
    # scores by it, where they would scan every critic's scores once per chunk or item.
    item = models.ForeignKey(
        KnowledgeItem, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    score = RealField()

    class Meta:
        indexes = [models.Index(fields=["item"], name="critic_score_item")]

    def __str__(self) -> str:
        return f"{self.critic_id}:{self.item_id} {self.score:.3f}"
