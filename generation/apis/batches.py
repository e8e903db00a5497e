"""Batches API (admins only): launch, list, progress, pause, resume, cancel, retry failed."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin
from config.pagination import paginate, paginated
from generation.limits import serializer_field
from generation.models import Batch, Dataset, Endpoint
from generation.selectors.batches import batch_list, batch_progress
from generation.services.batches import (
    ACTIONS,
    batch_actions,
    batch_cancel,
    batch_launch,
    batch_pause,
    batch_resume,
    batch_retry_failed,
)


class StageProgressSerializer(serializers.Serializer):
    stage = serializers.CharField()
    endpoint = serializers.CharField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    cached = serializers.IntegerField()
    not_reached = serializers.IntegerField(
        help_text="posts that failed at an earlier stage, so this one is not asked for them"
    )
    pending = serializers.IntegerField()


class RetryingSerializer(serializers.Serializer):
    calls = serializers.IntegerField(help_text="calls waiting to be tried again")
    attempt = serializers.IntegerField(help_text="attempts the latest of them has made")
    max_attempts = serializers.IntegerField()
    rate_limited = serializers.BooleanField(help_text="waiting out a 429 (not bounded by attempts)")
    next_try_at = serializers.DateTimeField()
    seconds_to_next_try = serializers.IntegerField()
    error = serializers.CharField(help_text="the latest attempt's error")


class ProgressSerializer(serializers.Serializer):
    status = serializers.CharField()
    status_text = serializers.CharField(
        help_text="what happened, in words: 'done', 'done with 2 failed posts', "
        "'failed: <reason>', 'running, retrying 1 call', ..."
    )
    posts_total = serializers.IntegerField()
    posts_done = serializers.IntegerField()
    posts_failed = serializers.IntegerField()
    posts_pending = serializers.IntegerField()
    percent = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    token_budget = serializers.IntegerField(allow_null=True)
    calls = serializers.IntegerField()
    calls_per_second = serializers.FloatField(allow_null=True)
    seconds_left = serializers.IntegerField(allow_null=True)
    stages = StageProgressSerializer(many=True)
    error = serializers.CharField()
    retrying = RetryingSerializer(allow_null=True)
    percent_done = serializers.IntegerField()
    percent_failed = serializers.IntegerField()


class BatchOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name")
    endpoint = serializers.CharField(source="endpoint.name", allow_null=True, default=None)
    launched_by = serializers.CharField(
        source="launched_by.username", allow_null=True, default=None
    )
    status_text = serializers.CharField(read_only=True)
    actions = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = [
            "id",
            "dataset",
            "pipeline",
            "endpoint",
            "stage_endpoints",
            "parameters",
            "limit",
            "token_budget",
            "imported",
            "status",
            "status_text",
            "actions",
            "launched_by",
            "created_at",
            "started_at",
            "finished_at",
            "progress",
        ]

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=ACTIONS)))
    def get_actions(self, batch: Batch) -> list[str]:
        """The actions allowed now: POST /api/batches/<id>/<action>/ refuses the others (409)."""
        return batch_actions(batch)

    @extend_schema(responses=ProgressSerializer)
    def get_progress(self, batch: Batch) -> dict:
        return ProgressSerializer(batch_progress(batch=batch).as_dict()).data


class BatchInputSerializer(serializers.Serializer):
    dataset = serializers.SlugRelatedField(slug_field="name", queryset=Dataset.objects.all())
    pipeline = serializers.CharField(max_length=50)
    endpoint = serializers.SlugRelatedField(slug_field="name", queryset=Endpoint.objects.all())
    stage_endpoints = serializers.DictField(
        child=serializers.SlugRelatedField(slug_field="name", queryset=Endpoint.objects.all()),
        required=False,
        help_text="{stage: endpoint name} for stages that run on another endpoint",
    )
    limit = serializer_field("limit", required=False, allow_null=True)
    parameters = serializers.JSONField(required=False, help_text="temperature, max_tokens, ...")
    token_budget = serializer_field("token_budget", required=False, allow_null=True)


class BatchListApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(operation_id="batches_list", responses=paginated(BatchOutputSerializer))
    def get(self, request: Request) -> Response:
        return paginate(request, self, batch_list(), BatchOutputSerializer)

    @extend_schema(request=BatchInputSerializer, responses={201: BatchOutputSerializer})
    def post(self, request: Request) -> Response:
        data = BatchInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        batch = batch_launch(launched_by=request.user, **data.validated_data)
        return Response(BatchOutputSerializer(batch).data, status=status.HTTP_201_CREATED)


class BatchDetailApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=BatchOutputSerializer)
    def get(self, request: Request, batch_id: int) -> Response:
        batch = get_object_or_404(batch_list(), pk=batch_id)
        return Response(BatchOutputSerializer(batch).data)


BATCH_ACTIONS = {
    "pause": batch_pause,
    "resume": batch_resume,
    "cancel": batch_cancel,
    "retry-failed": batch_retry_failed,
}


class BatchActionApi(APIView):
    """POST /api/batches/<id>/<pause|resume|cancel|retry-failed>/; 409 when not allowed now."""

    permission_classes = [IsAdmin]
    action_name = ""

    @extend_schema(request=None, responses={200: BatchOutputSerializer, 409: None})
    def post(self, request: Request, batch_id: int) -> Response:
        batch = get_object_or_404(Batch, pk=batch_id)
        batch = BATCH_ACTIONS[self.action_name](batch=batch)
        batch = batch_list().get(pk=batch.pk)
        return Response(BatchOutputSerializer(batch).data)
