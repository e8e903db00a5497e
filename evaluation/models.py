from django.db import models
from django.db.models import Q

from annotation.models import Campaign
from generation.models import Job, JobStatus


class AgreementResult(models.Model):
    """Agreement of a campaign at one level, cached until its ratings change.

    `level` is empty for "the level each question's scale implies". `fingerprint` summarises the
    ratings and questions the result was computed from; a result whose fingerprint no longer matches
    the campaign's is stale and is recomputed (inline for small campaigns, in the background else).
    """

    Status = JobStatus

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    level = models.CharField(max_length=10, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    fingerprint = models.CharField(max_length=200, blank=True)
    result = models.JSONField(null=True, blank=True)
    # Per-annotator statistics for the dashboard, computed with the scale-level result only.
    annotators = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "level"], name="agreement_result_unique"),
            models.CheckConstraint(
                condition=Q(level__in=["", "nominal", "ordinal", "interval", "ratio"]),
                name="agreement_result_level_known",
            ),
        ]

    def __str__(self) -> str:
        return f"Agreement of campaign {self.campaign_id} ({self.level or 'scale'})"


def export_file_path(job: "ExportJob", filename: str) -> str:
    return f"exports/{job.campaign_id}/{filename}"


class ExportJob(Job):
    """An export run in the background; its file is offered only once it is complete (status,
    error, who asked and when: a `Job`'s)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    format = models.CharField(max_length=20)
    filters = models.JSONField(default=dict, blank=True)
    percent = models.PositiveSmallIntegerField(default=0)
    items_written = models.PositiveIntegerField(default=0)
    file = models.FileField(upload_to=export_file_path, blank=True, max_length=500)
    sha256 = models.CharField(max_length=64, blank=True)
    manifest = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(percent__lte=100), name="export_job_percent_lte_100"
            ),
        ]

    def __str__(self) -> str:
        return f"Export {self.pk} ({self.format}) of campaign {self.campaign_id}"

    @property
    def is_downloadable(self) -> bool:
        return self.status == self.Status.DONE and bool(self.file)
