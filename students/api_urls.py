from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from students.apis import (
    DatasetSplitsApi,
    EvaluationRunDetailApi,
    EvaluationRunListApi,
    EvaluationRunRestartApi,
    StudentTrainingDetailApi,
    StudentTrainingListApi,
    StudentTrainingRestartApi,
)

urlpatterns: list = [
    path("datasets/<id:dataset_id>/splits/", DatasetSplitsApi.as_view(), name="api-dataset-splits"),
    path("evaluation-runs/", EvaluationRunListApi.as_view(), name="api-evaluation-run-list"),
    path(
        "evaluation-runs/<id:evaluation_run_id>/",
        EvaluationRunDetailApi.as_view(),
        name="api-evaluation-run-detail",
    ),
    path(
        "evaluation-runs/<id:evaluation_run_id>/restart/",
        EvaluationRunRestartApi.as_view(),
        name="api-evaluation-run-restart",
    ),
    path("student-trainings/", StudentTrainingListApi.as_view(), name="api-student-training-list"),
    path(
        "student-trainings/<id:training_id>/",
        StudentTrainingDetailApi.as_view(),
        name="api-student-training-detail",
    ),
    path(
        "student-trainings/<id:training_id>/restart/",
        StudentTrainingRestartApi.as_view(),
        name="api-student-training-restart",
    ),
]
