from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from students import views

app_name = "students"

urlpatterns = [
    path("student-trainings/", views.student_training_list, name="training-list"),
    path(
        "student-trainings/<id:training_id>/",
        views.student_training_detail,
        name="training-detail",
    ),
    path(
        "student-trainings/<id:training_id>/restart/",
        views.student_training_restart_view,
        name="training-restart",
    ),
    path(
        "datasets/<id:dataset_id>/leaderboard/",
        views.dataset_leaderboard,
        name="dataset-leaderboard",
    ),
    path(
        "datasets/<id:dataset_id>/evaluation-runs/new/",
        views.evaluation_run_new,
        name="run-new",
    ),
    path(
        "evaluation-runs/<id:evaluation_run_id>/",
        views.evaluation_run_detail,
        name="run-detail",
    ),
    path(
        "evaluation-runs/<id:evaluation_run_id>/restart/",
        views.evaluation_run_restart_view,
        name="run-restart",
    ),
    path(
        "evaluation-runs/<id:evaluation_run_id>/manifest.json",
        views.run_manifest,
        name="run-manifest",
    ),
]
