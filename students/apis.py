"""Splits API (admins only): a dataset's splits, and drawing them from a seed."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin
from generation.models import Dataset
from students.selectors import dataset_splits
from students.services import splits_draw
from students.splits import DEFAULT_FRACTIONS, MAX_SEED


class SplitAssignmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.ChoiceField(choices=["seed", "import"])
    seed = serializers.IntegerField(allow_null=True)
    fractions = serializers.DictField(child=serializers.FloatField())
    origin = serializers.CharField()
    created_at = serializers.DateTimeField()
    posts = serializers.DictField(child=serializers.IntegerField())


class SplitsOutputSerializer(serializers.Serializer):
    dataset = serializers.IntegerField()
    splits = serializers.DictField(child=serializers.IntegerField(), help_text="posts per split")
    unsplit = serializers.IntegerField(help_text="posts in no split")
    assignments = SplitAssignmentSerializer(many=True)


class SplitsInputSerializer(serializers.Serializer):
    fractions = serializers.DictField(
        child=serializers.FloatField(), required=False, default=lambda: dict(DEFAULT_FRACTIONS),
        help_text='fraction per split, summing to 1, e.g. {"train": 0.8, "dev": 0.1, "test": 0.1}',
    )  # fmt: skip
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, required=False, default=13)
    replace = serializers.BooleanField(
        required=False, default=False,
        help_text="draw again with another seed or fractions (posts may move between splits)",
    )  # fmt: skip


class DatasetSplitsApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(operation_id="datasets_splits_retrieve", responses=SplitsOutputSerializer)
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = get_object_or_404(Dataset, pk=dataset_id)
        return Response(SplitsOutputSerializer(dataset_splits(dataset=dataset)).data)

    @extend_schema(
        operation_id="datasets_splits_create",
        request=SplitsInputSerializer,
        responses={201: SplitsOutputSerializer},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = get_object_or_404(Dataset, pk=dataset_id)
        data = SplitsInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        splits_draw(dataset=dataset, created_by=request.user, **data.validated_data)
        return Response(
            SplitsOutputSerializer(dataset_splits(dataset=dataset)).data,
            status=status.HTTP_201_CREATED,
        )
