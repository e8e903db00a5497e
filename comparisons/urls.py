from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from comparisons import views

app_name = "comparisons"

urlpatterns = [
    path(
        "datasets/<id:dataset_id>/comparisons/new/",
        views.comparison_create_view,
        name="comparison-create",
    ),
    path("comparisons/<id:comparison_id>/", views.comparison_detail, name="comparison-detail"),
]
