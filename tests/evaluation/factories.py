"""Campaigns, questions and ratings built directly (not through annotation's services)."""

import math

from django.contrib.auth import get_user_model

from annotation.models import Campaign, GoldAnswer, Question, Rating
from generation.models import BatchItem, Dataset, KnowledgeItem, Post, StageResult
from tests.generation.factories import MIKO_KINDS, BatchFactory, DatasetFactory, PostFactory


def campaign_create(
    *,
    name: str = "campaign",
    dataset: Dataset | None = None,
    questions: tuple[str, ...] = ("plausibility", "typicality"),
    scale: str = "1-5",
) -> Campaign:
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


def describe(
    post: Post, description: str, *, batch=None, stage: str = "describe_image"
) -> StageResult:
    """An image description (or caption) result for the post; items name it as their source."""
    return StageResult.objects.create(
        post=post,
        stage=stage,
        template_hash=f"hash-{stage}",
        model="llava-fake",
        params_hash=f"p{StageResult.objects.count()}",
        batch=batch,
        status=StageResult.Status.OK,
        parsed={"description": description},
    )


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
