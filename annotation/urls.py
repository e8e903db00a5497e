from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from annotation import campaign_views, views

app_name = "annotation"

urlpatterns = [
    path("annotate/", views.home, name="home"),
    path("annotate/<id:pk>/", views.task_next, name="task-next"),
    path(
        "annotate/<id:pk>/assignments/<id:assignment_id>/",
        views.assignment_rate,
        name="assignment-rate",
    ),
    path(
        "annotate/<id:pk>/assignments/<id:assignment_id>/skip/",
        views.assignment_skip_view,
        name="assignment-skip",
    ),
    path("campaigns/", campaign_views.campaign_list, name="campaign-list"),
    path("campaigns/new/", campaign_views.campaign_create_view, name="campaign-create"),
    path("campaigns/<id:pk>/", campaign_views.campaign_detail, name="campaign-detail"),
    path("campaigns/<id:pk>/edit/", campaign_views.campaign_edit_view, name="campaign-edit"),
    path(
        "campaigns/<id:pk>/progress/",
        campaign_views.campaign_progress_view,
        name="campaign-progress",
    ),
    path(
        "campaigns/<id:pk>/members/add/",
        campaign_views.campaign_members_add,
        name="campaign-members-add",
    ),
    path(
        "campaigns/<id:pk>/posts/<id:post_id>/reopen/",
        campaign_views.campaign_post_reopen,
        name="campaign-post-reopen",
    ),
]
