from django.urls import path

from generation.apis.batches import BatchActionApi, BatchDetailApi, BatchListApi
from generation.apis.endpoints import EndpointDetailApi, EndpointListApi

urlpatterns: list = [
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
