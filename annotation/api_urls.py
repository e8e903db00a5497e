from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from annotation import apis, campaign_apis

urlpatterns = [
    path("campaigns/", apis.CampaignListApi.as_view(), name="api-campaign-list"),
    path(
        "campaigns/<id:campaign_id>/", apis.CampaignDetailApi.as_view(), name="api-campaign-detail"
    ),
    path(
        "campaigns/<id:campaign_id>/progress/",
        apis.CampaignProgressApi.as_view(),
        name="api-campaign-progress",
    ),
    path(
        "campaigns/<id:campaign_id>/gold/",
        apis.CampaignGoldApi.as_view(),
        name="api-campaign-gold",
    ),
    path(
        "campaigns/<id:campaign_id>/stuck-posts/",
        campaign_apis.CampaignStuckPostsApi.as_view(),
        name="api-campaign-stuck-posts",
    ),
    path(
        "campaigns/<id:campaign_id>/members/",
        campaign_apis.CampaignMembersApi.as_view(),
        name="api-campaign-members",
    ),
    path(
        "campaigns/<id:campaign_id>/posts/<id:post_id>/reopen/",
        campaign_apis.CampaignPostReopenApi.as_view(),
        name="api-campaign-post-reopen",
    ),
    path("campaigns/<id:campaign_id>/next/", apis.NextTaskApi.as_view(), name="api-task-next"),
    path(
        "campaigns/<id:campaign_id>/my-ratings/",
        apis.MyRatingsApi.as_view(),
        name="api-my-ratings",
    ),
    path(
        "assignments/<id:assignment_id>/",
        apis.AssignmentDetailApi.as_view(),
        name="api-assignment-detail",
    ),
    path(
        "assignments/<id:assignment_id>/submit/",
        apis.SubmitApi.as_view(),
        name="api-assignment-submit",
    ),
    path(
        "assignments/<id:assignment_id>/skip/", apis.SkipApi.as_view(), name="api-assignment-skip"
    ),
]
