"""Importing ratings from a file (csv, Label Studio, a MIKO release), all or nothing.

The readers of the formats are in `annotation.importers`; this module checks the options, finds
each rated post and item and checks every row (`_resolve`), then writes the campaign when it is
new, the annotators, their done assignments and the ratings in one transaction (`_store`).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.services import user_create_annotator
from annotation.errors import AnnotationError
from annotation.hot_path import ratings_upsert
from annotation.importers import DEFAULT_SCALES, READERS, RatingRow, level_value
from annotation.models import Assignment, Campaign, Question, Rating, Task
from annotation.scales import Scale, get_scale
from annotation.selectors import campaign_items
from annotation.services.campaigns import campaign_add_tasks, campaign_create, question_specs
from generation.importers.label_studio import slots_named
from generation.importers.matching import MATCH_BY, MatchedPost, PostsByText
from generation.models import Batch, Dataset, KnowledgeItem, Post
from generation.pipelines.miko import MIKO_KINDS

Fail = Callable[[RatingRow, str], AnnotationError]


@dataclass
class RatingsImportReport:
    campaign: Campaign
    created_campaign: bool
    ratings: int
    posts: int
    annotators: list[str]
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        made = "created" if self.created_campaign else "updated"
        return (
            f"campaign {self.campaign.name} {made}: {self.ratings} ratings of {self.posts} posts "
            f"by {len(self.annotators)} annotator(s)"
        )


def _resolve_items(*, dataset: Dataset, campaign: Campaign | None, posts: dict[str, int]):
    """Items of the rated posts keyed by (post id, kind) and (post id, position), unambiguous."""
    items = KnowledgeItem.objects.filter(post_id__in=posts.values()).select_related("batch")
    if campaign is not None:
        items = items.filter(pk__in=campaign_items(campaign=campaign).values("pk"))
    by_key: dict[tuple, list[KnowledgeItem]] = {}
    for item in items.order_by("-batch__imported", "-batch_id", "position"):
        by_key.setdefault((item.post_id, "kind", item.kind), []).append(item)
        by_key.setdefault((item.post_id, "position", item.position), []).append(item)
    return by_key


def _rows_matched_by_text(rows: list, *, dataset: Dataset, index, fail) -> list:
    """The rows with their post named by the id of the dataset's post of the same text."""
    wanted = {}
    for row in rows:
        if row.text is None:
            raise fail(row, "--match-by text needs the post's text, which this row lacks")
        wanted.setdefault((row.text, row.image), (row.text, row.image))
    found = index.resolve(wanted)
    matched = []
    for row in rows:
        match = found.get((row.text, row.image))
        if match is None:
            raise fail(
                row, f"no post of dataset {dataset.name!r} has the text of post {row.post!r}"
            )
        if not isinstance(match, MatchedPost):
            raise fail(
                row,
                f"the text of post {row.post!r} is the text of several posts ({', '.join(match)});"
                " import with --match-by id",
            )
        matched.append(replace(row, post=match.external_id))
    return matched


def ratings_import(
    *,
    path: Path,
    dataset_name: str,
    campaign_name: str,
    format: str = "csv",
    scale: str | None = None,
    annotator: str | None = None,
    match_by: str = "id",
) -> RatingsImportReport:
    """Import ratings from a file, all or nothing; create the campaign when it does not exist.

    A new campaign covers the rated posts' items, asks the questions the file names on `scale`
    (the format's own scale by default) and has an overlap of at least 3, or the most annotators
    any post has in the file. Annotators the database does not know become inactive users.
    `annotator` names the annotator of a whole file (Label Studio, MIKO release); `match_by="text"`
    finds each rated post by its text instead of its id (the same post under other ids in other
    annotators' files). A rating of a MIKO slot the post has no item for is reported and skipped.
    Raises AnnotationError naming `file:line: problem` or `file: task 7 (element 3, line 120): ...`.
    """
    if format not in READERS:
        raise AnnotationError(f"unknown format {format!r}; known: {', '.join(READERS)}")
    if match_by not in MATCH_BY:
        raise AnnotationError(f"unknown match {match_by!r}; choose one of {', '.join(MATCH_BY)}")
    if annotator is not None:
        annotator = annotator.strip()
        if format == "csv":
            raise AnnotationError("--annotator: the csv format names the annotator on every row")
        if not re.fullmatch(r"[\w.@+-]{1,150}", annotator):
            raise AnnotationError(f"--annotator {annotator!r} is not a valid user name")
    dataset = Dataset.objects.filter(name=dataset_name).first()
    if dataset is None:
        raise AnnotationError(f"no dataset named {dataset_name!r}")
    campaign = Campaign.objects.filter(name=campaign_name).first()
    if campaign is not None and campaign.dataset_id != dataset.pk:
        raise AnnotationError(f"campaign {campaign_name!r} rates another dataset")
    scale_key = scale or DEFAULT_SCALES[format]
    new_scale = get_scale(scale_key)
    reader = READERS[format]
    try:
        # A file the reader refuses raises RatingFileError, an AnnotationError naming the place.
        rows = list(reader(path) if format == "csv" else reader(path, annotator=annotator))
    except OSError as error:
        raise AnnotationError(f"{path}: {error.strerror or error}") from None
    if not rows:
        raise AnnotationError(f"{path}: no ratings in the file")

    def fail(row: RatingRow, problem: str) -> AnnotationError:
        return AnnotationError(f"{path}{row.place}: {problem}")

    if match_by == "text":
        rows = _rows_matched_by_text(rows, dataset=dataset, index=PostsByText(dataset), fail=fail)
    posts = dict(
        Post.objects.filter(dataset=dataset, external_id__in={r.post for r in rows}).values_list(
            "external_id", "id"
        )
    )
    resolved = _resolve(
        rows,
        path=path,
        dataset=dataset,
        campaign=campaign,
        posts=posts,
        new_scale=new_scale,
        fail=fail,
    )
    with transaction.atomic():
        created = campaign is None
        if created:
            names = list(dict.fromkeys(row.question for row, _, _ in resolved.ratings))
            campaign = campaign_create(
                name=campaign_name,
                dataset=dataset,
                batches=Batch.objects.filter(
                    pk__in={item.batch_id for _, item, _ in resolved.ratings}
                ).order_by("pk"),
                questions=question_specs(names=names, scale=scale_key),
                overlap=max(3, *(len(n) for n in resolved.annotators_per_post.values())),
                with_tasks=False,
            )
        users = _store(resolved, path=path, campaign=campaign, post_ids=posts.values())
    return RatingsImportReport(
        campaign=campaign,
        created_campaign=created,
        ratings=len(resolved.ratings),
        posts=len(resolved.annotators_per_post),
        annotators=list(users),
        warnings=resolved.warnings,
    )


@dataclass
class _Resolved:
    ratings: list[tuple[RatingRow, KnowledgeItem, int]]  # (row, item, value on the scale)
    annotators_per_post: dict[int, list[str]]
    warnings: list[str]


def _resolve(
    rows: list[RatingRow],
    *,
    path: Path,
    dataset: Dataset,
    campaign: Campaign | None,
    posts: dict[str, int],
    new_scale: Scale,
    fail: Fail,
) -> _Resolved:
    """Each row's item and value, every row checked before anything is written."""
    items = _resolve_items(dataset=dataset, campaign=campaign, posts=posts)
    questions = {q.name: q for q in campaign.questions.all()} if campaign else {}
    resolved = _Resolved([], {}, [])
    seen: dict[tuple, int] = {}
    for row in rows:
        if row.post not in posts:
            raise fail(row, f"post {row.post!r} is not in dataset {dataset.name!r}")
        post_id = posts[row.post]
        key = (post_id, "kind", row.kind) if row.kind else (post_id, "position", row.position)
        found = items.get(key, [])
        what = f"kind {row.kind!r}" if row.kind else f"item {row.position}"
        if not found:
            where = "in this campaign" if campaign else "in the dataset"
            if row.optional:
                if row.position and 1 <= row.position <= len(MIKO_KINDS):
                    what = f"item {slots_named([MIKO_KINDS[row.position - 1]])}"
                resolved.warnings.append(
                    f"{path}{row.place}: post {row.post!r} has no {what} {where}; "
                    f"{row.annotator}'s {row.question} rating skipped"
                )
                continue
            raise fail(row, f"post {row.post!r} has no {what} {where}")
        imported = [i for i in found if i.batch.imported] or found
        if len({i.batch_id for i in imported}) > 1:
            raise fail(row, f"post {row.post!r} has several items for {what}; rate one batch")
        item = imported[0]
        if campaign:
            if row.question not in questions:
                raise fail(row, f"question {row.question!r} is not in campaign {campaign.name!r}")
            q_scale = get_scale(questions[row.question].scale)
        else:
            if not re.fullmatch(r"[-a-zA-Z0-9_]{1,50}", row.question):
                raise fail(row, f"question {row.question!r} is not a valid name")
            q_scale = new_scale
        value = row.value if row.level is None else level_value(q_scale.values, *row.level)
        if value not in q_scale:
            allowed = ", ".join(str(v) for v in q_scale.values)
            raise fail(row, f"value {value} is not on the {q_scale.label} scale ({allowed})")
        unique = (item.pk, row.question, row.annotator)
        if unique in seen:
            raise fail(
                row,
                f"a second rating of the same item and question by {row.annotator!r}"
                f" (first on line {seen[unique]})",
            )
        seen[unique] = row.line
        names = resolved.annotators_per_post.setdefault(post_id, [])
        if row.annotator not in names:
            names.append(row.annotator)
        resolved.ratings.append((row, item, value))
    return resolved


def _store(resolved: _Resolved, *, path: Path, campaign: Campaign, post_ids) -> dict:
    """The tasks, annotators, done assignments and ratings of the resolved rows; the users by
    name. Runs inside the import's transaction."""
    questions: dict[str, Question] = {q.name: q for q in campaign.questions.all()}
    campaign_add_tasks(campaign=campaign, post_ids=resolved.annotators_per_post)
    users = {}
    for name in dict.fromkeys(row.annotator for row, _, _ in resolved.ratings):
        user = get_user_model().objects.filter(username=name).first()
        users[name] = user or user_create_annotator(username=name, active=False)
    now = timezone.now()
    tasks = {t.post_id: t for t in Task.objects.filter(campaign=campaign, post_id__in=post_ids)}
    assignments = {}
    first_line = {}
    for row, item, _ in resolved.ratings:
        first_line.setdefault((item.post_id, row.annotator), row.place)
    for (post_id, name), line in first_line.items():
        task, user = tasks[post_id], users[name]
        assignment, made = Assignment.objects.get_or_create(
            task=task,
            annotator=user,
            defaults={
                "campaign": campaign,
                "post_id": post_id,
                "status": Assignment.Status.DONE,
                "leased_at": now,
                "expires_at": now,
                "completed_at": now,
            },
        )
        if not made and assignment.status != Assignment.Status.DONE:
            if assignment.status != Assignment.Status.LEASED:  # a leased one is counted
                Task.objects.filter(pk=task.pk).update(taken=F("taken") + 1)
            assignment.status = Assignment.Status.DONE
            assignment.completed_at = now
            assignment.save(update_fields=["status", "completed_at"])
        elif made:
            Task.objects.filter(pk=task.pk).update(taken=F("taken") + 1)
        task.refresh_from_db(fields=["taken"])
        if task.taken > campaign.overlap:
            raise AnnotationError(
                f"{path}{line}: post {task.post_id} would have {task.taken} annotators, "
                f"more than the campaign's overlap of {campaign.overlap}"
            )
        assignments[(post_id, name)] = assignment
    ratings_upsert(
        [
            Rating(
                campaign=campaign,
                item=item,
                question=questions[row.question],
                annotator=users[row.annotator],
                assignment=assignments[(item.post_id, row.annotator)],
                value=value,
                created_at=now,
                updated_at=now,
            )
            for row, item, value in resolved.ratings
        ]
    )
    return users
