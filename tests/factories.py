"""Test data for every suite, in one place: factory_boy factories and the builders made of them.

- generation: datasets, posts (with real MIKO texts and tiny images), batches, items, endpoints
  pointing at the fake server;
- annotation: `miko_batch`, a batch of MIKO items with image descriptions, ready for a campaign;
- evaluation: campaigns, questions, ratings and gold answers written directly (not through
  annotation's services), so agreement and exports can be fed any matrix of ratings.

Fixtures that use these live in `tests/conftest.py` and the suites' `conftest.py` files.
"""

import io
import json
import math
import random
from pathlib import Path
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from PIL import Image

from annotation.models import Campaign, GoldAnswer, Question, Rating
from generation.fake_openai import FakeOpenAIServer
from generation.models import Batch, BatchItem, Dataset, Endpoint, KnowledgeItem, Post, StageResult
from generation.pipelines.miko import MIKO_KINDS
from generation.services.endpoints import endpoint_create

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data/miko/pipeline_outputs_sample.jsonl"


# --- generation ----------------------------------------------------------------------------------


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


def sample_texts() -> list[str]:
    with SAMPLE.open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color=(seed % 256, 80, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_image(path: Path, size: tuple[int, int] = (32, 24), fmt: str = "JPEG") -> Path:
    """An image file on disk, as an importer's image folder holds them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 120, 40)).save(path, fmt)
    return path


def make_posts(name: str, count: int, *, images: bool = True) -> Dataset:
    """`count` posts whose texts are the real sample posts (so the fake replays real answers)."""
    dataset, _ = Dataset.objects.get_or_create(name=name)
    texts = sample_texts()
    for index in range(count):
        post = Post(dataset=dataset, external_id=str(index), text=texts[index % len(texts)])
        if images:
            post.image.save(f"{name}-{index}.png", ContentFile(png_bytes(index)), save=False)
        post.save()
    return dataset


def fake_endpoint(server: FakeOpenAIServer, name: str = "fake", **extra: Any) -> Endpoint:
    """An OpenAI-compatible endpoint pointing at the fake server (the `fake_server` fixture)."""
    extra.setdefault("concurrency", 8)
    return endpoint_create(
        name=name, backend="openai", base_url=server.base_url, model="fake-model", **extra
    )


# --- annotation ----------------------------------------------------------------------------------


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


# --- evaluation: campaigns, questions and ratings written directly -------------------------------


def campaign_create(
    *,
    name: str = "campaign",
    dataset: Dataset | None = None,
    questions: tuple[str, ...] = ("plausibility", "typicality"),
    scale: str = "1-5",
) -> Campaign:
    """A campaign and its questions, without members or tasks (unlike annotation's service)."""
    dataset = dataset or DatasetFactory(name=f"{name}-data")
    campaign = Campaign.objects.create(name=name, dataset=dataset)
    for position, question in enumerate(questions):
        Question.objects.create(
            campaign=campaign, name=question, prompt=f"{question}?", scale=scale, position=position
        )
    return campaign


def posts_with_items(
    campaign: Campaign, *, posts: int, kinds: list[str] | None = None, described: bool = True
) -> list[KnowledgeItem]:
    """Posts with one item per kind, in a batch of the campaign, each with an image description."""
    batch = BatchFactory(dataset=campaign.dataset)
    campaign.batches.add(batch)
    items = []
    for _ in range(posts):
        post = PostFactory(dataset=campaign.dataset)
        description = None
        if described:
            description = describe(post, f"A photo that goes with {post.external_id}.", batch=batch)
        for position, kind in enumerate(kinds or MIKO_KINDS, start=1):
            item = KnowledgeItem.objects.create(
                post=post,
                batch=batch,
                kind=kind,
                position=position,
                text=f"The user posts this because of {kind} ({post.external_id}).",
                description_result=description,
            )
            BatchItem.objects.create(batch=batch, item=item)
            items.append(item)
    return items


def stage_result(
    post: Post, stage: str, parsed: dict, *, batch=None, model: str = "llava-fake"
) -> StageResult:
    """An OK result of `stage` for the post, under a key of its own."""
    return StageResult.objects.create(
        post=post,
        stage=stage,
        template_hash=f"hash-{stage}",
        model=model,
        params_hash=f"p{StageResult.objects.count()}",
        batch=batch,
        status=StageResult.Status.OK,
        parsed=parsed,
    )


def describe(
    post: Post, description: str, *, batch=None, stage: str = "describe_image"
) -> StageResult:
    """An image description (or caption) result for the post; items name it as their source."""
    return stage_result(post, stage, {"description": description}, batch=batch)


def annotators(count: int, prefix: str = "coder") -> list:
    """Plain users (no password hashing: agreement only needs distinct raters)."""
    users = get_user_model().objects
    return [users.create(username=f"{prefix}{i}") for i in range(count)]


def rate(campaign: Campaign, items: list, question: str, coders: list, matrix: list) -> None:
    """`matrix[c][u]` is coder c's value for item u; None or NaN leaves it unrated."""
    q = Question.objects.get(campaign=campaign, name=question)
    ratings = [
        Rating(campaign=campaign, item=items[u], question=q, annotator=coders[c], value=int(value))
        for c, row in enumerate(matrix)
        for u, value in enumerate(row)
        if value is not None and not (isinstance(value, float) and math.isnan(value))
    ]
    Rating.objects.bulk_create(ratings)


def reliability_campaign(matrix: list, *, name: str = "reliability", scale: str = "1-5"):
    """A campaign of one question whose ratings are the coders × units `matrix`."""
    campaign = campaign_create(name=name, questions=("plausibility",), scale=scale)
    units = len(matrix[0])
    items = posts_with_items(campaign, posts=units, kinds=["xIntent"], described=False)
    coders = annotators(len(matrix), prefix=f"{name}-coder")
    rate(campaign, items, "plausibility", coders, matrix)
    return campaign


def gold(campaign: Campaign, item, question: str, value: int) -> GoldAnswer:
    q = Question.objects.get(campaign=campaign, name=question)
    return GoldAnswer.objects.create(campaign=campaign, item=item, question=q, value=value)


# --- critics: ratings with a planted signal -------------------------------------------------------

SIGNAL_WORD = "sunny"
FILLER_WORDS = (
    "beach coffee city night friends game team rain happy tired music show school work home dog "
    "cat food party trip photo morning weekend news"
).split()


def signal_campaign(
    *,
    name: str = "signal",
    posts: int = 60,
    rated_posts: int = 40,
    kinds: tuple[str, ...] = ("xWant", "xIntent", "xNeed", "open"),
    noise: float = 0.1,
    seed: int = 7,
) -> Campaign:
    """A campaign whose items are rated high (4-5 plausibility) when their text holds
    `SIGNAL_WORD` and low (1-2) otherwise, a share `noise` of ratings flipped; three annotators
    rate the first `rated_posts` posts, the rest are unrated. Each post has an image description.
    Returns the campaign with `items` (all, by id) and `coders`."""
    rng = random.Random(seed)
    campaign = campaign_create(name=name, questions=("plausibility",))
    batch = BatchFactory(dataset=campaign.dataset)
    campaign.batches.add(batch)
    coders = annotators(3, prefix=f"{name}-coder")
    question = campaign.questions.get()
    items, ratings = [], []
    for number in range(posts):
        text = f"post {number} {rng.choice(FILLER_WORDS)}"
        post = PostFactory(dataset=campaign.dataset, text=text)
        description = describe(post, f"A photo of {rng.choice(FILLER_WORDS)}.", batch=batch)
        for position, kind in enumerate(kinds, start=1):
            words = rng.sample(FILLER_WORDS, 4)
            good = rng.random() < 0.5
            if good:
                words.insert(rng.randrange(5), SIGNAL_WORD)
            item = KnowledgeItem.objects.create(
                post=post, batch=batch, kind=kind, position=position, text=" ".join(words),
                description_result=description,
            )  # fmt: skip
            items.append(item)
            if number < rated_posts:
                for coder in coders:
                    high = good if rng.random() >= noise else not good
                    value = rng.choice((4, 5)) if high else rng.choice((1, 2))
                    ratings.append(
                        Rating(campaign=campaign, item=item, question=question, annotator=coder,
                               value=value)
                    )  # fmt: skip
    BatchItem.objects.bulk_create([BatchItem(batch=batch, item=item) for item in items])
    Rating.objects.bulk_create(ratings)
    campaign.items = items
    campaign.coders = coders
    return campaign
