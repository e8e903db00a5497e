import hashlib
import json

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import MD5


class Dataset(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def post_image_path(post: "Post", filename: str) -> str:
    return f"posts/{post.dataset_id}/{filename}"


class Post(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="posts")
    external_id = models.CharField(max_length=255)
    text = models.TextField()
    image = models.ImageField(upload_to=post_image_path, blank=True, max_length=500)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "external_id"], name="post_external_id_unique_in_dataset"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id}:{self.external_id}"


class Endpoint(models.Model):
    class Backend(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible API"
        TRANSFORMERS = "transformers", "Local transformers model"

    name = models.CharField(max_length=100, unique=True)
    backend = models.CharField(max_length=20, choices=Backend.choices)
    base_url = models.URLField(blank=True, max_length=500)
    model_path = models.CharField(blank=True, max_length=500)
    model = models.CharField(max_length=200)
    parameters = models.JSONField(default=dict, blank=True)
    # The *name* of the environment variable that holds the API key; the key itself is never stored.
    api_key_env = models.CharField(max_length=100, blank=True)
    concurrency = models.PositiveIntegerField(default=32)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(backend="openai") & ~Q(base_url=""))
                | (Q(backend="transformers") & ~Q(model_path="")),
                name="endpoint_has_location_for_backend",
            ),
            models.CheckConstraint(
                condition=Q(concurrency__gte=1), name="endpoint_concurrency_gte_1"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def cache_key(self) -> str:
        """Which server answers, as part of every stage result's key.

        The base URL and model (`openai`), or the model path, model and adapter (`transformers`):
        two servers serving one model name never share answers. An endpoint whose parameters say
        `share_cache: true` shares them with every other such endpoint of the same model name.
        """
        if self.parameters.get("share_cache"):
            return SHARED_CACHE_KEY
        identity = {
            "backend": self.backend,
            "base_url": self.base_url.rstrip("/"),
            "model_path": self.model_path,
            "model": self.model,
            "adapter": self.parameters.get("adapter") or "",
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


SHARED_CACHE_KEY = "shared"
IMPORTED_KEY = "imported"
# The pipeline of a batch that holds other models' answers gathered to be compared blind (the
# `comparisons` app), not knowledge of its dataset: a campaign rates such a batch, and `evaluate`
# takes its references from such a campaign, only when named.
COMPARISON_PIPELINE = "comparison"


class RunnerJob(models.Model):
    """What a run the runner executes holds (`generation.runner.lease` and `loop`): batches, and
    judge runs in `judges`. Each model adds its `status`, a `Status` with queued, running,
    cancelled, done and failed among its values (a `max_length=20` CharField).

    `runner` and `heartbeat_at` are the lease: one runner at a time, by its token; a heartbeat
    older than a lease lets another take the run over. Tokens and calls are rewritten by the
    runner at every flush; a run stops (failed) once `token_budget` tokens are spent.
    """

    token_budget = models.PositiveBigIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    calls = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    runner = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED, self.Status.CANCELLED}


class Batch(RunnerJob):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PAUSED = "paused"
        CANCELLED = "cancelled"
        DONE = "done"
        FAILED = "failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="batches")
    pipeline = models.CharField(max_length=50)
    # Null for batches that were imported with their outputs rather than generated here.
    endpoint = models.ForeignKey(
        Endpoint, null=True, blank=True, on_delete=models.PROTECT, related_name="batches"
    )
    # {stage name: endpoint id} for stages that run on another endpoint than `endpoint`.
    stage_endpoints = models.JSONField(default=dict, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    limit = models.PositiveIntegerField(null=True, blank=True)
    # The ids of the posts the batch runs on, when not every post of the dataset (an evaluation
    # run's split): null for all of them. `limit` applies within them.
    post_ids = models.JSONField(null=True, blank=True)
    imported = models.BooleanField(default=False)
    source = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    posts_total = models.PositiveIntegerField(default=0)
    posts_done = models.PositiveIntegerField(default=0)
    posts_failed = models.PositiveIntegerField(default=0)
    # {stage: {"done", "failed", "skipped", "cached", "partial", "not_reached": n}}, rewritten by
    # the runner (`generation.runner.run.stage_counters`).
    stage_progress = models.JSONField(default=dict, blank=True)
    # `calls`: model calls paid for by this batch (cache hits are not calls), each attempt
    # counted as it is made.
    # While calls wait to be tried again, rewritten by the runner at every heartbeat: {"calls": n,
    # "attempt": n, "max_attempts": n, "next_try_at": ISO time, "error": "..."} of the latest
    # retry; {} when no call is waiting.
    retrying = models.JSONField(default=dict, blank=True)
    # The current run, for calls per second and time left; a resume starts a new run.
    run_started_at = models.DateTimeField(null=True, blank=True)
    run_calls = models.PositiveIntegerField(default=0)
    run_posts_finished = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return f"Batch {self.pk} ({self.pipeline} on {self.dataset_id})"

    @property
    def posts_pending(self) -> int:
        return max(0, self.posts_total - self.posts_done - self.posts_failed)

    @property
    def status_text(self) -> str:
        """What happened, in the words the list, the page, the API and `generate` all use."""
        if self.status == self.Status.DONE and self.posts_failed:
            posts = "post" if self.posts_failed == 1 else "posts"
            return f"done with {self.posts_failed} failed {posts}"
        if self.status == self.Status.FAILED and self.error:
            return f"failed: {self.error}"
        if self.status == self.Status.RUNNING and self.retrying.get("calls"):
            calls = self.retrying["calls"]
            return f"running, retrying {calls} call{'' if calls == 1 else 's'}"
        return self.status


class ModelCall(models.Model):
    """One model call as stored: the request, the raw answer, the error, tokens, latency and
    attempts (`generation.runner.outcomes.Outcome.call_fields`). Stage results, and judge ratings
    in `judges`."""

    request = models.JSONField(default=dict, blank=True)
    raw_answer = models.TextField(blank=True)
    error = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class StageResult(ModelCall):
    """One model call for one post and stage. Unique on its key, so it doubles as the cache."""

    class Status(models.TextChoices):
        OK = "ok"
        # Parsed, with some of the stage's slots missing (`parsed["missing"]`); its items are
        # stored, and "retry failed" asks again for what is missing.
        PARTIAL = "partial"
        FAILED = "failed"

    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="stage_results")
    stage = models.CharField(max_length=50)
    template_hash = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    params_hash = models.CharField(max_length=64)
    # Which server answered (see `endpoint_key`): two servers serving one model name never share
    # answers. "imported" for outputs read from a file.
    endpoint_key = models.CharField(max_length=64, default=IMPORTED_KEY)
    parameters = models.JSONField(default=dict, blank=True)
    batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="stage_results"
    )
    endpoint = models.ForeignKey(
        Endpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices)
    parsed = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["post", "stage", "template_hash", "model", "params_hash", "endpoint_key"],
                name="stage_result_key_unique",
            ),
        ]
        indexes = [models.Index(fields=["batch", "stage", "status"])]

    def __str__(self) -> str:
        return f"{self.stage} of post {self.post_id} ({self.status})"


class KnowledgeItem(models.Model):
    """A piece of generated (or imported) knowledge about a post: the unit annotators rate.

    The same knowledge (post, kind, text) exists once, whichever batches produced it: `batch` is
    the batch that first produced it, and every batch that produced or reused it is linked through
    `BatchItem`. Its provenance names the stage results it was built from, so the description or
    caption shown and exported beside it is the one its own run used.
    """

    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="items")
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=32)
    position = models.PositiveSmallIntegerField(default=0)
    text = models.TextField()
    stage_result = models.ForeignKey(
        StageResult, null=True, blank=True, on_delete=models.SET_NULL, related_name="items"
    )
    # The image description (MIKO) or caption (CoTPD) stage result its run read, if any.
    description_result = models.ForeignKey(
        StageResult, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # {"stage", "model", "endpoint", "template_hash", "stage_results": {stage: result id}, ...}
    provenance = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["post_id", "position", "id"]
        constraints = [
            # Texts can be long: the index holds their MD5, not the text.
            models.UniqueConstraint(
                F("post"), F("kind"), MD5("text"), name="knowledge_item_unique_text"
            ),
        ]
        indexes = [models.Index(fields=["post", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind}: {self.text[:60]}"


class BatchItem(models.Model):
    """A batch produced or reused this item: campaigns rate the items of their batches."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="item_links")
    item = models.ForeignKey(KnowledgeItem, on_delete=models.CASCADE, related_name="batch_links")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "batch"], name="batch_item_unique"),
        ]
        indexes = [models.Index(fields=["batch", "item"])]


class JobStatus(models.TextChoices):
    """The life of a background job: imports, exports, agreement runs."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobState(models.Model):
    """A background job's status (`JobStatus`) and, when it failed, why: critics' training."""

    Status = JobStatus

    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    error = models.TextField(blank=True)

    class Meta:
        abstract = True


class Job(JobState):
    """A background job with who asked for it and when it was asked, started and finished:
    exports (`evaluation.ExportJob`)."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


def import_file_path(job: "ImportJob", filename: str) -> str:
    return f"imports/{filename}"


class ImportJob(models.Model):
    """A file uploaded in the browser, imported in the background with progress."""

    Status = JobStatus

    dataset_name = models.CharField(max_length=200)
    dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="import_jobs"
    )
    format = models.CharField(max_length=30, default="auto")
    # The split its posts belong to, as the source ships them (generation.extensions), or "".
    split = models.CharField(max_length=50, blank=True)
    file = models.FileField(upload_to=import_file_path, max_length=500)
    images_zip = models.FileField(upload_to=import_file_path, blank=True, max_length=500)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    total_bytes = models.PositiveBigIntegerField(default=0)
    processed_bytes = models.PositiveBigIntegerField(default=0)
    posts_created = models.PositiveIntegerField(default=0)
    items_created = models.PositiveIntegerField(default=0)
    warnings = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    @property
    def percent(self) -> int:
        if not self.total_bytes:
            return 100 if self.status == self.Status.DONE else 0
        return min(100, round(100 * self.processed_bytes / self.total_bytes))
