"""Students API (admins only): a dataset's splits and drawing them from a seed; evaluation runs."""

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin
from config.converters import query_id
from config.pagination import paginate, paginated
from generation.models import Dataset
from students.models import EvaluationRun
from students.selectors import dataset_splits
from students.services import splits_draw
from students.splits import DEFAULT_FRACTIONS, MAX_SEED


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
    manifest_url = serializers.SerializerMethodField()

    class Meta:
        model = EvaluationRun
        fields = [
            "id", "dataset", "split", "endpoint", "endpoint_name", "pipeline", "status", "scores",
            "prompt_tokens", "completion_tokens", "cost", "error", "created_at", "finished_at",
            "manifest", "manifest_url",
        ]  # fmt: skip

    def get_manifest_url(self, run: EvaluationRun) -> str:
        return reverse("students:run-manifest", kwargs={"evaluation_run_id": run.pk})


class EvaluationRunListApi(APIView):
    """Evaluation runs, newest first (their answers are in the manifest download)."""

    permission_classes = [IsAdmin]

    @extend_schema(
        parameters=[
            OpenApiParameter("dataset", int, description="only this dataset's runs"),
            OpenApiParameter("split", str, description="only runs on this split"),
        ],
        operation_id="evaluation_runs_list",
        responses=paginated(EvaluationRunOutputSerializer),
    )
    def get(self, request: Request) -> Response:
        runs = EvaluationRun.objects.defer("answers").order_by("-id")
        dataset_id = query_id(request, "dataset")
        if dataset_id is not None:
            runs = runs.filter(dataset_id=dataset_id)
        split = request.query_params.get("split")
        if split is not None:
            runs = runs.filter(split=split[:50])
        return paginate(request, self, runs, EvaluationRunOutputSerializer)


class EvaluationRunDetailApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=EvaluationRunOutputSerializer)
    def get(self, request: Request, evaluation_run_id: int) -> Response:
        run = get_object_or_404(EvaluationRun.objects.defer("answers"), pk=evaluation_run_id)
        return Response(EvaluationRunOutputSerializer(run).data)
