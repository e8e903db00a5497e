from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from evaluation import apis

urlpatterns = [
    path(
        "campaigns/<id:campaign_id>/agreement/",
        apis.AgreementApi.as_view(),
        name="api-campaign-agreement",
    ),
    path(
        "campaigns/<id:campaign_id>/annotators/",
        apis.AnnotatorStatisticsApi.as_view(),
        name="api-campaign-annotators",
    ),
    path("exports/", apis.ExportListApi.as_view(), name="api-export-list"),
    path("exports/<id:export_id>/", apis.ExportDetailApi.as_view(), name="api-export-detail"),
    path("exports/<id:export_id>/retry/", apis.ExportRetryApi.as_view(), name="api-export-retry"),
    path(
        "exports/<id:export_id>/download/",
        apis.ExportDownloadApi.as_view(),
        name="api-export-download",
    ),
]
