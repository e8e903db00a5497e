"""REST API for a campaign's posts that cannot reach k, and its ways out (admins only):

- `GET /api/campaigns/<id>/stuck-posts/`: the posts the current members can never take to k;
- `POST /api/campaigns/<id>/members/`: add annotators (PATCH on the campaign replaces the list);
- `POST /api/campaigns/<id>/posts/<post id>/reopen/`: give a post back to those who skipped it or
  let their lease expire.

Refusals come from the services as `AnnotationError`, answered by the shared handler.
"""

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin
from annotation.models import Campaign
from annotation.services import assignments_reopen, campaign_add_members
from annotation.stuck_posts import stuck_posts

# How many stuck posts one answer lists (`total` counts them all).
STUCK_LIMIT = 200


class StuckPostSerializer(serializers.Serializer):
    post = serializers.IntegerField(source="post_id")
    external_id = serializers.CharField()
    done = serializers.IntegerField()
    leased = serializers.IntegerField()
    skipped = serializers.IntegerField()
    expired = serializers.IntegerField()
    available = serializers.IntegerField(help_text="Active members who never had the post.")
    missing = serializers.IntegerField(help_text="Annotators short of k, even if all available.")


class StuckReportSerializer(serializers.Serializer):
    k = serializers.IntegerField()
    members = serializers.IntegerField(help_text="Active members of the campaign.")
    total = serializers.IntegerField(help_text="Posts that cannot reach k; the first are listed.")
    posts = StuckPostSerializer(many=True)


class MembersAddInputSerializer(serializers.Serializer):
    members = serializers.SlugRelatedField(
        many=True,
        slug_field="username",
        queryset=get_user_model().objects.filter(is_active=True),
        allow_empty=False,
    )


class MembersAddOutputSerializer(serializers.Serializer):
    added = serializers.IntegerField()
    members = serializers.ListField(child=serializers.CharField())


class ReopenOutputSerializer(serializers.Serializer):
    post = serializers.IntegerField()
    reopened = serializers.IntegerField(help_text="Skipped or expired assignments given back.")


class CampaignStuckPostsApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=StuckReportSerializer)
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        report = stuck_posts(campaign=campaign, limit=STUCK_LIMIT)
        return Response(StuckReportSerializer(report).data)


class CampaignMembersApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(request=MembersAddInputSerializer, responses=MembersAddOutputSerializer)
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        serializer = MembersAddInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        new = serializer.validated_data["members"]
        added = campaign_add_members(campaign=campaign, members=new)
        members = list(campaign.members.order_by("username").values_list("username", flat=True))
        return Response({"added": added, "members": members})


class CampaignPostReopenApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(request=None, responses=ReopenOutputSerializer)
    def post(self, request: Request, campaign_id: int, post_id: int) -> Response:
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        reopened = assignments_reopen(campaign=campaign, post_id=post_id)
        return Response({"post": post_id, "reopened": reopened})
