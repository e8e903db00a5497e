"""Reads of the annotation app: a campaign's items, the rating page's view of a post and the API's
task shape, gold accuracy, progress, an annotator's own ratings.

The reads the annotators' two calls make on every post (membership, open lease, the task as one
query, what a submission must cover) are in `annotation.hot_path`, beside their PostgreSQL
statements.
"""

from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Avg, Count, F, Q, QuerySet, Sum
from rest_framework import serializers

from annotation.models import Assignment, Campaign, GoldAnswer, Question, Rating, Task
from annotation.relations import relation_label
from annotation.scales import Scale, get_scale
from generation.models import KnowledgeItem, Post
from generation.selectors.items import items_of_batches, result_descriptions


def campaign_items(*, campaign: Campaign) -> QuerySet[KnowledgeItem]:
    """The items a campaign rates: its batches' items of its kinds, on the campaign's posts.

    An item several of its batches produced or reused is rated once.
    """
    items = items_of_batches(batch_ids=campaign.batches.values("pk")).filter(
        post__dataset_id=campaign.dataset_id
    )
    if campaign.kinds:
        items = items.filter(kind__in=campaign.kinds)
    return items


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
    return result_descriptions(result_ids=[result_id]).get(result_id, "")


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


def task_dict(
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
        "version": assignment.version,
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


def gold_accuracies(
    *, campaign: Campaign, annotator: AbstractBaseUser | int | None = None
) -> dict[int, tuple[int, int]]:
    """Per annotator who rated a gold item: (ratings matching the expected answer, gold ratings).

    A gold rating is a rating of an item and question that has a gold answer in the campaign. One
    grouped join, led by the gold answers (few) through the ratings' unique (item, question,
    annotator) index. `annotator` (a user or id) keeps to one annotator.
    """
    sql = (
        f"SELECT r.annotator_id, SUM(CASE WHEN r.value = g.value THEN 1 ELSE 0 END), COUNT(*) "
        f"FROM {GoldAnswer._meta.db_table} g JOIN {Rating._meta.db_table} r "
        f"ON r.item_id = g.item_id AND r.question_id = g.question_id "
        f"AND r.campaign_id = g.campaign_id "
        f"WHERE g.campaign_id = %s"
    )
    params = [campaign.pk]
    if annotator is not None:
        sql += " AND r.annotator_id = %s"
        params.append(getattr(annotator, "pk", annotator))
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} GROUP BY r.annotator_id", params)
        return {user: (int(hits), int(total)) for user, hits, total in cursor.fetchall()}


def accuracy(hits_and_total: tuple[int, int] | None) -> float | None:
    """A (hits, total) pair of `gold_accuracies` as a share; None when nothing was scored."""
    if not hits_and_total or not hits_and_total[1]:
        return None
    hits, total = hits_and_total
    return hits / total


def gold_accuracy(*, campaign: Campaign, annotator: AbstractBaseUser) -> float | None:
    """Share of this annotator's ratings on gold items that match the expected answer."""
    scored = gold_accuracies(campaign=campaign, annotator=annotator)
    return accuracy(scored.get(annotator.pk))


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
    scored = gold_accuracies(campaign=campaign)
    result = []
    for row in rows:
        row["gold_accuracy"] = accuracy(scored.get(row["annotator_id"]))
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
