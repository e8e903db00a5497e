from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from judges import apis

urlpatterns = [
    path("judge-runs/", apis.JudgeRunListApi.as_view(), name="api-judge-run-list"),
    path("judge-runs/<id:run_id>/", apis.JudgeRunDetailApi.as_view(), name="api-judge-run-detail"),
    path(
        "judge-runs/<id:run_id>/agreement/",
        apis.JudgeRunAgreementApi.as_view(),
        name="api-judge-run-agreement",
    ),
    *(
        path(
            f"judge-runs/<id:run_id>/{action}/",
            apis.JudgeRunActionApi.as_view(action_name=action),
            name=f"api-judge-run-{action}",
        )
        for action in apis.JUDGE_RUN_ACTIONS
    ),
]
