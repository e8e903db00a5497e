"""Campaigns: create one (its questions and one Task per post with items), add tasks, update it."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, OuterRef

from annotation.errors import AnnotationError
from annotation.models import Campaign, Question, Task
from annotation.scales import DEFAULT_QUESTIONS, get_scale
from annotation.selectors import campaign_items
from annotation.validators import CAMPAIGN_VALIDATORS, validate_question_name
from generation.models import Batch, Dataset


@dataclass(frozen=True)
class QuestionSpec:
    name: str
    prompt: str = ""
    scale: str = "1-5"


def question_specs(*, names: Sequence[str], scale: str = "1-5") -> list[QuestionSpec]:
    """Questions by name; the default ones get their standard prompt."""
    get_scale(scale)
    return [
        QuestionSpec(name, DEFAULT_QUESTIONS.get(name, name.capitalize()), scale) for name in names
    ]


def _validate(fields: Mapping[str, object]) -> None:
    """Check each setting with its validator (annotation.validators), as the form and API do."""
    for name, value in fields.items():
        validator = CAMPAIGN_VALIDATORS.get(name)
        if validator is None:
            continue
        try:
            validator(value)
        except ValidationError as error:
            raise AnnotationError(error.messages[0], field=name) from None


def _validate_question_name(name: str) -> None:
    try:
        validate_question_name(name)
    except ValidationError as error:
        raise AnnotationError(error.messages[0], field="questions") from None


@transaction.atomic
def campaign_create(
    *,
    name: str,
    dataset: Dataset,
    batches: Iterable[Batch] = (),
    kinds: Sequence[str] = (),
    questions: Sequence[QuestionSpec] = (),
    overlap: int = 3,
    lease_minutes: int = 15,
    instructions: str = "",
    gold_rate: float = 0.0,
    members: Iterable[AbstractBaseUser] = (),
    created_by: AbstractBaseUser | None = None,
    with_tasks: bool = True,
) -> Campaign:
    """Create a campaign and one Task per post that has items to rate.

    Without batches, every batch of the dataset is rated. Tasks are written with one
    INSERT ... SELECT, so a campaign over 137,287 posts takes seconds, not minutes.
    """
    if Campaign.objects.filter(name=name).exists():
        raise AnnotationError(f"a campaign named {name!r} already exists")
    _validate({"overlap": overlap, "lease_minutes": lease_minutes, "gold_rate": gold_rate})
    batches = list(batches) or list(Batch.objects.filter(dataset=dataset))
    for batch in batches:
        if batch.dataset_id != dataset.pk:
            raise AnnotationError(f"batch {batch.pk} belongs to another dataset")
    questions = list(questions) or question_specs(names=list(DEFAULT_QUESTIONS))
    seen = set()
    for spec in questions:
        get_scale(spec.scale)
        _validate_question_name(spec.name)
        if spec.name in seen:
            raise AnnotationError(f"question {spec.name!r} is named twice")
        seen.add(spec.name)
    campaign = Campaign.objects.create(
        name=name,
        dataset=dataset,
        kinds=list(kinds),
        overlap=overlap,
        lease_minutes=lease_minutes,
        instructions=instructions,
        gold_rate=gold_rate,
        created_by=created_by,
    )
    campaign.batches.set(batches)
    campaign.members.set(list(members))
    Question.objects.bulk_create(
        Question(campaign=campaign, name=q.name, prompt=q.prompt, scale=q.scale, position=i)
        for i, q in enumerate(questions)
    )
    if with_tasks:
        campaign_add_tasks(campaign=campaign)
    return campaign


def campaign_add_tasks(*, campaign: Campaign, post_ids: Iterable[int] | None = None) -> int:
    """Add a Task for each post with items in the campaign (or of `post_ids`) that lacks one."""
    posts = campaign_items(campaign=campaign).values("post_id")
    if post_ids is not None:
        post_ids = list(post_ids)
        if not post_ids:
            return 0  # an empty IN () cannot be written as SQL
        posts = posts.filter(post_id__in=post_ids)
    posts = (
        posts.exclude(Exists(Task.objects.filter(campaign=campaign, post_id=OuterRef("post_id"))))
        .distinct()
        .order_by("post_id")
    )
    select_sql, params = posts.query.sql_with_params()
    table = Task._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (campaign_id, post_id, is_gold, taken) "
            f"SELECT %s, post_id, %s, 0 FROM ({select_sql}) AS posts",
            [campaign.pk, False, *params],
        )
        return cursor.rowcount


# What may change once a campaign runs: not its dataset, batches, kinds, questions nor overlap,
# which the tasks and the claim's counters were built on.
UPDATABLE_FIELDS = ("instructions", "lease_minutes", "gold_rate", "is_active", "show_gold_accuracy")


def campaign_update(*, campaign: Campaign, **fields) -> Campaign:
    """Change some of `UPDATABLE_FIELDS` and the members; validated as the form and API do, and
    only the fields whose value changes are written."""
    unknown = set(fields) - set(UPDATABLE_FIELDS) - {"members"}
    if unknown:
        raise AnnotationError(f"these fields cannot change: {', '.join(sorted(unknown))}")
    members = fields.pop("members", None)
    _validate(fields)
    changed = [name for name, value in fields.items() if getattr(campaign, name) != value]
    with transaction.atomic():
        for name in changed:
            setattr(campaign, name, fields[name])
        if changed:
            campaign.save(update_fields=changed)
        if members is not None:
            campaign.members.set(members)
    return campaign
