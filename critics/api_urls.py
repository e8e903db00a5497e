from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from critics import apis

urlpatterns = [
    path("critics/", apis.CriticListApi.as_view(), name="api-critic-list"),
    path("critics/<id:critic_id>/", apis.CriticDetailApi.as_view(), name="api-critic-detail"),
    path("critics/<id:critic_id>/score/", apis.CriticScoreApi.as_view(), name="api-critic-score"),
    path(
        "critics/<id:critic_id>/order-tasks/",
        apis.CriticOrderTasksApi.as_view(),
        name="api-critic-order-tasks",
    ),
]
