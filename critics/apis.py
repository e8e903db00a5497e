"""Critics API (admins only): train one, read its metrics and scoring progress, resume its
scoring, order its campaign's next round by its uncertainty."""

from django.db import transaction
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin
from annotation.models import Campaign
from config.converters import MAX_ID
from config.job_apis import JobActionApi, JobDetailApi, JobListApi
from config.pagination import paginated
from critics.models import Critic
from critics.services import critic_create, critic_enqueue, critic_order_tasks, critic_schedule
from evaluation.selectors.exclusions import MIN_GOLD_ACCURACY


class CriticInputSerializer(serializers.Serializer):
    campaign = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    question = serializers.SlugField(max_length=50)
    threshold = serializers.FloatField(help_text="people would rate the item at least this")
    name = serializers.SlugField(max_length=100, required=False, default="")
    encoder = serializers.CharField(max_length=500, required=False, default="")
    order_tasks = serializers.BooleanField(required=False, default=False)
    include_gold = serializers.BooleanField(required=False, default=False)
    include_low_accuracy = serializers.BooleanField(required=False, default=False)
    min_gold_accuracy = serializers.FloatField(
        required=False, default=MIN_GOLD_ACCURACY, min_value=0, max_value=1
    )


class CriticOutputSerializer(serializers.ModelSerializer):
    campaign = serializers.IntegerField(source="campaign_id")
    question = serializers.CharField(source="question.name")
    scoring_percent = serializers.IntegerField()

    class Meta:
        model = Critic
        fields = [
            "id", "name", "version", "campaign", "question", "threshold", "kind", "encoder",
            "exclusions", "order_tasks", "status", "error", "metrics", "sklearn_version",
            "seconds", "trained_at", "scoring_status", "scoring_error", "scored", "to_score",
            "scoring_percent", "scoring_seconds", "created_at",
        ]  # fmt: skip


@extend_schema_view(
    get=extend_schema(operation_id="critics_list", responses=paginated(CriticOutputSerializer)),
    post=extend_schema(request=CriticInputSerializer, responses={201: CriticOutputSerializer}),
)
class CriticListApi(JobListApi):
    """Critics, newest first; POST trains a new one (the next version of its name)."""

    output_serializer = CriticOutputSerializer
    input_serializer = CriticInputSerializer

    def rows(self, request: Request) -> QuerySet:
        return Critic.objects.select_related("question").order_by("-id")

    def create(self, request: Request, values: dict) -> Critic:
        campaign = get_object_or_404(Campaign, pk=values["campaign"])
        with transaction.atomic():
            critic = critic_create(
                campaign=campaign,
                question=values["question"],
                threshold=values["threshold"],
                name=values["name"],
                encoder=values["encoder"],
                order_tasks=values["order_tasks"],
                exclusions={
                    key: values[key]
                    for key in ("include_gold", "include_low_accuracy", "min_gold_accuracy")
                },
                created_by=request.user,
            )
            critic_enqueue(critic=critic)
        return critic


@extend_schema_view(get=extend_schema(responses=CriticOutputSerializer))
class CriticDetailApi(JobDetailApi):
    """A critic: its held-out metrics (with the majority baseline) and its scoring progress."""

    output_serializer = CriticOutputSerializer

    def rows(self, request: Request) -> QuerySet:
        return Critic.objects.select_related("question")


@extend_schema_view(post=extend_schema(request=None, responses={202: CriticOutputSerializer}))
class CriticScoreApi(JobActionApi):
    """Score the dataset's items again from where the scoring stopped (after a dead worker, or
    for items generated since); 409 while the critic is not trained."""

    output_serializer = CriticOutputSerializer

    def rows(self, request: Request) -> QuerySet:
        return Critic.objects.select_related("question")

    def act(self, job: Critic) -> Critic:
        return critic_schedule(critic=job)


class CriticOrderTasksApi(APIView):
    """Order the campaign's unclaimed posts by the critic's uncertainty, most uncertain first."""

    permission_classes = [IsAdmin]

    @extend_schema(
        request=None,
        responses=inline_serializer("OrderedTasks", {"ordered": serializers.IntegerField()}),
    )
    def post(self, request: Request, critic_id: int) -> Response:
        critic = get_object_or_404(Critic, pk=critic_id)
        return Response({"ordered": critic_order_tasks(critic=critic)})
