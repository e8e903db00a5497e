"""The admin-only API of a background job (a critic's training, a student training, an evaluation
run): the list, newest first and paged, whose POST records a job and answers 201 with it; one job
read by its id; an action on one job (score again, start again) answering 202 with it.

A view says which rows it serves (`rows`), its serializers, and what its POST or action does
(`create`, `act`); services refuse what they must (`config.errors`). Each view keeps its own
schema (operation ids, parameters, descriptions) with drf-spectacular's `extend_schema_view`.
"""

from typing import Any

from django.db import models
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin
from config.pagination import paginate


class _JobApi(APIView):
    permission_classes = [IsAdmin]
    output_serializer: type[serializers.Serializer]

    def rows(self, request: Request) -> QuerySet:
        """The jobs this view serves (with what their serializer reads, selected)."""
        raise NotImplementedError

    def answer(self, job: models.Model, code: int = status.HTTP_200_OK) -> Response:
        return Response(self.output_serializer(job).data, status=code)

    def job(self, request: Request, ids: dict[str, int]) -> models.Model:
        """The job named by the URL's one id, or a 404."""
        (pk,) = ids.values()
        return get_object_or_404(self.rows(request), pk=pk)


# The views' docstrings are their schema's descriptions: these bases have none to hand down.


class JobListApi(_JobApi):
    # GET: the jobs, paged. POST: `input_serializer` checks the body, `create` records the job
    # (and sends it to a worker); 201 with it.

    input_serializer: type[serializers.Serializer]

    def create(self, request: Request, values: dict[str, Any]) -> models.Model:
        raise NotImplementedError

    def get(self, request: Request) -> Response:
        return paginate(request, self, self.rows(request), self.output_serializer)

    def post(self, request: Request) -> Response:
        data = self.input_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self.answer(self.create(request, data.validated_data), status.HTTP_201_CREATED)


class JobDetailApi(_JobApi):
    # GET: one job.

    def get(self, request: Request, **ids: int) -> Response:
        return self.answer(self.job(request, ids))


class JobActionApi(_JobApi):
    # POST (no body): `act` on one job, which sends it to a worker; 202 with it.

    def act(self, job: models.Model) -> models.Model:
        raise NotImplementedError

    def post(self, request: Request, **ids: int) -> Response:
        return self.answer(self.act(self.job(request, ids)), status.HTTP_202_ACCEPTED)
