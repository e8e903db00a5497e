from django.urls import path

from annotation import views

app_name = "annotation"

urlpatterns = [
    path("annotate/", views.home, name="home"),
    path("annotate/<int:pk>/", views.task_next, name="task-next"),
    path(
        "annotate/<int:pk>/assignments/<int:assignment_id>/",
        views.assignment_rate,
        name="assignment-rate",
    ),
    path(
        "annotate/<int:pk>/assignments/<int:assignment_id>/skip/",
        views.assignment_skip_view,
        name="assignment-skip",
    ),
    path("campaigns/", views.campaign_list, name="campaign-list"),
    path("campaigns/new/", views.campaign_create_view, name="campaign-create"),
    path("campaigns/<int:pk>/", views.campaign_detail, name="campaign-detail"),
    path("campaigns/<int:pk>/progress/", views.campaign_progress_view, name="campaign-progress"),
]
