from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from evaluation import views

app_name = "evaluation"

urlpatterns = [
    path("evaluation/", views.evaluation_home, name="home"),
    path("campaigns/<id:pk>/evaluation/", views.campaign_dashboard, name="campaign-dashboard"),
    path(
        "campaigns/<id:pk>/evaluation/items/",
        views.campaign_item_scores,
        name="campaign-item-scores",
    ),
    path("campaigns/<id:pk>/exports/new/", views.export_create_view, name="export-create"),
    path("campaigns/<id:pk>/exports/preview/", views.export_preview, name="export-preview"),
    path("exports/<id:pk>/", views.export_detail, name="export-detail"),
    path("exports/<id:pk>/download/", views.export_download, name="export-download"),
    path("exports/<id:pk>/retry/", views.export_retry_view, name="export-retry"),
]
