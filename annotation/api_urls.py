from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from annotation import apis

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
