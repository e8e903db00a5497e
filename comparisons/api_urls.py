from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from comparisons.apis import ComparisonDetailApi, ComparisonListApi

urlpatterns: list = [
    path("comparisons/", ComparisonListApi.as_view(), name="api-comparison-list"),
    path(
        "comparisons/<id:comparison_id>/",
        ComparisonDetailApi.as_view(),
        name="api-comparison-detail",
    ),
]
