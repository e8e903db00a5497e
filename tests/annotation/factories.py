"""Annotation test data, built on the generation factories."""

from generation.models import Batch, BatchItem, Dataset, KnowledgeItem, StageResult
from tests.generation.factories import MIKO_KINDS, BatchFactory, DatasetFactory, PostFactory

__all__ = ["DatasetFactory", "miko_batch"]


def miko_batch(*, dataset: Dataset, posts: int, kinds: list[str] | None = None) -> Batch:
    """A batch of `posts` posts with one item per MIKO slot, and an image description each."""
    batch = BatchFactory(dataset=dataset)
    kinds = kinds or MIKO_KINDS
    for _ in range(posts):
        post = PostFactory(dataset=dataset)
        description = StageResult.objects.create(
            post=post,
            stage="describe_image",
            template_hash="t",
            model="fake",
            params_hash="p",
            batch=batch,
            status=StageResult.Status.OK,
            parsed={"description": f"A photo that goes with {post.external_id}."},
        )
        items = KnowledgeItem.objects.bulk_create(
            KnowledgeItem(
                post=post,
                batch=batch,
                kind=kind,
                position=position,
                text=f"Item {kind} of {post.external_id}.",
                description_result=description,
            )
            for position, kind in enumerate(kinds, start=1)
        )
        BatchItem.objects.bulk_create(BatchItem(batch=batch, item=item) for item in items)
    return batch
