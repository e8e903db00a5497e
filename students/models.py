"""Splits of a dataset's posts, and evaluation runs that score an endpoint on a split."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from generation.models import Dataset, Endpoint, Job, Post


class SplitAssignment(models.Model):
    """One way posts got their split: drawn from a seed and fractions, or kept from a source file
    (an import with `--split NAME`)."""

    class Source(models.TextChoices):
        SEED = "seed", "drawn from a seed"
        IMPORT = "import", "kept from the source file"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="split_assignments")
    source = models.CharField(max_length=10, choices=Source.choices)
    seed = models.BigIntegerField(null=True, blank=True)
    # [[split name, fraction], ...] in the order given (a list: PostgreSQL's jsonb would sort the
    # keys of an object, and the order decides which split a draw falls in); empty for a split
    # kept from a file.
    fractions = models.JSONField(default=list, blank=True)
    # The file an import read, for a split kept from it.
    origin = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(source="import") | Q(seed__isnull=False),
                name="split_assignment_seeded_has_seed",
            ),
        ]

    def __str__(self) -> str:
        if self.source == self.Source.SEED:
            return f"seed {self.seed}"
        return f"from {self.origin or 'a file'}"

    @property
    def fraction_map(self) -> dict[str, float]:
        return {name: fraction for name, fraction in self.fractions}


class PostSplit(models.Model):
    """The split of one post: a post is in exactly one split."""

    post = models.OneToOneField(Post, on_delete=models.CASCADE, related_name="split")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=50)
    assignment = models.ForeignKey(SplitAssignment, on_delete=models.CASCADE, related_name="posts")

    class Meta:
        ordering = ["post_id"]
        indexes = [models.Index(fields=["dataset", "name"], name="post_split_dataset_name")]

    def __str__(self) -> str:
        return f"{self.post_id}: {self.name}"


class LeasedJob(Job):
    """A `Job` (status, error, who asked and when) whose worker holds a lease while it runs: its
    token in `runner`, renewed in `heartbeat_at` (`students.leases`), as the generation runner's
    batches do. A running row whose heartbeat is older than a lease is a dead worker's."""

    runner = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class EvaluationRun(LeasedJob):
    """An endpoint's answers for a split's posts, scored against the human-accepted references."""

    class Pipeline(models.TextChoices):
        DIRECT = "direct", "the student's single prompt (sft-chat format)"
        MIKO = "miko", "the teacher's staged pipeline (miko)"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="evaluation_runs")
    split = models.CharField(max_length=50)
    endpoint = models.ForeignKey(
        Endpoint, null=True, on_delete=models.SET_NULL, related_name="evaluation_runs"
    )
    # The endpoint's name when the run was made (the endpoint may be renamed or deleted).
    endpoint_name = models.CharField(max_length=100)
    pipeline = models.CharField(max_length=20, choices=Pipeline.choices)
    # What the run was asked, kept for the worker that runs it (and shown in the manifest): the
    # campaign whose accepted items are the references, their acceptance bounds, the sampling
    # parameters, [prompt, completion] price per million tokens, BERTScore's model.
    campaign = models.ForeignKey(
        "annotation.Campaign", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    accept = models.JSONField(default=dict, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    price_per_million = models.JSONField(null=True, blank=True)
    bertscore = models.JSONField(null=True, blank=True)
    # The teacher's batch that answered (pipeline miko).
    batch = models.ForeignKey(
        "generation.Batch", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Progress while it runs: answers done of those to ask (posts, for a staged pipeline).
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    # {"overall": {metric: value}, "kinds": {kind: {metric: value}}}; see students/scoring.py.
    scores = models.JSONField(default=dict, blank=True)
    # How the run was made: references, prompt, parameters, models, versions.
    manifest = models.JSONField(default=dict, blank=True)
    # [{"post": external id, "kind", "text", "error"}], one an answer asked for.
    answers = models.JSONField(default=list, blank=True)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.endpoint_name} on {self.split} ({self.pipeline})"

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


class StudentTraining(LeasedJob):
    """A student fine-tuned from an `sft-chat` export (LoRA through TRL and PEFT, on the `gpu`
    queue), registered as a `transformers` endpoint once trained."""

    class Method(models.TextChoices):
        LORA = "lora", "LoRA adapter"

    # Null once the export is deleted (with its campaign): the student and its losses stay.
    export = models.ForeignKey(
        "evaluation.ExportJob",
        null=True,
        on_delete=models.SET_NULL,
        related_name="student_trainings",
    )
    base_model = models.CharField(max_length=500)
    method = models.CharField(max_length=10, choices=Method.choices, default=Method.LORA)
    max_steps = models.PositiveIntegerField(default=100)
    # [[step, loss], ...] as the trainer logs them.
    losses = models.JSONField(default=list, blank=True)
    adapter_path = models.CharField(max_length=500, blank=True)
    endpoint = models.ForeignKey(
        Endpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Student {self.pk} from export {self.export_id}"
