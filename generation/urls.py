from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from generation.views import batches, datasets, endpoints

app_name = "generation"

urlpatterns = [
    path("datasets/", datasets.dataset_list, name="dataset-list"),
    path("datasets/<id:dataset_id>/", datasets.dataset_detail, name="dataset-detail"),
    path("imports/new/", datasets.import_new, name="import-new"),
    path("imports/<id:job_id>/", datasets.import_detail, name="import-detail"),
    path("endpoints/", endpoints.endpoint_list_page, name="endpoint-list"),
    path("endpoints/new/", endpoints.endpoint_new, name="endpoint-new"),
    path("endpoints/<id:endpoint_id>/edit/", endpoints.endpoint_edit, name="endpoint-edit"),
    path("endpoints/<id:endpoint_id>/test/", endpoints.endpoint_test, name="endpoint-test"),
    path("endpoints/<id:endpoint_id>/delete/", endpoints.endpoint_remove, name="endpoint-delete"),
    path("batches/", batches.batch_list_page, name="batch-list"),
    path("batches/new/", batches.batch_new, name="batch-new"),
    path("batches/<id:batch_id>/", batches.batch_detail, name="batch-detail"),
    path("batches/<id:batch_id>/progress/", batches.batch_progress_partial, name="batch-progress"),
    path("batches/<id:batch_id>/<str:action>/", batches.batch_action, name="batch-action"),
]
