from django.urls import path

from evaluation import views

app_name = "evaluation"

urlpatterns = [
    path("evaluation/", views.evaluation_home, name="home"),
    path("campaigns/<int:pk>/evaluation/", views.campaign_dashboard, name="campaign-dashboard"),
    path(
        "campaigns/<int:pk>/evaluation/items/",
        views.campaign_item_scores,
        name="campaign-item-scores",
    ),
    path("campaigns/<int:pk>/exports/new/", views.export_create_view, name="export-create"),
    path("exports/<int:pk>/", views.export_detail, name="export-detail"),
    path("exports/<int:pk>/download/", views.export_download, name="export-download"),
    path("exports/<int:pk>/retry/", views.export_retry_view, name="export-retry"),
]
