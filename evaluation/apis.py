"""Evaluation API (admins only): agreement, annotator statistics, export jobs and their files."""

from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin
from annotation.models import Campaign
from config.converters import query_id
from config.errors import ApplicationError
from config.pagination import paginate, paginated
from evaluation.alpha import LEVELS
from evaluation.exports.formats import FORMATS
from evaluation.extensions import export_critic
from evaluation.models import AgreementResult, ExportJob
from evaluation.selectors.annotators import annotator_statistics
from evaluation.selectors.exclusions import MIN_GOLD_ACCURACY
from evaluation.selectors.filters import AtLeast, ItemFilters
from evaluation.services import agreement_current, export_create, export_retry
from evaluation.validators import validate_agree_count, validate_min_ratings


class AgreementInputSerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=["", *LEVELS], required=False, default="")


class AgreementOutputSerializer(serializers.ModelSerializer):
    campaign = serializers.IntegerField(source="campaign_id")
    stale = serializers.SerializerMethodField()

    class Meta:
        model = AgreementResult
        fields = [
            "campaign",
            "level",
            "status",
            "stale",
            "computed_at",
            "seconds",
            "result",
            "error",
        ]

    def get_stale(self, record: AgreementResult) -> bool:
        return record.status != AgreementResult.Status.DONE


class AgreementApi(APIView):
    """Krippendorff's alpha per question and kind, with bootstrap 95% intervals.

    Cached per campaign and level; recomputed when ratings change. Large campaigns are computed
    by a worker: the answer is then 202 with `status` queued or running and the last `result`
    (null the first time); poll again.
    """

    permission_classes = [IsAdmin]

    @extend_schema(parameters=[AgreementInputSerializer], responses=AgreementOutputSerializer)
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        params = AgreementInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        record = agreement_current(campaign=campaign, level=params.validated_data["level"])
        code = status.HTTP_200_OK if record.status == "done" else status.HTTP_202_ACCEPTED
        return Response(AgreementOutputSerializer(record).data, status=code)


class AnnotatorStatisticsSerializer(serializers.Serializer):
    annotator = serializers.CharField()
    ratings = serializers.IntegerField()
    posts_done = serializers.IntegerField()
    median_seconds_per_post = serializers.FloatField(allow_null=True)
    gold_ratings = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    below_gold_accuracy = serializers.BooleanField()
    agreement_with_rest = serializers.FloatField(allow_null=True)


class AnnotatorStatisticsApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=AnnotatorStatisticsSerializer(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        rows = annotator_statistics(campaign=campaign)
        return Response(AnnotatorStatisticsSerializer(rows, many=True).data)


class AtLeastSerializer(serializers.Serializer):
    value = serializers.FloatField()
    count = serializers.IntegerField(validators=[validate_agree_count])


class ExportInputSerializer(serializers.Serializer):
    campaign = serializers.PrimaryKeyRelatedField(queryset=Campaign.objects.all())
    format = serializers.ChoiceField(choices=FORMATS)
    min_mean = serializers.DictField(
        child=serializers.FloatField(), required=False, default=dict,
        help_text='minimum mean per question, e.g. {"plausibility": 4, "typicality": 3}',
    )  # fmt: skip
    min_median = serializers.DictField(
        child=serializers.FloatField(), required=False, default=dict,
        help_text='minimum median per question, e.g. {"plausibility": 4}',
    )  # fmt: skip
    min_agree = serializers.DictField(
        child=AtLeastSerializer(), required=False, default=dict,
        help_text='at least `count` ratings at or above `value`, per question, e.g. '
        '{"plausibility": {"value": 4, "count": 2}}',
    )  # fmt: skip
    kinds = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    min_ratings = serializers.IntegerField(
        validators=[validate_min_ratings], required=False, default=1
    )
    max_spread = serializers.FloatField(min_value=0, required=False, allow_null=True, default=None)
    include_gold = serializers.BooleanField(
        required=False, default=False, help_text="export gold items too"
    )
    include_low_accuracy = serializers.BooleanField(
        required=False, default=False,
        help_text="count the ratings of annotators below min_gold_accuracy",
    )  # fmt: skip
    min_gold_accuracy = serializers.FloatField(
        min_value=0, max_value=1, required=False, default=MIN_GOLD_ACCURACY,
        help_text="annotators whose gold accuracy is below this share are left out",
    )  # fmt: skip
    splits = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, default=list, max_length=50,
        help_text="only the posts of these splits of the dataset (none: every split)",
    )  # fmt: skip
    force_split = serializers.BooleanField(
        required=False, default=False,
        help_text="let test posts into a training format (refused otherwise)",
    )  # fmt: skip
    critic = serializers.CharField(
        max_length=120, required=False, default="",
        help_text="export by critic: also the unrated items this critic (NAME or NAME:vN) keeps",
    )  # fmt: skip
    min_precision = serializers.FloatField(
        required=False, allow_null=True, default=None,
        help_text="with critic: the score threshold whose held-out precision reaches this",
    )  # fmt: skip
    critic_threshold = serializers.FloatField(
        required=False, allow_null=True, default=None, help_text="with critic: a score threshold"
    )

    def filters(self) -> ItemFilters:
        values = self.validated_data
        return ItemFilters(
            min_mean=values["min_mean"],
            kinds=tuple(values["kinds"]),
            min_ratings=values["min_ratings"],
            max_spread=values["max_spread"],
            min_median=values["min_median"],
            min_agree={name: AtLeast(**rule) for name, rule in values["min_agree"].items()},
            include_gold=values["include_gold"],
            include_low_accuracy=values["include_low_accuracy"],
            min_gold_accuracy=values["min_gold_accuracy"],
            splits=tuple(values["splits"]),
            force_split=values["force_split"],
        )


class ExportOutputSerializer(serializers.ModelSerializer):
    campaign = serializers.IntegerField(source="campaign_id")
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportJob
        fields = [
            "id", "campaign", "format", "filters", "status", "percent", "items_written", "sha256",
            "manifest", "error", "created_at", "started_at", "finished_at", "download_url",
        ]  # fmt: skip

    def get_download_url(self, job: ExportJob) -> str | None:
        if not job.is_downloadable:
            return None
        return reverse("api-export-download", kwargs={"export_id": job.pk})


class ExportListApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        parameters=[OpenApiParameter("campaign", int, description="only this campaign's exports")],
        operation_id="exports_list",
        responses=paginated(ExportOutputSerializer),
    )
    def get(self, request: Request) -> Response:
        jobs = ExportJob.objects.all()
        campaign_id = query_id(request, "campaign")
        if campaign_id is not None:
            jobs = jobs.filter(campaign_id=campaign_id)
        return paginate(request, self, jobs, ExportOutputSerializer)

    @extend_schema(request=ExportInputSerializer, responses={201: ExportOutputSerializer})
    def post(self, request: Request) -> Response:
        data = ExportInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        filters = data.filters()
        job = export_create(
            campaign=values["campaign"], fmt=values["format"], filters=filters,
            created_by=request.user, critic=_critic(values),
        )  # fmt: skip
        return Response(ExportOutputSerializer(job).data, status=status.HTTP_201_CREATED)


def _critic(values: dict):
    """The export's critic (`critic` with `min_precision` or `critic_threshold`), or None."""
    if not values["critic"]:
        if values["min_precision"] is not None or values["critic_threshold"] is not None:
            raise ApplicationError(
                "min_precision and critic_threshold go with critic", field="critic"
            )
        return None
    return export_critic(
        name=values["critic"],
        campaign=values["campaign"],
        min_precision=values["min_precision"],
        threshold=values["critic_threshold"],
    )


class ExportDetailApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=ExportOutputSerializer)
    def get(self, request: Request, export_id: int) -> Response:
        job = get_object_or_404(ExportJob, pk=export_id)
        return Response(ExportOutputSerializer(job).data)


class ExportRetryApi(APIView):
    """Run a failed or stopped export again: a new job with the same settings (409 if done)."""

    permission_classes = [IsAdmin]

    @extend_schema(
        request=None,
        responses={
            201: ExportOutputSerializer,
            409: inline_serializer("ExportDone", {"detail": serializers.CharField()}),
        },
    )
    def post(self, request: Request, export_id: int) -> Response:
        job = get_object_or_404(ExportJob.objects.select_related("campaign"), pk=export_id)
        retry = export_retry(job=job, created_by=request.user)
        return Response(ExportOutputSerializer(retry).data, status=status.HTTP_201_CREATED)


class ExportDownloadApi(APIView):
    """The export's file, once the job is done (409 before: a partial file is never served)."""

    permission_classes = [IsAdmin]

    @extend_schema(
        responses={
            (200, "application/octet-stream"): bytes,
            409: inline_serializer("ExportNotReady", {"detail": serializers.CharField()}),
        }
    )
    def get(self, request: Request, export_id: int):
        job = get_object_or_404(ExportJob, pk=export_id)
        if not job.is_downloadable:
            return Response(
                {"detail": f"export {job.pk} is {job.status}, not ready"},
                status=status.HTTP_409_CONFLICT,
            )
        return export_file_response(job)


def export_file_response(job: ExportJob) -> FileResponse:
    name = job.file.name.rsplit("/", 1)[-1]
    return FileResponse(job.file.open("rb"), as_attachment=True, filename=name)
