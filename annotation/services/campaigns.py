"""Campaigns: create one (its questions and one Task per post with items), add tasks, update it,
add members."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, OuterRef

from annotation.errors import AnnotationError
from annotation.models import Assignment, Campaign, Question, Task
from annotation.scales import DEFAULT_QUESTIONS, get_scale
from annotation.selectors import campaign_items
from annotation.validators import (
    CAMPAIGN_VALIDATORS,
    RATEABLE_BATCH_STATUSES,
    validate_batch_rateable,
    validate_question_name,
)
from generation.models import COMPARISON_PIPELINE, Batch, Dataset


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


def _checked_batches(*, dataset: Dataset, batches: Iterable[Batch]) -> list[Batch]:
    """The batches a campaign on `dataset` rates: those named, each of the dataset and finished;
    every finished batch of the dataset when none is named, but for blind comparisons' batches."""
    batches = list(batches)
    if not batches:
        return list(
            Batch.objects.filter(dataset=dataset, status__in=RATEABLE_BATCH_STATUSES).exclude(
                pipeline=COMPARISON_PIPELINE
            )
        )
    for batch in batches:
        if batch.dataset_id != dataset.pk:
            raise AnnotationError(f"batch {batch.pk} belongs to another dataset", field="batches")
        try:
            validate_batch_rateable(batch)
        except ValidationError as error:
            raise AnnotationError(error.messages[0], field="batches") from None
    return batches


def _checked_questions(questions: Sequence[QuestionSpec]) -> list[QuestionSpec]:
    """The questions, each checked; the default ones when none are given."""
    questions = list(questions) or question_specs(names=list(DEFAULT_QUESTIONS))
    seen = set()
    for spec in questions:
        get_scale(spec.scale)
        _validate_question_name(spec.name)
        if spec.name in seen:
            raise AnnotationError(f"question {spec.name!r} is named twice", field="questions")
        seen.add(spec.name)
    return questions


def _check_name_free(name: str, *, campaign: Campaign | None = None) -> None:
    others = Campaign.objects.filter(name=name)
    if campaign is not None:
        others = others.exclude(pk=campaign.pk)
    if others.exists():
        raise AnnotationError(f"a campaign named {name!r} already exists", field="name")


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

    Only finished batches are rated (`validators.validate_batch_rateable`); without batches,
    every finished batch of the dataset. Tasks are written with one INSERT ... SELECT, so a
    campaign over 137,287 posts takes seconds, not minutes.
    """
    _check_name_free(name)
    _validate({"overlap": overlap, "lease_minutes": lease_minutes, "gold_rate": gold_rate})
    batches = _checked_batches(dataset=dataset, batches=batches)
    questions = _checked_questions(questions)
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
    _questions_set(campaign=campaign, questions=questions)
    if with_tasks:
        campaign_add_tasks(campaign=campaign)
    return campaign


def _questions_set(*, campaign: Campaign, questions: Sequence[QuestionSpec]) -> None:
    """Make the campaign's questions these, in this order. A question that keeps its name keeps
    its row (and its gold answers); the others go."""
    existing = {q.name: q for q in campaign.questions.all()}
    campaign.questions.exclude(name__in=[q.name for q in questions]).delete()
    for position, spec in enumerate(questions):
        question = existing.get(spec.name) or Question(campaign=campaign, name=spec.name)
        question.prompt, question.scale, question.position = spec.prompt, spec.scale, position
        question.save()


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


# What may change at any time: the name, the settings (and the members).
UPDATABLE_FIELDS = (
    "name",
    "instructions",
    "lease_minutes",
    "gold_rate",
    "is_active",
    "show_gold_accuracy",
)
# What may change only until the first post is handed out: the items, the questions (and their
# scales) and k, on which the tasks, the claim's counters and every rating are built.
SETUP_FIELDS = ("dataset", "batches", "kinds", "questions", "overlap")


def _setup_changes(campaign: Campaign, fields: Mapping[str, object]) -> dict[str, object]:
    """The setup fields whose value changes, checked and in the form they are written."""
    changes: dict[str, object] = {}
    dataset = fields.get("dataset", campaign.dataset)
    if dataset.pk != campaign.dataset_id:
        changes["dataset"] = dataset
    if "batches" in fields or "dataset" in changes:
        batches = _checked_batches(dataset=dataset, batches=fields.get("batches", ()))
        if {b.pk for b in batches} != set(campaign.batches.values_list("pk", flat=True)):
            changes["batches"] = batches
    if "kinds" in fields and sorted(fields["kinds"]) != sorted(campaign.kinds):
        changes["kinds"] = list(fields["kinds"])
    if "questions" in fields:
        questions = _checked_questions(fields["questions"])
        current = [QuestionSpec(q.name, q.prompt, q.scale) for q in campaign.questions.all()]
        if questions != current:
            changes["questions"] = questions
    if "overlap" in fields and fields["overlap"] != campaign.overlap:
        changes["overlap"] = fields["overlap"]
    return changes


def campaign_update(*, campaign: Campaign, **fields) -> Campaign:
    """Change the campaign: `UPDATABLE_FIELDS` and the members at any time, `SETUP_FIELDS` only
    until the first post is handed out (refused afterwards, naming the fields).

    Validated as the form and API do; only the fields whose value changes are written. When the
    items change (dataset, batches, kinds), the posts without items lose their task and the new
    ones get one.
    """
    unknown = set(fields) - set(UPDATABLE_FIELDS) - set(SETUP_FIELDS) - {"members"}
    if unknown:
        raise AnnotationError(f"a campaign has no field {', '.join(sorted(unknown))}")
    members = fields.pop("members", None)
    _validate(fields)
    if "name" in fields:
        _check_name_free(fields["name"], campaign=campaign)
    changed = [n for n in UPDATABLE_FIELDS if n in fields and getattr(campaign, n) != fields[n]]
    with transaction.atomic():
        setup = _setup_changes(campaign, fields)
        if setup:
            # Lock the campaign's tasks first: no claim can hand a post out meanwhile.
            list(Task.objects.filter(campaign=campaign).select_for_update().values_list("pk"))
            handed_out = Assignment.objects.filter(campaign=campaign).count()
            if handed_out:
                names = ", ".join("k" if n == "overlap" else n for n in setup)
                raise AnnotationError(
                    f"{names} cannot change once annotators have started "
                    f"({handed_out} post{'' if handed_out == 1 else 's'} handed out): "
                    "make a new campaign to rate other items, on other questions or with another k",
                    field=next(iter(setup)),
                )
        for name in changed:
            setattr(campaign, name, fields[name])
        for name in ("dataset", "kinds", "overlap"):
            if name in setup:
                setattr(campaign, name, setup[name])
                changed.append(name)
        if changed:
            campaign.save(update_fields=changed)
        if "batches" in setup:
            campaign.batches.set(setup["batches"])
        if "questions" in setup:
            _questions_set(campaign=campaign, questions=setup["questions"])
        if {"dataset", "batches", "kinds"} & set(setup):
            rated = campaign_items(campaign=campaign).values("post_id")
            Task.objects.filter(campaign=campaign).exclude(post_id__in=rated).delete()
            campaign_add_tasks(campaign=campaign)
        if members is not None:
            campaign.members.set(members)
    return campaign


def campaign_add_members(*, campaign: Campaign, members: Iterable[AbstractBaseUser]) -> int:
    """Add members to the campaign (those it has already stay); returns how many are new."""
    members = list(members)
    if not members:
        raise AnnotationError("choose at least one annotator to add", field="members")
    current = set(campaign.members.values_list("pk", flat=True))
    new = [m for m in members if m.pk not in current]
    campaign.members.add(*new)
    return len(new)
