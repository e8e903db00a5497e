from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from judges import views

app_name = "judges"

urlpatterns = [
    path("judges/", views.judge_run_list_page, name="run-list"),
    path("judges/<id:run_id>/", views.judge_run_detail, name="run-detail"),
    path("judges/<id:run_id>/progress/", views.judge_run_progress, name="run-progress"),
    path("judges/<id:run_id>/<slug:action>/", views.judge_run_action, name="run-action"),
    path("campaigns/<id:pk>/judges/", views.campaign_judges, name="campaign-judges"),
]
