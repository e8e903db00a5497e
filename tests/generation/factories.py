"""factory_boy factories for the generation models, shared by every test suite."""

import factory

from generation.models import Batch, BatchItem, Dataset, KnowledgeItem, Post
from generation.pipelines.miko import MIKO_KINDS


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"dataset-{n}")


class PostFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Post

    dataset = factory.SubFactory(DatasetFactory)
    external_id = factory.Sequence(lambda n: f"post-{n}")
    text = factory.Sequence(lambda n: f"Post number {n} about a sunny day at the beach")
    metadata = factory.LazyFunction(dict)


class BatchFactory(factory.django.DjangoModelFactory):
    """An imported MIKO batch by default: no endpoint needed, status done."""

    class Meta:
        model = Batch

    dataset = factory.SubFactory(DatasetFactory)
    pipeline = "miko"
    imported = True
    status = Batch.Status.DONE


class BatchItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BatchItem


class KnowledgeItemFactory(factory.django.DjangoModelFactory):
    """An item, linked to the batch that produced it (as the runner and the importers do)."""

    class Meta:
        model = KnowledgeItem
        skip_postgeneration_save = True

    post = factory.SubFactory(PostFactory)
    batch = factory.SubFactory(BatchFactory, dataset=factory.SelfAttribute("..post.dataset"))
    kind = "xWant"
    position = 1
    text = factory.Sequence(lambda n: f"After posting this Tweet, the user wants to rest ({n}).")
    link = factory.RelatedFactory(
        BatchItemFactory, factory_related_name="item", batch=factory.SelfAttribute("..batch")
    )


def miko_items_for(post: Post, batch: Batch | None = None) -> list[KnowledgeItem]:
    """The ten MIKO items of a post, in slot order, in one batch (a new imported one by default)."""
    batch = batch or BatchFactory(dataset=post.dataset)
    return [
        KnowledgeItemFactory(post=post, batch=batch, kind=kind, position=position)
        for position, kind in enumerate(MIKO_KINDS, start=1)
    ]
