from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from annotation import views

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
    path("campaigns/", views.campaign_list, name="campaign-list"),
    path("campaigns/new/", views.campaign_create_view, name="campaign-create"),
    path("campaigns/<id:pk>/", views.campaign_detail, name="campaign-detail"),
    path("campaigns/<id:pk>/progress/", views.campaign_progress_view, name="campaign-progress"),
]
