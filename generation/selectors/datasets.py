"""Reads for the dataset browser and its API: datasets with counts, posts with their items."""

from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce

from generation.models import Batch, Dataset, ImportJob, KnowledgeItem, Post, StageResult
from generation.services.items import DESCRIPTION_STAGES


def _count(model, **filters) -> Subquery:
    """A correlated count: one subquery each, rather than joins that multiply the rows."""
    rows = (
        model.objects.filter(**filters)
        .order_by()
        .values(next(iter(filters)))
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows), 0)


def datasets_with_counts() -> QuerySet[Dataset]:
    """Datasets with their post and batch counts (cheap, from indexes: fit for a list)."""
    return Dataset.objects.annotate(
        post_count=_count(Post, dataset=OuterRef("pk")),
        batch_count=_count(Batch, dataset=OuterRef("pk")),
    ).order_by("name")


def dataset_get(*, dataset_id: int) -> Dataset:
    """One dataset with its counts, items included (a scan of its items' batch index)."""
    return (
        datasets_with_counts()
        .annotate(item_count=_count(KnowledgeItem, batch__dataset=OuterRef("pk")))
        .get(pk=dataset_id)
    )


def post_list(*, dataset: Dataset, search: str = "") -> QuerySet[Post]:
    """Posts of a dataset in import order; `search` matches the text or the external id."""
    posts = Post.objects.filter(dataset=dataset)
    search = search.strip()
    if search:
        posts = posts.filter(text__icontains=search) | posts.filter(external_id=search)
    return posts.order_by("id")


def posts_with_items(posts) -> QuerySet[Post]:
    """A page of posts with their items and image descriptions, in three queries."""
    ids = [post.pk for post in posts]
    return (
        Post.objects.filter(pk__in=ids)
        .select_related("dataset")
        .prefetch_related(
            Prefetch(
                "items",
                queryset=KnowledgeItem.objects.order_by("batch_id", "position", "id"),
            ),
            Prefetch(
                "stage_results",
                queryset=StageResult.objects.filter(
                    stage__in=DESCRIPTION_STAGES, status=StageResult.Status.OK
                ).order_by("-id"),
                to_attr="descriptions",
            ),
        )
        .order_by("id")
    )


def post_get(*, post_id: int) -> Post:
    return posts_with_items([Post(pk=post_id)]).get()


def import_job_list(*, limit: int = 20) -> QuerySet[ImportJob]:
    return ImportJob.objects.select_related("dataset", "created_by").order_by("-id")[:limit]
