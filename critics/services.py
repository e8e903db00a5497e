"""Writes for critics: create one (checked against its data before anything is stored), train it
with cross-validation by post, score every item of its dataset in restartable chunks, and put a
campaign's unclaimed posts in order of its uncertainty."""

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from annotation.models import Assignment, Campaign, Question, Task
from annotation.scales import get_scale
from config.errors import ApplicationError, Conflict
from critics.encoders import check_encoder, embed
from critics.models import Critic, CriticScore
from critics.selectors import (
    SCORE_CHUNK,
    dataset_item_count,
    dataset_items_after,
    item_texts,
    training_data,
    uncertain_posts,
)
from evaluation.selectors.exclusions import MIN_GOLD_ACCURACY
from generation.copying import insert_rows

logger = logging.getLogger(__name__)

# (items scored so far, items to score)
ScoreProgress = Callable[[int, int], None]

if TYPE_CHECKING:
    from critics import learning


def default_exclusions() -> dict:
    return {
        "include_gold": False,
        "include_low_accuracy": False,
        "min_gold_accuracy": MIN_GOLD_ACCURACY,
    }


def critic_create(
    *,
    campaign: Campaign,
    question: str,
    threshold: float,
    name: str = "",
    encoder: str = "",
    exclusions: dict | None = None,
    order_tasks: bool = False,
    created_by=None,
) -> Critic:
    """Record a critic to train (the next version of `name`), once its data can train one.

    Refused, with nothing stored: an unknown question, a threshold outside the question's scale,
    an encoder that is not a local model, and ratings that cannot be cross-validated by post (too
    few items or posts, or too few on either side of the threshold).
    """
    from critics import learning  # scikit-learn: loaded only to train or score

    try:
        q = Question.objects.get(campaign=campaign, name=question)
    except Question.DoesNotExist:
        names = ", ".join(campaign.questions.values_list("name", flat=True)) or "none"
        raise ApplicationError(
            f"campaign {campaign.name!r} has no question {question!r}; questions: {names}",
            field="question",
        ) from None
    values = get_scale(q.scale).values
    if not min(values) <= threshold <= max(values):
        raise ApplicationError(
            f"the threshold {threshold:g} is outside the {q.scale} scale of {question!r}",
            field="threshold",
        )
    if encoder:
        check_encoder(encoder)
    name = name or f"{campaign.name}-{question}-{threshold:g}".replace(".", "_")
    critic = Critic(
        name=name,
        campaign=campaign,
        question=q,
        threshold=threshold,
        kind=Critic.Kind.ENCODER if encoder else Critic.Kind.HASHED,
        encoder=encoder,
        exclusions={**default_exclusions(), **(exclusions or {})},
        order_tasks=order_tasks,
        created_by=created_by,
    )
    data = training_data(critic=critic)
    learning.check_training_data(data.labels, data.posts)
    with transaction.atomic():
        latest = Critic.objects.select_for_update().filter(name=name).aggregate(v=Max("version"))
        critic.version = (latest["v"] or 0) + 1
        critic.full_clean(exclude=["campaign", "question", "created_by"])
        critic.save()
    return critic


def critic_enqueue(*, critic: Critic) -> None:
    """Train (then score) in the background after commit: encoder critics on the `gpu` queue."""
    from critics.tasks import critic_train_task

    queue = "gpu" if critic.kind == Critic.Kind.ENCODER else None
    transaction.on_commit(lambda: critic_train_task.apply_async((critic.pk,), queue=queue))


def critic_schedule(*, critic: Critic) -> Critic:
    """Queue the scoring of the critic's dataset (it resumes after the last stored chunk)."""
    from critics.tasks import critic_score_task

    if critic.status != Critic.Status.DONE:
        raise Conflict(f"critic {critic} is not trained ({critic.status})")
    Critic.objects.filter(pk=critic.pk).update(scoring_status=Critic.Status.QUEUED)
    queue = "gpu" if critic.kind == Critic.Kind.ENCODER else None
    transaction.on_commit(lambda: critic_score_task.apply_async((critic.pk,), queue=queue))
    critic.refresh_from_db()
    return critic


def critic_train(*, critic_id: int, progress: Callable[[int, int], None] | None = None) -> Critic:
    """Cross-validate by post, store the held-out metrics, fit on every rated item and store the
    model. Runs once: a critic that is not queued is returned as it is."""
    from critics import learning  # scikit-learn: loaded only to train or score

    claimed = Critic.objects.filter(pk=critic_id, status=Critic.Status.QUEUED).update(
        status=Critic.Status.RUNNING
    )
    critic = Critic.objects.select_related("campaign", "question").get(pk=critic_id)
    if not claimed:
        return critic
    started = time.monotonic()
    try:
        data = training_data(critic=critic)
        learning.check_training_data(data.labels, data.posts)
        rows = item_texts(item_ids=data.item_ids.tolist())
        labels = data.labels
        if critic.kind == Critic.Kind.ENCODER:
            x = embed(critic.encoder, rows)

            def fit(train):
                model = learning.EmbeddingModel.fit_embedded(
                    x[train], labels[train], critic.encoder
                )
                return lambda test: 1 / (1 + np.exp(-(x[test] @ model.weights + model.bias)))

            final = lambda: learning.EmbeddingModel.fit_embedded(x, labels, critic.encoder)  # noqa: E731
        else:

            def fit(train):
                model = learning.HashedModel.fit([rows[i] for i in train], labels[train])
                return lambda test: model.probabilities([rows[i] for i in test])

            final = lambda: learning.HashedModel.fit(rows, labels)  # noqa: E731
        predicted = learning.out_of_fold(rows, labels, data.posts, fit, progress)
        metrics = learning.held_out_metrics(labels, predicted, data.posts)
        model = final()
    except ApplicationError as error:
        return _failed(critic, str(error))
    except Exception as error:  # recorded for the page; the worker itself must not crash
        logger.exception("training critic %s failed", critic_id)
        return _failed(critic, str(error))
    model_file = ContentFile(learning.model_bytes(model))
    critic.model_file.save(f"{critic.name}-v{critic.version}.npz", model_file, save=False)
    Critic.objects.filter(pk=critic.pk).update(
        status=Critic.Status.DONE,
        metrics=metrics,
        model_file=critic.model_file.name,
        sklearn_version=learning.sklearn_version(),
        seconds=round(time.monotonic() - started, 3),
        trained_at=timezone.now(),
        scoring_status=Critic.Status.QUEUED,
        error="",
    )
    critic.refresh_from_db()
    return critic


def _failed(critic: Critic, message: str) -> Critic:
    Critic.objects.filter(pk=critic.pk).update(status=Critic.Status.FAILED, error=message)
    critic.refresh_from_db()
    return critic


def critic_model(*, critic: Critic) -> "learning.Model":
    """The stored model; refused when it was trained with another scikit-learn (its hashed
    features would not be the same)."""
    from critics import learning  # scikit-learn: loaded only to train or score

    if critic.status != Critic.Status.DONE or not critic.model_file:
        raise Conflict(f"critic {critic} is not trained")
    if critic.sklearn_version != learning.sklearn_version():
        raise Conflict(
            f"critic {critic} was trained with scikit-learn {critic.sklearn_version}; this is "
            f"{learning.sklearn_version()}: train it again"
        )
    with critic.model_file.open("rb") as stored:
        return learning.model_from_bytes(stored.read())


def critic_score(
    *, critic_id: int, progress: ScoreProgress | None = None, chunk_size: int = SCORE_CHUNK
) -> Critic:
    """Score every item of the critic's dataset, in chunks of item ids, each stored (with COPY on
    PostgreSQL) in one transaction with the last id it reached.

    Restartable: it resumes after the last stored chunk, so a scoring stopped by a dead worker
    just runs again; two at once take turns on the critic's row and never score an item twice.
    Items added to the dataset later (higher ids) are scored by the next run.
    """
    critic = Critic.objects.select_related("campaign").get(pk=critic_id)
    model = critic_model(critic=critic)
    dataset_id = critic.campaign.dataset_id
    started = time.monotonic()
    remaining = dataset_item_count(dataset_id=dataset_id, after=critic.scored_through)
    Critic.objects.filter(pk=critic_id).update(
        scoring_status=Critic.Status.RUNNING,
        to_score=critic.scored + remaining,
        scoring_error="",
    )
    total = critic.scored + remaining
    try:
        while True:
            with transaction.atomic():
                locked = Critic.objects.select_for_update().get(pk=critic_id)
                rows = dataset_items_after(
                    dataset_id=dataset_id, after=locked.scored_through, limit=chunk_size
                )
                if not rows:
                    break
                scores = model.probabilities(rows)
                insert_rows(
                    CriticScore,
                    ["critic", "item", "score"],
                    [(critic_id, r.item_id, float(s)) for r, s in zip(rows, scores, strict=True)],
                    need_ids=False,
                )
                scored = locked.scored + len(rows)
                Critic.objects.filter(pk=critic_id).update(
                    scored_through=rows[-1].item_id, scored=scored
                )
            if progress:
                progress(scored, total)
    except Exception as error:  # recorded for the page; a rerun resumes after the last chunk
        logger.exception("scoring with critic %s failed", critic_id)
        Critic.objects.filter(pk=critic_id).update(
            scoring_status=Critic.Status.FAILED, scoring_error=str(error)
        )
        raise
    Critic.objects.filter(pk=critic_id).update(
        scoring_status=Critic.Status.DONE,
        scoring_seconds=round(time.monotonic() - started, 3),
    )
    critic.refresh_from_db()
    if critic.order_tasks:
        critic_order_tasks(critic=critic)
    return critic


def critic_order_tasks(*, critic: Critic) -> int:
    """Put the critic's campaign's untouched posts (no assignment yet, not gold) in order of the
    critic's uncertainty, most uncertain first; returns how many were ordered.

    The claim hands out the posts of equal `taken` in task id order and has no priority column, so
    the untouched tasks are written again, in the new order, with new (higher) ids: a task nobody
    has claimed has no assignment or rating to keep. Posts some annotator already holds or rated
    keep their place ahead of them. One transaction, the tasks locked.
    """
    if critic.scoring_status != Critic.Status.DONE:
        raise Conflict(f"critic {critic} has not scored its dataset yet")
    with transaction.atomic():
        untouched = (
            Task.objects.select_for_update()
            .filter(campaign_id=critic.campaign_id, is_gold=False, taken=0)
            .exclude(
                pk__in=Assignment.objects.filter(campaign_id=critic.campaign_id).values("task")
            )
        )
        post_ids = list(untouched.values_list("post_id", flat=True))
        order = uncertain_posts(critic=critic, post_ids=post_ids)
        untouched.delete()
        Task.objects.bulk_create(
            [Task(campaign_id=critic.campaign_id, post_id=post, taken=0) for post, _ in order],
            batch_size=2000,
        )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Task._meta.db_table}")
    return len(order)
