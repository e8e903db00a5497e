"""What the campaign form offers: a dataset's batches with their status, the item kinds those
batches produced, the questions people used before, and the annotators who can be members.

Reads only; the rules a choice must follow (a finished batch, a question name) are in
`annotation.validators`, which the services apply whoever asks.
"""

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Max, Min, Q, QuerySet
from django.utils import timezone

from accounts.permissions import ANNOTATORS_GROUP
from annotation.models import Question
from annotation.scales import DEFAULT_QUESTIONS
from annotation.validators import RATEABLE_BATCH_STATUSES
from generation.models import Batch, Dataset
from generation.selectors.items import items_of_batches

# How many names of earlier campaigns' questions the form offers beside the default ones.
EARLIER_QUESTIONS = 30


def batch_label(batch: Batch) -> str:
    """A batch as people know it: pipeline, model (or file), size, when, its id; then its status
    in the words the batch pages use."""
    source = "imported" if batch.imported else (batch.endpoint.name if batch.endpoint else "")
    when = timezone.localtime(batch.created_at).strftime("%d %b %Y %H:%M")
    posts = f"{batch.posts_total} post{'' if batch.posts_total == 1 else 's'}"
    name = " · ".join(filter(None, [batch.pipeline, source, posts, when, f"#{batch.pk}"]))
    return f"{name} — {batch.status_text}"


def dataset_batches(*, dataset: Dataset | None) -> QuerySet[Batch]:
    """The dataset's batches, newest first (none without a dataset)."""
    if dataset is None:
        return Batch.objects.none()
    return Batch.objects.filter(dataset=dataset).select_related("endpoint").order_by("-pk")


def rateable_batches(*, dataset: Dataset) -> QuerySet[Batch]:
    """The batches of the dataset a campaign may rate: the finished ones."""
    return Batch.objects.filter(dataset=dataset, status__in=RATEABLE_BATCH_STATUSES)


def batch_kinds(*, batch_ids: Iterable[int]) -> list[str]:
    """The item kinds these batches produced, in slot order (MIKO's xWant... open first).

    A finished batch's items do not change, so its kinds are kept in the cache for a while: the
    form asks on every change of its batch boxes, and a batch of 1.37M items takes a scan.
    """
    batch_ids = sorted(set(batch_ids))
    if not batch_ids:
        return []
    finished = Batch.objects.filter(pk__in=batch_ids, status__in=RATEABLE_BATCH_STATUSES).count()
    key = f"annotation:batch-kinds:{','.join(map(str, batch_ids))}"
    if finished == len(batch_ids) and (kinds := cache.get(key)) is not None:
        return kinds
    kinds = list(
        items_of_batches(batch_ids=batch_ids)
        .values("kind")
        .annotate(first=Min("position"))
        .order_by("first", "kind")
        .values_list("kind", flat=True)
    )
    if finished == len(batch_ids):
        cache.set(key, kinds, 600)
    return kinds


def known_questions() -> dict[str, str]:
    """{name: prompt}: the default questions, then the names earlier campaigns asked."""
    known = dict(DEFAULT_QUESTIONS)
    earlier = (
        Question.objects.exclude(name__in=known)
        .values("name")
        .annotate(latest=Max("id"))
        .order_by("-latest")[:EARLIER_QUESTIONS]
    )
    for row in earlier:
        known[row["name"]] = ""
    return known


def annotator_choices(*, keep: Iterable[int] = ()) -> QuerySet:
    """Active annotators (members of the annotators group, not admins), by name; `keep` adds the
    members a campaign has already, whoever they are, so that saving it does not drop them."""
    annotators = Q(groups__name=ANNOTATORS_GROUP, is_active=True, is_staff=False)
    return (
        get_user_model()
        .objects.filter(annotators | Q(pk__in=list(keep)))
        .distinct()
        .order_by("username")
    )
