"""Datasets API (admins only): datasets with counts, their posts (with search), uploads."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin
from config.pagination import paginate, paginated
from config.parsers import SafeFormParser, SafeMultiPartParser
from generation.importers import FORMAT_CHOICES
from generation.models import Dataset, ImportJob, Post
from generation.selectors.datasets import (
    dataset_get,
    datasets_with_counts,
    post_get,
    post_list,
    posts_with_items,
)
from generation.services.import_jobs import import_job_create


class DatasetOutputSerializer(serializers.ModelSerializer):
    post_count = serializers.IntegerField()
    batch_count = serializers.IntegerField()

    class Meta:
        model = Dataset
        fields = ["id", "name", "description", "created_at", "post_count", "batch_count"]


class DatasetDetailOutputSerializer(DatasetOutputSerializer):
    item_count = serializers.IntegerField()

    class Meta(DatasetOutputSerializer.Meta):
        fields = [*DatasetOutputSerializer.Meta.fields, "item_count"]


class ItemOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    position = serializers.IntegerField()
    text = serializers.CharField()
    batch = serializers.IntegerField(source="batch_id")


class PostOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name")
    image = serializers.SerializerMethodField()
    items = ItemOutputSerializer(many=True, source="items.all")

    class Meta:
        model = Post
        fields = ["id", "dataset", "external_id", "text", "image", "metadata", "items"]

    def get_image(self, post: Post) -> str | None:
        if not post.image:
            return None
        request = self.context.get("request")
        return request.build_absolute_uri(post.image.url) if request else post.image.url


class DatasetListApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(operation_id="datasets_list", responses=paginated(DatasetOutputSerializer))
    def get(self, request: Request) -> Response:
        return paginate(request, self, datasets_with_counts(), DatasetOutputSerializer)


class DatasetDetailApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=DatasetDetailOutputSerializer)
    def get(self, request: Request, dataset_id: int) -> Response:
        get_object_or_404(Dataset, pk=dataset_id)
        return Response(DatasetDetailOutputSerializer(dataset_get(dataset_id=dataset_id)).data)


class PostListApi(APIView):
    """A dataset's posts in import order, with their items; `search` matches text or id."""

    permission_classes = [IsAdmin]

    @extend_schema(
        parameters=[OpenApiParameter("search", str, description="words of the text, or an id")],
        operation_id="datasets_posts_list",
        responses=paginated(PostOutputSerializer),
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = get_object_or_404(Dataset, pk=dataset_id)
        posts = post_list(dataset=dataset, search=request.query_params.get("search", ""))
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(posts, request, view=self)
        data = PostOutputSerializer(
            posts_with_items(page), many=True, context={"request": request}
        ).data
        return paginator.get_paginated_response(data)


class PostDetailApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=PostOutputSerializer)
    def get(self, request: Request, post_id: int) -> Response:
        get_object_or_404(Post, pk=post_id)
        return Response(
            PostOutputSerializer(post_get(post_id=post_id), context={"request": request}).data
        )


class ImportJobOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.IntegerField(source="dataset_id", allow_null=True)
    percent = serializers.IntegerField()

    class Meta:
        model = ImportJob
        fields = [
            "id",
            "dataset_name",
            "dataset",
            "format",
            "split",
            "status",
            "percent",
            "total_bytes",
            "processed_bytes",
            "posts_created",
            "items_created",
            "warnings",
            "error",
            "created_at",
            "finished_at",
        ]


class ImportJobInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="the posts file, in any format import_posts reads")
    images_zip = serializers.FileField(required=False, help_text="a zip of the images it names")
    dataset = serializers.CharField(max_length=200, help_text="a new name creates the dataset")
    format = serializers.ChoiceField(
        choices=FORMAT_CHOICES,
        default="auto",
        help_text="auto tells it from the file's start; a file of no known format is a 400",
    )
    create_dataset = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="true: the dataset must be new; false: it must exist; unset: created when new",
    )
    split = serializers.CharField(
        max_length=50,
        required=False,
        allow_blank=True,
        default="",
        help_text="the split the file's posts belong to (train, dev, test...), as the source "
        "ships them; a post already in another split fails the import",
    )


class ImportJobCreateApi(APIView):
    """Upload a file (and a zip of images); the import runs in the background. Poll the job.

    A refused upload (ImportFileError) is answered 400 by the shared handler (config/errors.py).
    """

    permission_classes = [IsAdmin]
    parser_classes = [SafeMultiPartParser, SafeFormParser]

    @extend_schema(request=ImportJobInputSerializer, responses={202: ImportJobOutputSerializer})
    def post(self, request: Request) -> Response:
        data = ImportJobInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = import_job_create(
            file=data.validated_data["file"],
            images_zip=data.validated_data.get("images_zip"),
            dataset_name=data.validated_data["dataset"],
            format=data.validated_data["format"],
            created_by=request.user,
            create_dataset=data.validated_data.get("create_dataset"),
            split=data.validated_data["split"],
        )
        job.refresh_from_db()
        return Response(ImportJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ImportJobDetailApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=ImportJobOutputSerializer)
    def get(self, request: Request, job_id: int) -> Response:
        job = get_object_or_404(ImportJob, pk=job_id)
        return Response(ImportJobOutputSerializer(job).data)
