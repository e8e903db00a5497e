from django.urls import path

from generation.apis.batches import BatchActionApi, BatchDetailApi, BatchListApi
from generation.apis.datasets import (
    DatasetDetailApi,
    DatasetListApi,
    ImportJobCreateApi,
    ImportJobDetailApi,
    PostDetailApi,
    PostListApi,
)
from generation.apis.endpoints import EndpointDetailApi, EndpointListApi

urlpatterns: list = [
    path("datasets/", DatasetListApi.as_view(), name="api-dataset-list"),
    path("datasets/<int:dataset_id>/", DatasetDetailApi.as_view(), name="api-dataset-detail"),
    path("datasets/<int:dataset_id>/posts/", PostListApi.as_view(), name="api-post-list"),
    path("posts/<int:post_id>/", PostDetailApi.as_view(), name="api-post-detail"),
    path("imports/", ImportJobCreateApi.as_view(), name="api-import-create"),
    path("imports/<int:job_id>/", ImportJobDetailApi.as_view(), name="api-import-detail"),
    path("endpoints/", EndpointListApi.as_view(), name="api-endpoint-list"),
    path("endpoints/<int:endpoint_id>/", EndpointDetailApi.as_view(), name="api-endpoint-detail"),
    path("batches/", BatchListApi.as_view(), name="api-batch-list"),
    path("batches/<int:batch_id>/", BatchDetailApi.as_view(), name="api-batch-detail"),
    *[
        path(
            f"batches/<int:batch_id>/{action}/",
            BatchActionApi.as_view(action_name=action),
            name=f"api-batch-{action}",
        )
        for action in ["pause", "resume", "cancel", "retry-failed"]
    ],
]
