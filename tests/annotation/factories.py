"""Small factories for annotation tests (generation's own factories were not committed yet)."""

import factory

from generation.models import Batch, Dataset, KnowledgeItem, Post, StageResult

MIKO_KINDS = [
    "xWant", "oEffect", "xAttr", "xIntent", "xReact", "oReact", "oWant", "xEffect", "xNeed", "open",
]  # fmt: skip


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"dataset-{n}")


class PostFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Post

    dataset = factory.SubFactory(DatasetFactory)
    external_id = factory.Sequence(str)
    text = factory.Sequence(lambda n: f"Post number {n} #sample")


class BatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Batch

    dataset = factory.SubFactory(DatasetFactory)
    pipeline = "miko"
    imported = True
    status = Batch.Status.DONE


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = KnowledgeItem

    post = factory.SubFactory(PostFactory)
    batch = factory.SubFactory(BatchFactory)
    kind = "xWant"
    position = 1
    text = factory.Sequence(lambda n: f"After posting this Tweet, the user wants to do thing {n}.")


def miko_batch(*, dataset: Dataset, posts: int, kinds: list[str] | None = None) -> Batch:
    """A batch of `posts` posts with one item per MIKO slot, and an image description each."""
    batch = BatchFactory(dataset=dataset)
    kinds = kinds or MIKO_KINDS
    for _ in range(posts):
        post = PostFactory(dataset=dataset)
        StageResult.objects.create(
            post=post,
            stage="describe_image",
            template_hash="t",
            model="fake",
            params_hash="p",
            batch=batch,
            status=StageResult.Status.OK,
            parsed={"description": f"A photo that goes with post {post.external_id}."},
        )
        KnowledgeItem.objects.bulk_create(
            KnowledgeItem(
                post=post,
                batch=batch,
                kind=kind,
                position=position,
                text=f"Item {kind} of post {post.external_id}.",
            )
            for position, kind in enumerate(kinds, start=1)
        )
    return batch
