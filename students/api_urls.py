from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from students.apis import DatasetSplitsApi

urlpatterns: list = [
    path("datasets/<id:dataset_id>/splits/", DatasetSplitsApi.as_view(), name="api-dataset-splits"),
]
