"""REST API: next task, submit, skip, my ratings (annotators); campaigns and progress (admins).

Annotators reach only campaigns they are members of, and only their own assignments and ratings:
anything else answers 404, so the API does not reveal what exists. A request the rules refuse
raises `AnnotationError` in the services, which the shared handler (config/errors.py) answers as
400 `{"detail": message}`.
"""

import math

from django.contrib.auth import get_user_model
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin, is_admin
from annotation.hot_path import (
    member_campaign,
    member_campaign_and_lease,
    own_assignment,
    own_assignment_to_submit,
    task_data,
)
from annotation.models import Assignment, Campaign
from annotation.rendering import render_markdown
from annotation.scales import SCALES
from annotation.selectors import (
    annotator_progress,
    campaign_progress,
    campaigns_visible_to,
    ratings_of,
)
from annotation.services import (
    QuestionSpec,
    RatingInput,
    assignment_claim,
    assignment_skip,
    assignment_submit,
    campaign_create,
    campaign_update,
    gold_answers_set,
)
from annotation.validators import (
    validate_gold_rate,
    validate_id,
    validate_lease_minutes,
    validate_overlap,
    validate_question_name,
)
from config.pagination import paginate, paginated
from generation.models import Batch, Dataset

User = get_user_model()

# An assignment's version is a PostgreSQL integer.
MAX_VERSION = 2**31 - 1


def _member_campaign(request: Request, pk: int) -> Campaign:
    campaign = member_campaign(user=request.user, campaign_id=pk)
    if campaign is None:
        raise Http404
    return campaign


def _own_assignment(request: Request, pk: int) -> Assignment:
    """One of the caller's assignments, in an active campaign they still rate in (as the pages)."""
    assignment = own_assignment(user=request.user, assignment_id=pk)
    if assignment is None:
        raise Http404
    return assignment


# --- serializers ---------------------------------------------------------------------------------


class QuestionSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(validators=[validate_question_name])
    prompt = serializers.CharField(required=False, allow_blank=True, default="")
    scale = serializers.ChoiceField(choices=list(SCALES), default="1-5")


class CampaignOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name")
    batches = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    questions = QuestionSerializer(many=True, read_only=True)
    members = serializers.SlugRelatedField(many=True, read_only=True, slug_field="username")

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "dataset",
            "batches",
            "kinds",
            "questions",
            "overlap",
            "lease_minutes",
            "instructions",
            "gold_rate",
            "show_gold_accuracy",
            "is_active",
            "members",
            "created_at",
        ]


class CampaignInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    dataset = serializers.SlugRelatedField(slug_field="name", queryset=Dataset.objects.all())
    batches = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Batch.objects.all(), required=False, default=list
    )
    kinds = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    questions = QuestionSerializer(many=True, required=False, default=list)
    overlap = serializers.IntegerField(validators=[validate_overlap], default=3)
    lease_minutes = serializers.IntegerField(validators=[validate_lease_minutes], default=15)
    instructions = serializers.CharField(required=False, allow_blank=True, default="")
    gold_rate = serializers.FloatField(validators=[validate_gold_rate], default=0.0)
    members = serializers.SlugRelatedField(
        many=True, slug_field="username", queryset=User.objects.all(), required=False, default=list
    )


class CampaignUpdateSerializer(serializers.Serializer):
    """Any field, validated as on creation; what is rated, the questions and k change only until
    the first post is handed out (the service refuses them afterwards, naming them)."""

    name = serializers.CharField(max_length=200, required=False)
    dataset = serializers.SlugRelatedField(
        slug_field="name", queryset=Dataset.objects.all(), required=False
    )
    batches = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Batch.objects.all(), required=False
    )
    kinds = serializers.ListField(child=serializers.CharField(), required=False)
    questions = QuestionSerializer(many=True, required=False)
    overlap = serializers.IntegerField(validators=[validate_overlap], required=False)
    instructions = serializers.CharField(required=False, allow_blank=True)
    lease_minutes = serializers.IntegerField(validators=[validate_lease_minutes], required=False)
    gold_rate = serializers.FloatField(validators=[validate_gold_rate], required=False)
    is_active = serializers.BooleanField(required=False)
    show_gold_accuracy = serializers.BooleanField(required=False)
    members = serializers.SlugRelatedField(
        many=True, slug_field="username", queryset=User.objects.all(), required=False
    )


class ProgressSerializer(serializers.Serializer):
    posts = serializers.IntegerField()
    posts_finished = serializers.IntegerField()
    slots_goal = serializers.IntegerField()
    slots_done = serializers.IntegerField()
    slots_leased = serializers.IntegerField()
    percent = serializers.FloatField()


class AnnotatorProgressSerializer(serializers.Serializer):
    username = serializers.CharField()
    done = serializers.IntegerField()
    leased = serializers.IntegerField()
    skipped = serializers.IntegerField()
    expired = serializers.IntegerField()
    seconds = serializers.FloatField(allow_null=True)
    gold_accuracy = serializers.FloatField(allow_null=True)


class CampaignProgressSerializer(serializers.Serializer):
    campaign = serializers.IntegerField()
    progress = ProgressSerializer()
    annotators = AnnotatorProgressSerializer(many=True)


class ChoiceSerializer(serializers.Serializer):
    value = serializers.IntegerField()
    label = serializers.CharField()


class TaskQuestionSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="question.pk")
    name = serializers.CharField(source="question.name")
    prompt = serializers.CharField(source="question.prompt")
    scale = serializers.CharField(source="question.scale")
    choices = serializers.SerializerMethodField()

    def get_choices(self, obj) -> list[dict]:
        return [{"value": value, "label": label} for value, label in obj.choices]


class TaskItemSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="item.pk")
    kind = serializers.CharField(source="item.kind")
    relation = serializers.CharField()
    text = serializers.CharField(source="item.text")
    my_values = serializers.DictField(source="values", child=serializers.IntegerField())


class TaskSerializer(serializers.Serializer):
    """One post to rate, with its items and questions; only the caller's own earlier values."""

    assignment = serializers.IntegerField(source="assignment.pk")
    status = serializers.CharField(source="assignment.status")
    version = serializers.IntegerField(
        source="assignment.version",
        help_text="Send it back with the submission: a post submitted since (from another tab or "
        "client) is then refused with a 409 instead of overwritten.",
    )
    expires_at = serializers.DateTimeField(source="assignment.expires_at")
    post = serializers.SerializerMethodField()
    description = serializers.CharField()
    items = TaskItemSerializer(many=True)
    questions = TaskQuestionSerializer(many=True)

    def get_post(self, view) -> dict:
        post = view.post
        return {
            "id": post.pk,
            "external_id": post.external_id,
            "text": post.text,
            "image": post.image.url if post.image else None,
        }


class RatingInputSerializer(serializers.Serializer):
    item = serializers.IntegerField(validators=[validate_id])
    question = serializers.IntegerField(validators=[validate_id])
    value = serializers.IntegerField()


class SubmitInputSerializer(serializers.Serializer):
    ratings = RatingInputSerializer(many=True, allow_empty=False)
    seconds = serializers.FloatField(min_value=0, required=False, allow_null=True, default=None)
    version = serializers.IntegerField(
        min_value=0,
        max_value=MAX_VERSION,
        required=False,
        allow_null=True,
        default=None,
        help_text="The task's `version` as you were shown it; when the post was submitted since, "
        "the answer is 409 and nothing is saved. Leave it out to skip the check.",
    )


class SubmitOutputSerializer(serializers.Serializer):
    assignment = serializers.IntegerField(source="pk")
    status = serializers.CharField()
    seconds_spent = serializers.FloatField(allow_null=True)
    version = serializers.IntegerField()


class MyRatingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    campaign = serializers.IntegerField(source="campaign_id")
    post = serializers.CharField(source="item.post.external_id")
    item = serializers.IntegerField(source="item_id")
    kind = serializers.CharField(source="item.kind")
    question = serializers.CharField(source="question.name")
    value = serializers.IntegerField()
    seconds = serializers.FloatField(allow_null=True)
    updated_at = serializers.DateTimeField()


class GoldAnswerInputSerializer(serializers.Serializer):
    item = serializers.IntegerField(validators=[validate_id])
    question = serializers.CharField()
    value = serializers.IntegerField()


# --- views ---------------------------------------------------------------------------------------


def _question_specs(questions: list[dict]) -> list[QuestionSpec]:
    # A PATCH is partial: the questions' defaults (no prompt, 1-5) are not filled in for it.
    return [
        QuestionSpec(q["name"], q.get("prompt") or q["name"].capitalize(), q.get("scale", "1-5"))
        for q in questions
    ]


class CampaignListApi(APIView):
    """GET: the campaigns you may see (admins: all; annotators: theirs). POST: create (admins)."""

    @extend_schema(operation_id="campaigns_list", responses=paginated(CampaignOutputSerializer))
    def get(self, request: Request) -> Response:
        campaigns = (
            campaigns_visible_to(user=request.user)
            .select_related("dataset")
            .prefetch_related("questions", "batches", "members")
            .order_by("-id")
        )
        return paginate(request, self, campaigns, CampaignOutputSerializer)

    @extend_schema(request=CampaignInputSerializer, responses={201: CampaignOutputSerializer})
    def post(self, request: Request) -> Response:
        if not is_admin(request.user):
            raise PermissionDenied(IsAdmin.message)
        serializer = CampaignInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        questions = _question_specs(data["questions"])
        campaign = campaign_create(
            **{k: v for k, v in data.items() if k != "questions"},
            questions=questions,
            created_by=request.user,
        )
        return Response(CampaignOutputSerializer(campaign).data, status=status.HTTP_201_CREATED)


class CampaignDetailApi(APIView):
    @extend_schema(responses=CampaignOutputSerializer)
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = get_object_or_404(campaigns_visible_to(user=request.user), pk=campaign_id)
        data = CampaignOutputSerializer(campaign).data
        data["instructions_html"] = str(render_markdown(campaign.instructions))
        return Response(data)

    @extend_schema(request=CampaignUpdateSerializer, responses=CampaignOutputSerializer)
    def patch(self, request: Request, campaign_id: int) -> Response:
        if not is_admin(request.user):
            raise PermissionDenied(IsAdmin.message)
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        serializer = CampaignUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        if "questions" in fields:
            fields["questions"] = _question_specs(fields["questions"])
        campaign = campaign_update(campaign=campaign, **fields)
        return Response(CampaignOutputSerializer(campaign).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, campaign_id: int) -> Response:
        if not is_admin(request.user):
            raise PermissionDenied(IsAdmin.message)
        get_object_or_404(Campaign, pk=campaign_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class CampaignProgressApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=CampaignProgressSerializer)
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        data = {
            "campaign": campaign.pk,
            "progress": campaign_progress(campaign=campaign),
            "annotators": annotator_progress(campaign=campaign),
        }
        return Response(CampaignProgressSerializer(data).data)


class CampaignGoldApi(APIView):
    """Set expected answers for items; their posts become gold posts mixed into every queue."""

    permission_classes = [IsAdmin]

    @extend_schema(request=GoldAnswerInputSerializer(many=True), responses={200: None})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        serializer = GoldAnswerInputSerializer(data=request.data, many=True)
        serializer.is_valid(raise_exception=True)
        answers = [(a["item"], a["question"], a["value"]) for a in serializer.validated_data]
        stored = gold_answers_set(campaign=campaign, answers=answers)
        return Response({"stored": len(stored)})


class NextTaskApi(APIView):
    """Claim your next post (or get back the one you hold). 204 when nothing is left for you."""

    @extend_schema(request=None, responses={200: TaskSerializer, 204: None})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign, held = member_campaign_and_lease(user=request.user, campaign_id=campaign_id)
        if campaign is None:
            raise Http404
        lease = assignment_claim(campaign=campaign, annotator=request.user, held=held)
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(task_data(assignment=lease))


class AssignmentDetailApi(APIView):
    """One of your own posts, with your values: to change a done post later."""

    @extend_schema(responses=TaskSerializer)
    def get(self, request: Request, assignment_id: int) -> Response:
        assignment = _own_assignment(request, assignment_id)
        return Response(task_data(assignment=assignment))


class SubmitApi(APIView):
    """Submit every item × question of a post. Idempotent: resubmitting updates, counts once."""

    @extend_schema(
        request=SubmitInputSerializer,
        responses={
            200: SubmitOutputSerializer,
            409: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="The post was submitted since the `version` sent (from another tab "
                'or client): nothing was saved. `{"detail": message}`',
            ),
        },
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment, targets = own_assignment_to_submit(
            user=request.user, assignment_id=assignment_id
        )
        if assignment is None:
            raise Http404
        submission = _plain_submission(request.data)
        if submission is None:
            serializer = SubmitInputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            submission = (
                [
                    RatingInput(r["item"], r["question"], r["value"])
                    for r in serializer.validated_data["ratings"]
                ],
                serializer.validated_data["seconds"],
                serializer.validated_data["version"],
            )
        ratings, seconds, version = submission
        done = assignment_submit(
            assignment=assignment,
            ratings=ratings,
            seconds=seconds,
            targets=targets,
            version=version,
        )
        return Response(
            {
                "assignment": done.pk,
                "status": done.status,
                "seconds_spent": done.seconds_spent,
                "version": done.version,
            }
        )


def _plain_submission(data) -> tuple[list[RatingInput], float | None, int | None] | None:
    """A well-formed body read without DRF's per-field machinery (20 ratings cost it ~1 ms).

    Anything unusual (strings for numbers, extra keys, a bad value) returns None, and
    `SubmitInputSerializer` judges it and words the errors.
    """
    if not isinstance(data, dict) or not set(data) <= {"ratings", "seconds", "version"}:
        return None
    ratings, seconds, version = data.get("ratings"), data.get("seconds"), data.get("version")
    if seconds is not None and not (
        type(seconds) in (int, float) and math.isfinite(seconds) and seconds >= 0
    ):
        return None
    if version is not None and not (type(version) is int and 0 <= version <= MAX_VERSION):
        return None
    if type(ratings) is not list or not ratings:
        return None
    plain = []
    for rating in ratings:
        if type(rating) is not dict or len(rating) != 3:
            return None
        item, question, value = rating.get("item"), rating.get("question"), rating.get("value")
        if type(item) is not int or type(question) is not int or type(value) is not int:
            return None
        plain.append(RatingInput(item, question, value))
    return plain, seconds, version


class SkipApi(APIView):
    @extend_schema(request=None, responses=SubmitOutputSerializer)
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = _own_assignment(request, assignment_id)
        return Response(SubmitOutputSerializer(assignment_skip(assignment=assignment)).data)


class MyRatingsApi(APIView):
    """Your own ratings in a campaign; never anyone else's."""

    @extend_schema(
        operation_id="campaigns_my_ratings_list", responses=paginated(MyRatingSerializer)
    )
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _member_campaign(request, campaign_id)
        return paginate(
            request, self, ratings_of(annotator=request.user, campaign=campaign), MyRatingSerializer
        )
