"""Students API (admins only): a dataset's splits and drawing them from a seed; evaluation runs
(listed, read, launched, started again once failed); student trainings (the same)."""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin
from config.converters import query_id
from config.job_apis import JobActionApi, JobDetailApi, JobListApi
from config.pagination import paginated
from evaluation.models import ExportJob
from generation.models import Dataset, Endpoint
from students.evaluating import (
    DEFAULT_ACCEPT,
    evaluation_campaign,
    evaluation_run_create,
    evaluation_run_restart,
)
from students.models import EvaluationRun, StudentTraining
from students.selectors import dataset_splits
from students.services import splits_draw
from students.splits import DEFAULT_FRACTIONS, MAX_SEED
from students.training import MAX_STEPS, student_training_create, student_training_restart


class SplitAssignmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.ChoiceField(choices=["seed", "import"])
    seed = serializers.IntegerField(allow_null=True)
    fractions = serializers.DictField(child=serializers.FloatField())
    origin = serializers.CharField()
    created_at = serializers.DateTimeField()
    posts = serializers.DictField(child=serializers.IntegerField())


class SplitsOutputSerializer(serializers.Serializer):
    dataset = serializers.IntegerField()
    splits = serializers.DictField(child=serializers.IntegerField(), help_text="posts per split")
    unsplit = serializers.IntegerField(help_text="posts in no split")
    assignments = SplitAssignmentSerializer(many=True)


class SplitsInputSerializer(serializers.Serializer):
    fractions = serializers.DictField(
        child=serializers.FloatField(), required=False, default=lambda: dict(DEFAULT_FRACTIONS),
        help_text='fraction per split, summing to 1, e.g. {"train": 0.8, "dev": 0.1, "test": 0.1}',
    )  # fmt: skip
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, required=False, default=13)
    replace = serializers.BooleanField(
        required=False, default=False,
        help_text="draw again with another seed or fractions (posts may move between splits)",
    )  # fmt: skip


class DatasetSplitsApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(operation_id="datasets_splits_retrieve", responses=SplitsOutputSerializer)
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = get_object_or_404(Dataset, pk=dataset_id)
        return Response(SplitsOutputSerializer(dataset_splits(dataset=dataset)).data)

    @extend_schema(
        operation_id="datasets_splits_create",
        request=SplitsInputSerializer,
        responses={201: SplitsOutputSerializer, 409: None},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = get_object_or_404(Dataset, pk=dataset_id)
        data = SplitsInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        splits_draw(dataset=dataset, created_by=request.user, **data.validated_data)
        return Response(
            SplitsOutputSerializer(dataset_splits(dataset=dataset)).data,
            status=status.HTTP_201_CREATED,
        )


class EvaluationRunOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.IntegerField(source="dataset_id")
    endpoint = serializers.IntegerField(source="endpoint_id", allow_null=True)
    campaign = serializers.CharField(source="campaign.name", allow_null=True, default=None)
    batch = serializers.IntegerField(
        source="batch_id", allow_null=True, help_text="the teacher's batch (pipeline miko)"
    )
    done = serializers.IntegerField(help_text="answers done (posts, for pipeline miko)")
    total = serializers.IntegerField(help_text="answers to ask (posts, for pipeline miko)")
    page_url = serializers.SerializerMethodField()
    manifest_url = serializers.SerializerMethodField()

    class Meta:
        model = EvaluationRun
        fields = [
            "id", "dataset", "split", "endpoint", "endpoint_name", "pipeline", "campaign",
            "accept", "price_per_million", "status", "done", "total", "batch", "scores",
            "prompt_tokens", "completion_tokens", "cost", "error", "created_at", "started_at",
            "finished_at", "manifest", "page_url", "manifest_url",
        ]  # fmt: skip

    def get_page_url(self, run: EvaluationRun) -> str:
        return reverse("students:run-detail", kwargs={"evaluation_run_id": run.pk})

    def get_manifest_url(self, run: EvaluationRun) -> str:
        return reverse("students:run-manifest", kwargs={"evaluation_run_id": run.pk})


class PriceSerializer(serializers.Serializer):
    prompt = serializers.FloatField(min_value=0, help_text="per million prompt tokens")
    completion = serializers.FloatField(min_value=0, help_text="per million completion tokens")


class EvaluationRunInputSerializer(serializers.Serializer):
    dataset = serializers.SlugRelatedField(slug_field="name", queryset=Dataset.objects.all())
    split = serializers.CharField(max_length=50)
    endpoint = serializers.SlugRelatedField(slug_field="name", queryset=Endpoint.objects.all())
    pipeline = serializers.ChoiceField(
        choices=EvaluationRun.Pipeline.choices, default=EvaluationRun.Pipeline.DIRECT
    )
    campaign = serializers.CharField(
        max_length=200, required=False, allow_null=True, allow_blank=True,
        help_text="whose ratings accept the references (default: the dataset's only campaign)",
    )  # fmt: skip
    accept = serializers.DictField(
        child=serializers.FloatField(), required=False, default=lambda: dict(DEFAULT_ACCEPT),
        help_text='a reference\'s minimum mean rating per question, e.g. {"plausibility": 4}',
    )  # fmt: skip
    price = PriceSerializer(required=False, allow_null=True, help_text="for the run's cost")


@extend_schema_view(
    get=extend_schema(
        parameters=[
            OpenApiParameter("dataset", int, description="only this dataset's runs"),
            OpenApiParameter("split", str, description="only runs on this split"),
        ],
        operation_id="evaluation_runs_list",
        responses=paginated(EvaluationRunOutputSerializer),
    ),
    post=extend_schema(
        operation_id="evaluation_runs_create",
        description="Queue a run (a worker asks the endpoint and scores the answers): 201 with it "
        "queued;\nfollow it at its `page_url` or here.",
        request=EvaluationRunInputSerializer,
        responses={201: EvaluationRunOutputSerializer},
    ),
)
class EvaluationRunListApi(JobListApi):
    """Evaluation runs, newest first (their answers are in the manifest download)."""

    # JSON only: `price` is an object, and the NUL guard (config.middleware) reads JSON bodies.
    parser_classes = [JSONParser]
    output_serializer = EvaluationRunOutputSerializer
    input_serializer = EvaluationRunInputSerializer

    def rows(self, request: Request) -> QuerySet:
        runs = EvaluationRun.objects.defer("answers").order_by("-id")
        dataset_id = query_id(request, "dataset")
        if dataset_id is not None:
            runs = runs.filter(dataset_id=dataset_id)
        split = request.query_params.get("split")
        if split is not None:
            runs = runs.filter(split=split[:50])
        return runs

    def create(self, request: Request, values: dict) -> EvaluationRun:
        price = values.get("price")
        return evaluation_run_create(
            campaign=evaluation_campaign(dataset=values["dataset"], name=values.get("campaign")),
            split=values["split"],
            endpoint=values["endpoint"],
            pipeline=values["pipeline"],
            accept=values["accept"],
            price_per_million=(price["prompt"], price["completion"]) if price else None,
            created_by=request.user,
        )


class _EvaluationRunApi:
    output_serializer = EvaluationRunOutputSerializer

    def rows(self, request: Request) -> QuerySet:
        return EvaluationRun.objects.defer("answers")


@extend_schema_view(get=extend_schema(responses=EvaluationRunOutputSerializer))
class EvaluationRunDetailApi(_EvaluationRunApi, JobDetailApi):
    pass


@extend_schema_view(
    post=extend_schema(request=None, responses={202: EvaluationRunOutputSerializer, 409: None})
)
class EvaluationRunRestartApi(_EvaluationRunApi, JobActionApi):
    """Start a failed run again, from the start (its answers asked again): 202 with it queued;
    409 unless it failed."""

    def act(self, job: EvaluationRun) -> EvaluationRun:
        return evaluation_run_restart(run=job)


class StudentTrainingOutputSerializer(serializers.ModelSerializer):
    export = serializers.IntegerField(source="export_id", allow_null=True)
    endpoint = serializers.CharField(
        source="endpoint.name", allow_null=True, default=None,
        help_text="the transformers endpoint the student is registered as, once done",
    )  # fmt: skip
    losses = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="[step, loss] as the trainer logged them",
    )
    page_url = serializers.SerializerMethodField()

    class Meta:
        model = StudentTraining
        fields = [
            "id", "export", "base_model", "method", "max_steps", "status", "losses",
            "adapter_path", "endpoint", "error", "created_at", "started_at", "finished_at",
            "page_url",
        ]  # fmt: skip

    def get_page_url(self, training: StudentTraining) -> str:
        return reverse("students:training-detail", kwargs={"training_id": training.pk})


class StudentTrainingInputSerializer(serializers.Serializer):
    export = serializers.PrimaryKeyRelatedField(
        queryset=ExportJob.objects.all(), help_text="a done sft-chat export"
    )
    base_model = serializers.CharField(max_length=500, help_text="the base model's folder")
    method = serializers.ChoiceField(
        choices=StudentTraining.Method.choices, default=StudentTraining.Method.LORA
    )
    max_steps = serializers.IntegerField(min_value=1, max_value=MAX_STEPS, default=100)


@extend_schema_view(
    get=extend_schema(
        operation_id="student_trainings_list",
        responses=paginated(StudentTrainingOutputSerializer),
    ),
    post=extend_schema(
        operation_id="student_trainings_create",
        description="Queue a training on the `gpu` queue: 201 with it queued; 409 for an export "
        "not done.",
        request=StudentTrainingInputSerializer,
        responses={201: StudentTrainingOutputSerializer, 409: None},
    ),
)
class StudentTrainingListApi(JobListApi):
    """Student trainings, newest first."""

    output_serializer = StudentTrainingOutputSerializer
    input_serializer = StudentTrainingInputSerializer

    def rows(self, request: Request) -> QuerySet:
        return StudentTraining.objects.select_related("endpoint").order_by("-id")

    def create(self, request: Request, values: dict) -> StudentTraining:
        return student_training_create(created_by=request.user, **values)


class _StudentTrainingApi:
    output_serializer = StudentTrainingOutputSerializer

    def rows(self, request: Request) -> QuerySet:
        return StudentTraining.objects.select_related("endpoint")


@extend_schema_view(get=extend_schema(responses=StudentTrainingOutputSerializer))
class StudentTrainingDetailApi(_StudentTrainingApi, JobDetailApi):
    pass


@extend_schema_view(
    post=extend_schema(request=None, responses={202: StudentTrainingOutputSerializer, 409: None})
)
class StudentTrainingRestartApi(_StudentTrainingApi, JobActionApi):
    """Start a failed training again, from its first step, on the `gpu` queue: 202 with it
    queued; 409 unless it failed, or when its export was deleted."""

    def act(self, job: StudentTraining) -> StudentTraining:
        return student_training_restart(training=job)
