"""Endpoints API (admins only). The API key itself is never accepted nor returned: only its
environment variable's name.

Saving (POST, PATCH) tests the connection first and answers 400 `{"connection": [why]}` when the
endpoint does not answer, unless the request says `"save_without_connection": true`.
"""

from collections.abc import Callable
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin
from generation.limits import serializer_field
from generation.models import Endpoint
from generation.selectors.batches import endpoint_list
from generation.services.endpoints import (
    endpoint_connection_test,
    endpoint_create,
    endpoint_delete,
    endpoint_update,
)


class EndpointOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Endpoint
        fields = [
            "id",
            "name",
            "backend",
            "base_url",
            "model_path",
            "model",
            "api_key_env",
            "concurrency",
            "requests_per_minute",
            "parameters",
            "created_at",
        ]


class ConnectionCheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField()


class EndpointSavedSerializer(EndpointOutputSerializer):
    connection = ConnectionCheckSerializer(
        source="connection_check",
        allow_null=True,
        help_text="the connection test made before saving; null when saved without one",
    )

    class Meta(EndpointOutputSerializer.Meta):
        fields = [*EndpointOutputSerializer.Meta.fields, "connection"]


CONNECTION_HINT = 'Send "save_without_connection": true to save it anyway.'


def _saved(save: Callable[..., Endpoint], data: dict[str, Any]) -> Endpoint:
    """Save through `save`, testing the connection unless the request said not to."""
    test = not data.pop("save_without_connection", False)
    try:
        return save(**data, test_connection=test)
    except ValidationError as error:
        if "connection" in getattr(error, "error_dict", {}):
            raise ValidationError(
                {"connection": f"{' '.join(error.message_dict['connection'])} {CONNECTION_HINT}"}
            ) from error
        raise


class EndpointInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    backend = serializers.ChoiceField(choices=Endpoint.Backend.choices)
    base_url = serializers.CharField(max_length=500, required=False, allow_blank=True)
    model_path = serializers.CharField(max_length=500, required=False, allow_blank=True)
    model = serializers.CharField(max_length=200)
    api_key_env = serializers.CharField(max_length=100, required=False, allow_blank=True)
    concurrency = serializer_field("concurrency", required=False)
    requests_per_minute = serializer_field("requests_per_minute", required=False, allow_null=True)
    parameters = serializers.JSONField(required=False)
    save_without_connection = serializers.BooleanField(
        required=False,
        default=False,
        help_text="save even when the connection test fails (by default it refuses to)",
    )


class EndpointListApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=EndpointOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(EndpointOutputSerializer(endpoint_list(), many=True).data)

    @extend_schema(request=EndpointInputSerializer, responses={201: EndpointSavedSerializer})
    def post(self, request: Request) -> Response:
        data = EndpointInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = _saved(endpoint_create, dict(data.validated_data))
        return Response(EndpointSavedSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class EndpointDetailApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=EndpointOutputSerializer)
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = get_object_or_404(Endpoint, pk=endpoint_id)
        return Response(EndpointOutputSerializer(endpoint).data)

    @extend_schema(request=EndpointInputSerializer(partial=True), responses=EndpointSavedSerializer)
    def patch(self, request: Request, endpoint_id: int) -> Response:
        endpoint = get_object_or_404(Endpoint, pk=endpoint_id)
        data = EndpointInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        endpoint = _saved(partial(endpoint_update, endpoint=endpoint), dict(data.validated_data))
        return Response(EndpointSavedSerializer(endpoint).data)

    @extend_schema(responses={204: None, 409: None})
    def delete(self, request: Request, endpoint_id: int) -> Response:
        endpoint = get_object_or_404(Endpoint, pk=endpoint_id)
        endpoint_delete(endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointTestApi(APIView):
    """Test a stored endpoint's connection now (as saving does), without changing it."""

    permission_classes = [IsAdmin]

    @extend_schema(request=None, responses=ConnectionCheckSerializer)
    def post(self, request: Request, endpoint_id: int) -> Response:
        endpoint = get_object_or_404(Endpoint, pk=endpoint_id)
        return Response(ConnectionCheckSerializer(endpoint_connection_test(endpoint=endpoint)).data)
