"""Paging for the API's list operations, and the schema of a paged answer.

The API's views are plain `APIView`s, which drf-spectacular cannot see paging in; `paginated(...)`
describes the `{count, next, previous, results}` envelope they answer with.
"""

from functools import cache

from django.db.models import QuerySet
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


def paginate(
    request: Request, view: APIView, rows: QuerySet | list, serializer: type[serializers.Serializer]
) -> Response:
    paginator = PageNumberPagination()
    page = paginator.paginate_queryset(rows, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


@cache
def paginated(serializer: type[serializers.Serializer]) -> serializers.Serializer:
    name = serializer.__name__.removesuffix("Serializer")
    return inline_serializer(
        name=f"Paginated{name}List",
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )
