"""Comparisons API (admins only): create a blind comparison of evaluation runs, list them, and read
one's report.

- `POST /api/comparisons/`: `runs` (ids, two or more), the campaign's `name`, `questions`,
  `overlap`, `lease_minutes`, `instructions`, `members`, and `seed`; 201 with the report;
- `GET /api/comparisons/?dataset=&split=`: the comparisons, newest first;
- `GET /api/comparisons/{id}/`: the report (per run and question: mean, 95% interval, posts,
  items; per pair of runs: the paired test).
"""

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin
from annotation.apis import QuestionSerializer
from annotation.scales import DEFAULT_QUESTIONS
from annotation.services import QuestionSpec
from annotation.validators import validate_lease_minutes, validate_overlap
from comparisons.models import Comparison
from comparisons.selectors import comparison_report, run_name
from comparisons.services import (
    DEFAULT_SEED,
    MAX_RUNS,
    comparison_create,
    evaluation_runs_named,
)
from config.converters import MAX_ID, query_id
from config.pagination import paginate, paginated
from config.parsers import SafeJSONParser

User = get_user_model()


class ComparisonInputSerializer(serializers.Serializer):
    runs = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        max_length=MAX_RUNS,
        help_text="evaluation run ids, two or more, done, of one dataset and split",
    )
    name = serializers.CharField(max_length=200, help_text="the campaign's (annotators read it)")
    questions = QuestionSerializer(
        many=True, required=False, default=list, help_text="default: plausibility and typicality"
    )
    overlap = serializers.IntegerField(validators=[validate_overlap], default=3)
    lease_minutes = serializers.IntegerField(validators=[validate_lease_minutes], default=15)
    instructions = serializers.CharField(required=False, allow_blank=True, default="")
    members = serializers.SlugRelatedField(
        many=True, slug_field="username", queryset=User.objects.all(), required=False, default=list
    )
    seed = serializers.IntegerField(
        min_value=0, max_value=MAX_ID, default=DEFAULT_SEED,
        help_text="orders the items' creation and draws the bootstrap samples",
    )  # fmt: skip


class NamedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class RunSummarySerializer(serializers.Serializer):
    run = serializers.IntegerField(allow_null=True, help_text="null once the run is deleted")
    name = serializers.CharField()
    endpoint = serializers.CharField()
    answers = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="errors and empty answers: not rated")
    items = serializers.IntegerField(help_text="items of the run on the compared posts")
    shared_items = serializers.IntegerField(help_text="of those, items another run wrote alike")


class Interval(serializers.ListField):
    child = serializers.FloatField()

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, min_length=2, max_length=2, **kwargs)


class RunScoreSerializer(serializers.Serializer):
    run = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()
    mean = serializers.FloatField(allow_null=True, help_text="mean over posts of the post means")
    ci95 = Interval(help_text="bootstrap 95% interval, posts resampled")
    posts = serializers.IntegerField(help_text="posts with a rated item of the run")
    items = serializers.IntegerField(help_text="items of the run rated on this question")
    ratings = serializers.IntegerField()


class PairSerializer(serializers.Serializer):
    runs = serializers.ListField(child=serializers.IntegerField(allow_null=True))
    names = serializers.ListField(child=serializers.CharField())
    posts = serializers.IntegerField(help_text="posts both runs have a score on")
    mean_difference = serializers.FloatField(allow_null=True, help_text="first run − second")
    ci95 = Interval()
    statistic = serializers.FloatField(allow_null=True, help_text="Wilcoxon signed-rank W")
    p_value = serializers.FloatField(allow_null=True)
    p_holm = serializers.FloatField(allow_null=True, help_text="Holm-adjusted over the pairs")


class QuestionReportSerializer(serializers.Serializer):
    name = serializers.CharField()
    scale = serializers.CharField()
    runs = RunScoreSerializer(many=True)
    pairs = PairSerializer(many=True)


class PostCountsSerializer(serializers.Serializer):
    compared = serializers.IntegerField()
    left_out = serializers.IntegerField()


class ComparisonReportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    campaign = NamedSerializer()
    dataset = NamedSerializer()
    split = serializers.CharField()
    seed = serializers.IntegerField()
    bootstrap_samples = serializers.IntegerField()
    posts = PostCountsSerializer()
    items = serializers.IntegerField()
    runs = RunSummarySerializer(many=True)
    questions = QuestionReportSerializer(many=True)
    created_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField()

    def get_url(self, report: dict) -> str:
        return reverse("comparisons:comparison-detail", kwargs={"comparison_id": report["id"]})


class ComparisonListSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    campaign = serializers.IntegerField(source="campaign_id")
    dataset = serializers.IntegerField(source="dataset_id")
    split = serializers.CharField()
    runs = serializers.SerializerMethodField()
    posts_compared = serializers.IntegerField()
    posts_left_out = serializers.IntegerField()
    created_at = serializers.DateTimeField()

    def get_runs(self, comparison: Comparison) -> list[str]:
        return [run_name(run) for run in comparison.runs.all()]


def _question_specs(questions: list[dict]) -> list[QuestionSpec]:
    return [
        QuestionSpec(
            q["name"],
            q.get("prompt") or DEFAULT_QUESTIONS.get(q["name"], q["name"].capitalize()),
            q.get("scale", "1-5"),
        )
        for q in questions
    ]


class ComparisonListApi(APIView):
    permission_classes = [IsAdmin]
    # JSON only: `questions` are objects, and the NUL check reads JSON bodies (config.middleware).
    parser_classes = [SafeJSONParser]

    @extend_schema(
        parameters=[
            OpenApiParameter("dataset", int, description="only this dataset's comparisons"),
            OpenApiParameter("split", str, description="only comparisons on this split"),
        ],
        operation_id="comparisons_list",
        responses=paginated(ComparisonListSerializer),
    )
    def get(self, request: Request) -> Response:
        comparisons = Comparison.objects.prefetch_related("runs").order_by("-id")
        dataset_id = query_id(request, "dataset")
        if dataset_id is not None:
            comparisons = comparisons.filter(dataset_id=dataset_id)
        split = request.query_params.get("split")
        if split is not None:
            comparisons = comparisons.filter(split=split[:50])
        return paginate(request, self, comparisons, ComparisonListSerializer)

    @extend_schema(request=ComparisonInputSerializer, responses={201: ComparisonReportSerializer})
    def post(self, request: Request) -> Response:
        serializer = ComparisonInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        runs = evaluation_runs_named(run_ids=data.pop("runs"))
        questions = _question_specs(data.pop("questions"))
        comparison = comparison_create(
            runs=runs, questions=questions, created_by=request.user, **data
        )
        report = comparison_report(comparison=comparison)
        return Response(ComparisonReportSerializer(report).data, status=status.HTTP_201_CREATED)


class ComparisonDetailApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=ComparisonReportSerializer)
    def get(self, request: Request, comparison_id: int) -> Response:
        comparison = get_object_or_404(
            Comparison.objects.select_related("campaign", "dataset"), pk=comparison_id
        )
        return Response(ComparisonReportSerializer(comparison_report(comparison=comparison)).data)
