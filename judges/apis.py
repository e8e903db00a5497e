"""Judge runs API (admins only): launch, list, progress, cancel, retry, agreement with people."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin
from annotation.models import Campaign
from config.converters import MAX_ID
from config.errors import ApplicationError
from config.pagination import paginate, paginated
from config.parsers import SafeJSONParser
from evaluation.alpha import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED
from generation.limits import serializer_field
from generation.models import Batch, Endpoint
from judges.agreement import judge_agreement
from judges.models import JudgeRun
from judges.prompt import DEFAULT_VERSION
from judges.selectors import judge_run_list
from judges.services import judge_run_cancel, judge_run_create, judge_run_retry

#: The most bootstrap samples an agreement request may ask for.
MAX_BOOTSTRAP_SAMPLES = 5000


class JudgeRunOutputSerializer(serializers.ModelSerializer):
    campaign = serializers.CharField(source="campaign.name")
    endpoint = serializers.CharField(source="endpoint.name")
    questions = serializers.SerializerMethodField()
    launched_by = serializers.CharField(
        source="launched_by.username", allow_null=True, default=None
    )
    ratings_pending = serializers.IntegerField()
    percent = serializers.IntegerField()

    class Meta:
        model = JudgeRun
        fields = [
            "id",
            "campaign",
            "endpoint",
            "batch",
            "questions",
            "template_version",
            "template_hash",
            "parameters",
            "structured_output",
            "token_budget",
            "status",
            "error",
            "ratings_total",
            "ratings_done",
            "ratings_failed",
            "ratings_cached",
            "ratings_pending",
            "percent",
            "prompt_tokens",
            "completion_tokens",
            "calls",
            "launched_by",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_questions(self, run: JudgeRun) -> list[str]:
        return [q.name for q in run.questions.all()]


class JudgeRunInputSerializer(serializers.Serializer):
    campaign = serializers.SlugRelatedField(slug_field="name", queryset=Campaign.objects.all())
    endpoint = serializers.SlugRelatedField(slug_field="name", queryset=Endpoint.objects.all())
    questions = serializers.ListField(
        child=serializers.CharField(max_length=50),
        required=False,
        max_length=50,
        help_text="question names (default: all of the campaign's)",
    )
    template_version = serializers.CharField(max_length=50, default=DEFAULT_VERSION)
    batch = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, allow_null=True, help_text="batch id"
    )
    parameters = serializers.JSONField(required=False, help_text="temperature, max_tokens, ...")
    token_budget = serializer_field("token_budget", required=False, allow_null=True)


class JudgeRunListApi(APIView):
    permission_classes = [IsAdmin]
    # JSON only: `parameters` is an object, and the NUL check reads JSON bodies (config.middleware).
    parser_classes = [SafeJSONParser]

    @extend_schema(operation_id="judge_runs_list", responses=paginated(JudgeRunOutputSerializer))
    def get(self, request: Request) -> Response:
        return paginate(request, self, judge_run_list(), JudgeRunOutputSerializer)

    @extend_schema(request=JudgeRunInputSerializer, responses={201: JudgeRunOutputSerializer})
    def post(self, request: Request) -> Response:
        data = JudgeRunInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        batch_id = fields.pop("batch", None)
        batch = None
        if batch_id is not None:
            batch = Batch.objects.filter(pk=batch_id).first()
            if batch is None:
                raise ApplicationError(f"No batch {batch_id}.", field="batch")
        run = judge_run_create(launched_by=request.user, batch=batch, **fields)
        return Response(JudgeRunOutputSerializer(run).data, status=status.HTTP_201_CREATED)


class JudgeRunDetailApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=JudgeRunOutputSerializer)
    def get(self, request: Request, run_id: int) -> Response:
        run = get_object_or_404(judge_run_list(), pk=run_id)
        return Response(JudgeRunOutputSerializer(run).data)


JUDGE_RUN_ACTIONS = {"cancel": judge_run_cancel, "retry": judge_run_retry}


class JudgeRunActionApi(APIView):
    """POST /api/judge-runs/<id>/<cancel|retry>/; 409 when the run's status refuses it."""

    permission_classes = [IsAdmin]
    action_name = ""

    @extend_schema(request=None, responses={200: JudgeRunOutputSerializer, 409: None})
    def post(self, request: Request, run_id: int) -> Response:
        run = get_object_or_404(JudgeRun, pk=run_id)
        run = JUDGE_RUN_ACTIONS[self.action_name](run=run)
        return Response(JudgeRunOutputSerializer(judge_run_list().get(pk=run.pk)).data)


class AgreementQuerySerializer(serializers.Serializer):
    bootstrap_samples = serializers.IntegerField(
        min_value=0, max_value=MAX_BOOTSTRAP_SAMPLES, default=BOOTSTRAP_SAMPLES
    )
    seed = serializers.IntegerField(min_value=0, max_value=2**32 - 1, default=BOOTSTRAP_SEED)


class FigureSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    ci95 = serializers.ListField(child=serializers.FloatField(), allow_null=True)


class ThresholdSerializer(serializers.Serializer):
    x = serializers.IntegerField()
    judge_positive = serializers.IntegerField()
    people_positive = serializers.IntegerField()
    precision = FigureSerializer()
    recall = FigureSerializer()


class QuestionAgreementSerializer(serializers.Serializer):
    scale = serializers.CharField()
    level = serializers.CharField()
    n_items = serializers.IntegerField()
    n_posts = serializers.IntegerField()
    n_human_ratings = serializers.IntegerField()
    reason = serializers.CharField(required=False)
    alpha_people = FigureSerializer(required=False)
    alpha_with_judge = FigureSerializer(required=False)
    spearman = FigureSerializer(required=False)
    mae = FigureSerializer(required=False)
    thresholds = ThresholdSerializer(many=True, required=False)


class JudgeAgreementSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    campaign = serializers.CharField()
    bootstrap_samples = serializers.IntegerField()
    seed = serializers.IntegerField()
    excluded = serializers.JSONField()
    questions = serializers.DictField(child=QuestionAgreementSerializer())


class JudgeRunAgreementApi(APIView):
    """The judge against the people on the items both rated (docs/judges.md)."""

    permission_classes = [IsAdmin]

    @extend_schema(
        parameters=[
            OpenApiParameter("bootstrap_samples", int, description="0 to 5000 (default 1000)"),
            OpenApiParameter("seed", int, description="the bootstrap's seed"),
        ],
        responses=JudgeAgreementSerializer,
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = get_object_or_404(JudgeRun.objects.select_related("campaign"), pk=run_id)
        query = AgreementQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(judge_agreement(run=run, **query.validated_data))
