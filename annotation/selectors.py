from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Avg, Count, Exists, F, OuterRef, Q, QuerySet, Sum
from rest_framework import serializers

from annotation.models import Assignment, Campaign, GoldAnswer, Question, Rating, Task
from annotation.relations import relation_label
from annotation.scales import Scale, get_scale
from config import prepared
from generation.models import BatchItem, KnowledgeItem, Post, StageResult
from generation.selectors.items import description_text


def campaign_items(*, campaign: Campaign) -> QuerySet[KnowledgeItem]:
    """The items a campaign rates: its batches' items of its kinds, on the campaign's posts.

    An item several of its batches produced or reused is rated once.
    """
    items = KnowledgeItem.objects.filter(
        Exists(
            BatchItem.objects.filter(item=OuterRef("pk"), batch__in=campaign.batches.values("pk"))
        ),
        post__dataset_id=campaign.dataset_id,
    )
    if campaign.kinds:
        items = items.filter(kind__in=campaign.kinds)
    return items


# Columns read by plain SQL on the annotators' hot path: the Campaign's without `kinds` (a JSON
# column Django decodes itself; it stays deferred) and all of the Assignment's.
_CAMPAIGN_FIELDS = [f for f in Campaign._meta.concrete_fields if f.name != "kinds"]
_ASSIGNMENT_FIELDS = list(Assignment._meta.concrete_fields)

_OWN_ASSIGNMENT_SQL = f"""
SELECT {", ".join(f"a.{f.column}" for f in _ASSIGNMENT_FIELDS)},
       {", ".join(f"c.{f.column}" for f in _CAMPAIGN_FIELDS)}
FROM annotation_assignment a
JOIN annotation_campaign c ON c.id = a.campaign_id AND c.is_active
JOIN annotation_campaign_members m ON m.campaign_id = c.id AND m.user_id = %(user)s
WHERE a.id = %(assignment)s AND a.annotator_id = %(user)s
"""


ASSIGNMENT_COLUMNS = ", ".join(f.column for f in _ASSIGNMENT_FIELDS)


def _from_row(model, fields, row):
    return model.from_db(connection.alias, [f.attname for f in fields], row)


def assignment_from_row(row, campaign: Campaign) -> Assignment:
    """An Assignment from a row of ASSIGNMENT_COLUMNS, with its campaign attached."""
    assignment = _from_row(Assignment, _ASSIGNMENT_FIELDS, row)
    assignment.campaign = campaign
    return assignment


_CAMPAIGN_AND_LEASE_SQL = f"""
SELECT {", ".join(f"c.{f.column}" for f in _CAMPAIGN_FIELDS)},
       {", ".join(f"a.{f.column}" for f in _ASSIGNMENT_FIELDS)}
FROM annotation_campaign c
JOIN annotation_campaign_members m ON m.campaign_id = c.id AND m.user_id = %(user)s
LEFT JOIN annotation_assignment a
    ON a.campaign_id = c.id AND a.annotator_id = %(user)s AND a.status = %(leased)s
WHERE c.id = %(campaign)s AND c.is_active
"""


def open_lease(*, campaign: Campaign, annotator: AbstractBaseUser) -> Assignment | None:
    """The annotator's open lease in the campaign (at most one), with the campaign attached."""
    if connection.vendor == "postgresql":
        row = prepared.fetchone(
            f"SELECT {ASSIGNMENT_COLUMNS} FROM {Assignment._meta.db_table} "
            "WHERE campaign_id = %s AND annotator_id = %s AND status = %s LIMIT 1",
            [campaign.pk, annotator.pk, Assignment.Status.LEASED],
        )
        return None if row is None else assignment_from_row(row, campaign)
    lease = (
        Assignment.objects.filter(
            campaign=campaign, annotator=annotator, status=Assignment.Status.LEASED
        )
        .select_related("post", "task")
        .first()
    )
    if lease is not None:
        lease.campaign = campaign
    return lease


def member_campaign_and_lease(
    *, user: AbstractBaseUser, campaign_id: int
) -> tuple[Campaign | None, Assignment | None]:
    """An active campaign the user rates in (or None) and their open lease in it.

    One query on PostgreSQL; annotators' next-task requests start here.
    """
    if connection.vendor != "postgresql":
        # One membership row per campaign and user, so the join needs no DISTINCT.
        campaign = Campaign.objects.filter(pk=campaign_id, members=user, is_active=True).first()
        if campaign is None:
            return None, None
        return campaign, open_lease(campaign=campaign, annotator=user)
    params = {"user": user.pk, "campaign": campaign_id, "leased": Assignment.Status.LEASED}
    row = prepared.fetchone(_CAMPAIGN_AND_LEASE_SQL, params)
    if row is None:
        return None, None
    split = len(_CAMPAIGN_FIELDS)
    campaign = _from_row(Campaign, _CAMPAIGN_FIELDS, row[:split])
    lease = None if row[split] is None else assignment_from_row(row[split:], campaign)
    return campaign, lease


def member_campaign(*, user: AbstractBaseUser, campaign_id: int) -> Campaign | None:
    """An active campaign the user rates in, or None."""
    return member_campaign_and_lease(user=user, campaign_id=campaign_id)[0]


def own_assignment(*, user: AbstractBaseUser, assignment_id: int) -> Assignment | None:
    """One of the user's assignments, in an active campaign they still rate in, or None."""
    if connection.vendor == "postgresql":
        row = prepared.fetchone(_OWN_ASSIGNMENT_SQL, {"user": user.pk, "assignment": assignment_id})
        if row is None:
            return None
        split = len(_ASSIGNMENT_FIELDS)
        campaign = _from_row(Campaign, _CAMPAIGN_FIELDS, row[split:])
        return assignment_from_row(row[:split], campaign)
    return (
        Assignment.objects.select_related("campaign")
        .filter(pk=assignment_id, annotator=user, campaign__members=user, campaign__is_active=True)
        .first()
    )


@dataclass(frozen=True)
class RatingTargets:
    """What a submission must cover: the questions (id -> name, scale) and the post's items."""

    questions: dict[int, tuple[str, str]]
    items: set[int]

    @classmethod
    def from_row(cls, questions, items) -> "RatingTargets":
        return cls({pk: (name, scale) for pk, name, scale in questions or []}, set(items or []))


def rating_targets(*, assignment: Assignment) -> RatingTargets:
    campaign = assignment.campaign
    if connection.vendor == "postgresql":
        params = {"campaign": campaign.pk, "post": assignment.post_id}
        return RatingTargets.from_row(*prepared.fetchone(RATING_TARGETS_SQL, params))
    items = campaign_items(campaign=campaign).filter(post_id=assignment.post_id)
    return RatingTargets(
        {q.pk: (q.name, q.scale) for q in campaign.questions.all()},
        set(items.values_list("id", flat=True)),
    )


def own_assignment_to_submit(
    *, user: AbstractBaseUser, assignment_id: int
) -> tuple[Assignment | None, RatingTargets | None]:
    """`own_assignment` and its `rating_targets`, in one query on PostgreSQL."""
    if connection.vendor != "postgresql":
        assignment = own_assignment(user=user, assignment_id=assignment_id)
        return assignment, None if assignment is None else rating_targets(assignment=assignment)
    row = prepared.fetchone(
        _OWN_ASSIGNMENT_TO_SUBMIT_SQL, {"user": user.pk, "assignment": assignment_id}
    )
    if row is None:
        return None, None
    split = len(_ASSIGNMENT_FIELDS)
    campaign = _from_row(Campaign, _CAMPAIGN_FIELDS, row[split:-2])
    return assignment_from_row(row[:split], campaign), RatingTargets.from_row(*row[-2:])


def campaigns_visible_to(*, user: AbstractBaseUser) -> QuerySet[Campaign]:
    """Admins see every campaign; annotators only the active ones they are members of."""
    if user.is_staff:
        return Campaign.objects.all()
    return Campaign.objects.filter(members=user, is_active=True)


def items_description(items: list[KnowledgeItem]) -> str:
    """The image description (or caption) annotators read beside these items of one post: the
    one the first of them (in slot order) was generated from, not the post's latest."""
    result_id = next((i.description_result_id for i in items if i.description_result_id), None)
    if result_id is None:
        return ""
    parsed = StageResult.objects.filter(pk=result_id).values_list("parsed", flat=True).first()
    return description_text(parsed)


@dataclass
class QuestionView:
    question: Question
    scale: Scale

    @property
    def choices(self) -> list[tuple[int, str]]:
        return [(value, self.scale.anchors.get(value, "")) for value in self.scale.values]


@dataclass
class ItemView:
    item: KnowledgeItem
    relation: str
    values: dict[int, int] = field(default_factory=dict)  # question id -> this annotator's value
    cells: list[tuple["QuestionView", int | None]] = field(default_factory=list)


@dataclass
class TaskView:
    """Everything the rating page shows for one assignment, and nothing of other annotators."""

    assignment: Assignment
    post: Post
    description: str
    items: list[ItemView]
    questions: list[QuestionView]

    def refresh_cells(self) -> None:
        """Pair each item with each question and the value chosen, for the template."""
        for item in self.items:
            item.cells = [(q, item.values.get(q.question.pk)) for q in self.questions]


# PostgreSQL: the items a campaign rates on one post (as `campaign_items`), for the two calls an
# annotator makes per post.
_POST_ITEMS_SQL = """
    SELECT i.id, i.kind, i.text, i.position, i.description_result_id
    FROM generation_knowledgeitem i
    JOIN generation_post p ON p.id = i.post_id
    JOIN annotation_campaign c ON c.id = {campaign} AND c.dataset_id = p.dataset_id
    WHERE i.post_id = {post}
      AND EXISTS (SELECT 1 FROM generation_batchitem bi
                  JOIN annotation_campaign_batches cb
                      ON cb.batch_id = bi.batch_id AND cb.campaign_id = {campaign}
                  WHERE bi.item_id = i.id)
      AND (jsonb_array_length(c.kinds) = 0
           OR i.kind IN (SELECT jsonb_array_elements_text(c.kinds)))
"""
_PARAMETER_ITEMS_SQL = _POST_ITEMS_SQL.format(campaign="%(campaign)s", post="%(post)s")

# The questions (id, name, scale) and the item ids a submission must cover (`items` is a CTE of
# _POST_ITEMS_SQL), as the two columns `RatingTargets.from_row` reads.
_TARGETS_COLUMNS = """
    (SELECT json_agg(json_build_array(q.id, q.name, q.scale))
     FROM annotation_question q WHERE q.campaign_id = {campaign}),
    (SELECT array_agg(items.id) FROM items)
"""
RATING_TARGETS_SQL = f"""
WITH items AS ({_PARAMETER_ITEMS_SQL})
SELECT {_TARGETS_COLUMNS.format(campaign="%(campaign)s")}
"""

# Everything the API shows for one assignment, in one round trip: the post, its description, its
# items, the questions, and the annotator's own values (looked up only once the post was rated).
_TASK_SQL = f"""
WITH items AS ({_PARAMETER_ITEMS_SQL})
SELECT
    p.external_id, p.text, p.image,
    (SELECT s.parsed ->> 'description' FROM items
     JOIN generation_stageresult s ON s.id = items.description_result_id
     ORDER BY items.position, items.id LIMIT 1),
    (SELECT json_agg(json_build_array(items.id, items.kind, items.text)
                     ORDER BY items.position, items.id)
     FROM items),
    (SELECT json_agg(json_build_array(q.id, q.name, q.prompt, q.scale)
                     ORDER BY q.position, q.id)
     FROM annotation_question q WHERE q.campaign_id = %(campaign)s),
    CASE WHEN %(rated)s THEN
        (SELECT json_agg(json_build_array(r.item_id, r.question_id, r.value))
         FROM annotation_rating r
         WHERE r.assignment_id = %(assignment)s
           AND r.item_id IN (SELECT items.id FROM items))
    END
FROM generation_post p
WHERE p.id = %(post)s
"""


# The submitter's assignment, its campaign and what the submission must cover, in one round trip.
_OWN_ASSIGNMENT_TO_SUBMIT_SQL = f"""
WITH own AS ({_OWN_ASSIGNMENT_SQL}),
items AS ({
    _POST_ITEMS_SQL.format(
        campaign="(SELECT campaign_id FROM own)", post="(SELECT post_id FROM own)"
    )
})
SELECT own.*, {_TARGETS_COLUMNS.format(campaign="own.campaign_id")}
FROM own
"""


def _datetime(value) -> str:
    return serializers.DateTimeField().to_representation(value)


def _question_data(pk: int, name: str, prompt: str, scale_key: str) -> dict:
    scale = get_scale(scale_key)
    return {
        "id": pk,
        "name": name,
        "prompt": prompt,
        "scale": scale_key,
        "choices": [{"value": v, "label": scale.anchors.get(v, "")} for v in scale.values],
    }


def _task_dict(
    *,
    assignment: Assignment,
    post: tuple[str, str, str],
    description: str,
    items: list[tuple[int, str, str, dict]],
    questions: list[tuple[int, str, str, str]],
) -> dict:
    """The API's task: `post` is (external id, text, image URL), each item (id, kind, text, the
    annotator's values by question id) and each question (id, name, prompt, scale)."""
    external_id, text, image = post
    return {
        "assignment": assignment.pk,
        "status": assignment.status,
        "expires_at": _datetime(assignment.expires_at),
        "post": {
            "id": assignment.post_id,
            "external_id": external_id,
            "text": text,
            "image": image,
        },
        "description": description,
        "items": [
            {
                "id": pk,
                "kind": kind,
                "relation": relation_label(kind),
                "text": item_text,
                "my_values": {str(q): v for q, v in values.items()},
            }
            for pk, kind, item_text, values in items
        ],
        "questions": [_question_data(*question) for question in questions],
    }


def task_data_from_view(*, assignment: Assignment) -> dict:
    """`task_data` built from `task_view` with the ORM, on any database."""
    view = task_view(assignment=assignment)
    post = view.post
    return _task_dict(
        assignment=assignment,
        post=(post.external_id, post.text, post.image.url if post.image else None),
        description=view.description,
        items=[(i.item.pk, i.item.kind, i.item.text, i.values) for i in view.items],
        questions=[
            (q.question.pk, q.question.name, q.question.prompt, q.question.scale)
            for q in view.questions
        ],
    )


def task_data(*, assignment: Assignment) -> dict:
    """The API's view of one assignment (the shape of `TaskSerializer`), as plain data.

    On PostgreSQL it is read with one query; elsewhere it is built from `task_view`.
    """
    if connection.vendor != "postgresql":
        return task_data_from_view(assignment=assignment)
    external_id, text, image, description, items, questions, mine = prepared.fetchone(
        _TASK_SQL,
        {
            "post": assignment.post_id,
            "campaign": assignment.campaign_id,
            "assignment": assignment.pk,
            "rated": assignment.status != Assignment.Status.LEASED,
        },
    )
    values: dict[int, dict[int, int]] = {}
    for item_id, question_id, value in mine or []:
        values.setdefault(item_id, {})[question_id] = value
    image_url = Post._meta.get_field("image").storage.url(image) if image else None
    return _task_dict(
        assignment=assignment,
        post=(external_id, text, image_url),
        description=description or "",
        items=[(pk, kind, item_text, values.get(pk, {})) for pk, kind, item_text in items or []],
        questions=questions or [],
    )


def task_view(*, assignment: Assignment) -> TaskView:
    campaign = assignment.campaign
    questions = [QuestionView(q, get_scale(q.scale)) for q in campaign.questions.all()]
    items = list(
        campaign_items(campaign=campaign)
        .filter(post_id=assignment.post_id)
        .order_by("position", "id")
    )
    mine: dict[int, dict[int, int]] = {}
    # A fresh lease has no ratings yet: only a post rated before is looked up.
    if assignment.status != Assignment.Status.LEASED:
        for item_id, question_id, value in Rating.objects.filter(
            annotator_id=assignment.annotator_id, item__in=items, campaign=campaign
        ).values_list("item_id", "question_id", "value"):
            mine.setdefault(item_id, {})[question_id] = value
    view = TaskView(
        assignment=assignment,
        post=assignment.post,
        description=items_description(items),
        items=[ItemView(item, relation_label(item.kind), mine.get(item.pk, {})) for item in items],
        questions=questions,
    )
    view.refresh_cells()
    return view


def previous_assignment(
    *, campaign: Campaign, annotator: AbstractBaseUser, before: Assignment | None = None
) -> Assignment | None:
    """The annotator's most recently completed post in the campaign (before `before`)."""
    done = Assignment.objects.filter(
        campaign=campaign, annotator=annotator, status=Assignment.Status.DONE
    )
    if before is not None:
        completed_at = (
            Assignment.objects.filter(pk=before.pk).values_list("completed_at", flat=True).first()
        )
        if completed_at is not None:
            done = done.filter(
                Q(completed_at__lt=completed_at) | Q(completed_at=completed_at, id__lt=before.pk)
            )
    return done.order_by("-completed_at", "-id").first()


def gold_accuracy(*, campaign: Campaign, annotator: AbstractBaseUser) -> float | None:
    """Share of this annotator's ratings on gold items that match the expected answer."""
    answers = {
        (item_id, question_id): value
        for item_id, question_id, value in GoldAnswer.objects.filter(campaign=campaign).values_list(
            "item_id", "question_id", "value"
        )
    }
    if not answers:
        return None
    ratings = Rating.objects.filter(
        campaign=campaign, annotator=annotator, item_id__in={k[0] for k in answers}
    ).values_list("item_id", "question_id", "value")
    scored = [value == answers[(i, q)] for i, q, value in ratings if (i, q) in answers]
    return sum(scored) / len(scored) if scored else None


@dataclass
class Progress:
    posts: int
    posts_finished: int
    slots_goal: int
    slots_done: int
    slots_leased: int

    @property
    def percent(self) -> float:
        return 100.0 * self.slots_done / self.slots_goal if self.slots_goal else 0.0


def tasks_with_done(tasks: QuerySet[Task]) -> QuerySet[Task]:
    """The tasks with `done`, how many of their assignments are done (not a column: models.py)."""
    return tasks.annotate(
        done=Count("assignments", filter=Q(assignments__status=Assignment.Status.DONE))
    )


def campaign_progress(*, campaign: Campaign) -> Progress:
    """Done against goal, counted on the posts (not gold posts): each post needs `overlap`.

    A task's `taken` counts its leased and done assignments, so what is done is `taken` less the
    open leases; those are few (one per annotator at most), which keeps this cheap on a campaign
    of any size.
    """
    k = campaign.overlap
    totals = Task.objects.filter(campaign=campaign, is_gold=False).aggregate(
        posts=Count("id"), slots=Sum("taken"), full=Count("id", filter=Q(taken__gte=k))
    )
    # Per post with open leases: its `taken` and how many of those are leased.
    open_leases = (
        Assignment.objects.filter(
            campaign=campaign, status=Assignment.Status.LEASED, task__is_gold=False
        )
        .values_list("task_id", "task__taken")
        .annotate(n=Count("id"))
        .order_by()
    )
    leased = waiting = 0
    for _, taken, n in open_leases:
        leased += n
        waiting += taken >= k > taken - n  # full, but not finished while a lease is open
    return Progress(
        posts=totals["posts"],
        posts_finished=totals["full"] - waiting,
        slots_goal=totals["posts"] * k,
        slots_done=(totals["slots"] or 0) - leased,
        slots_leased=leased,
    )


def annotator_progress(*, campaign: Campaign) -> list[dict]:
    """Per annotator: posts done, skipped, open; mean seconds per post; gold accuracy."""
    rows = (
        Assignment.objects.filter(campaign=campaign)
        .values("annotator_id", username=F("annotator__username"))
        .annotate(
            done=Count("id", filter=Q(status=Assignment.Status.DONE)),
            skipped=Count("id", filter=Q(status=Assignment.Status.SKIPPED)),
            expired=Count("id", filter=Q(status=Assignment.Status.EXPIRED)),
            leased=Count("id", filter=Q(status=Assignment.Status.LEASED)),
            seconds=Avg("seconds_spent", filter=Q(status=Assignment.Status.DONE)),
        )
        .order_by("username")
    )
    result = []
    for row in rows:
        row["gold_accuracy"] = gold_accuracy(campaign=campaign, annotator=row["annotator_id"])
        result.append(row)
    return result


def annotator_done_count(*, campaign: Campaign, annotator: AbstractBaseUser) -> int:
    return Assignment.objects.filter(
        campaign=campaign, annotator=annotator, status=Assignment.Status.DONE
    ).count()


def ratings_of(*, annotator: AbstractBaseUser, campaign: Campaign | None = None):
    """An annotator's own ratings, never anyone else's."""
    ratings = Rating.objects.filter(annotator=annotator).select_related("item__post", "question")
    if campaign is not None:
        ratings = ratings.filter(campaign=campaign)
    return ratings.order_by("id")
