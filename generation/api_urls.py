from django.urls import path

import config.converters  # noqa: F401  (registers <id:...>)
from generation.apis.batches import BatchActionApi, BatchDetailApi, BatchListApi
from generation.apis.datasets import (
    DatasetDetailApi,
    DatasetListApi,
    ImportJobCreateApi,
    ImportJobDetailApi,
    PostDetailApi,
    PostListApi,
)
from generation.apis.endpoints import EndpointDetailApi, EndpointListApi, EndpointTestApi

urlpatterns: list = [
    path("datasets/", DatasetListApi.as_view(), name="api-dataset-list"),
    path("datasets/<id:dataset_id>/", DatasetDetailApi.as_view(), name="api-dataset-detail"),
    path("datasets/<id:dataset_id>/posts/", PostListApi.as_view(), name="api-post-list"),
    path("posts/<id:post_id>/", PostDetailApi.as_view(), name="api-post-detail"),
    path("imports/", ImportJobCreateApi.as_view(), name="api-import-create"),
    path("imports/<id:job_id>/", ImportJobDetailApi.as_view(), name="api-import-detail"),
    path("endpoints/", EndpointListApi.as_view(), name="api-endpoint-list"),
    path("endpoints/<id:endpoint_id>/", EndpointDetailApi.as_view(), name="api-endpoint-detail"),
    path("endpoints/<id:endpoint_id>/test/", EndpointTestApi.as_view(), name="api-endpoint-test"),
    path("batches/", BatchListApi.as_view(), name="api-batch-list"),
    path("batches/<id:batch_id>/", BatchDetailApi.as_view(), name="api-batch-detail"),
    *[
        path(
            f"batches/<id:batch_id>/{action}/",
            BatchActionApi.as_view(action_name=action),
            name=f"api-batch-{action}",
        )
        for action in ["pause", "resume", "cancel", "retry-failed"]
    ],
]
