"""Creating a blind comparison: the answers of two or more evaluation runs on the same posts become
knowledge items in one finished batch, rated by one campaign that never says which run wrote what.

- Runs: at least two, each done, all of one dataset and split (one endpoint twice is a valid sanity
  check). Posts: those where every run has at least one usable answer (a paired design); the others
  are left out and counted. Errors and empty answers are never rated; they are counted per run.
- Items: one (post, kind, text) is one item (`generation.services.items.items_store`), so two runs
  that wrote the same sentence share an item, rated once and counted for each (`ComparedItem`).
  An answer identical to an item the dataset already holds is that item.
- Blind: the items are created in an order drawn from the seed, so within a kind the rating page's
  order (position, then id) does not follow the runs' order; they carry the kind's slot as their
  position, the image description the runs' references were read with, and no trace of the run.
  The campaign's name and instructions, which annotators read, may not name an endpoint.
"""

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import Campaign
from annotation.selectors import campaign_items
from annotation.services import QuestionSpec, campaign_create
from comparisons.models import ComparedItem, ComparedRun, Comparison
from config.converters import MAX_ID
from config.errors import ApplicationError
from generation.models import COMPARISON_PIPELINE, Batch, KnowledgeItem, Post
from generation.pipelines.miko import MIKO_KINDS
from generation.services.items import items_store
from students.models import EvaluationRun

DEFAULT_SEED = 13
MAX_RUNS = 10
PIPELINE = COMPARISON_PIPELINE


def evaluation_runs_named(*, run_ids: Sequence[int]) -> list[EvaluationRun]:
    """The runs of these ids, in the order given; an id named twice or naming no run is refused."""
    seen: set[int] = set()
    for run_id in run_ids:
        if run_id in seen:
            raise ApplicationError(f"run {run_id} is named twice", field="runs")
        seen.add(run_id)
    bad = [run_id for run_id in run_ids if not 1 <= run_id <= MAX_ID]
    if bad:
        raise ApplicationError(f"{bad[0]} is not a run id", field="runs")
    runs = EvaluationRun.objects.in_bulk(list(run_ids))
    missing = [str(run_id) for run_id in run_ids if run_id not in runs]
    if missing:
        raise ApplicationError(f"no evaluation run {', '.join(missing)}", field="runs")
    return [runs[run_id] for run_id in run_ids]


def _check_runs(runs: Sequence[EvaluationRun]) -> None:
    if len(runs) < 2:
        raise ApplicationError("a comparison needs at least two runs", field="runs")
    if len(runs) > MAX_RUNS:
        raise ApplicationError(f"a comparison takes at most {MAX_RUNS} runs", field="runs")
    if len({run.pk for run in runs}) < len(runs):
        raise ApplicationError("each run may be named once", field="runs")
    for run in runs:
        if run.status != EvaluationRun.Status.DONE:
            raise ApplicationError(
                f"run {run.pk} ({run.endpoint_name}) is {run.status}: only done runs are compared",
                field="runs",
            )
    first = runs[0]
    for run in runs[1:]:
        if (run.dataset_id, run.split) != (first.dataset_id, first.split):
            raise ApplicationError(
                f"run {run.pk} is of dataset {run.dataset.name!r}, split {run.split!r}; run "
                f"{first.pk} of dataset {first.dataset.name!r}, split {first.split!r}: "
                "compared runs answer the same posts",
                field="runs",
            )


def _check_blind(runs: Sequence[EvaluationRun], name: str, instructions: str) -> None:
    """Annotators read the campaign's name and instructions: neither may name an endpoint."""
    for run in runs:
        label = run.endpoint_name.strip().lower()
        for field_name, text in (("name", name), ("instructions", instructions)):
            if label and label in text.lower():
                raise ApplicationError(
                    f"the campaign's {field_name} names endpoint {run.endpoint_name!r}, which "
                    "annotators would read: the comparison is blind",
                    field=field_name,
                )


def _usable(answer: dict) -> bool:
    return not answer.get("error") and bool(str(answer.get("text") or "").strip())


def _position(kind: str) -> int:
    """The kind's MIKO slot (other kinds after them), as the teacher's items are placed."""
    return MIKO_KINDS.index(kind) + 1 if kind in MIKO_KINDS else len(MIKO_KINDS) + 1


@dataclass
class _Plan:
    """What the runs' answers become: the posts compared and, per run, its (post, kind, text)s."""

    posts: dict[str, int]  # external id -> post id, compared posts only
    left_out: int
    keys: list[list[tuple[int, str, str]]] = field(default_factory=list)  # per run, in run order
    answers: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def _plan(runs: Sequence[EvaluationRun]) -> _Plan:
    usable_posts = [{a["post"] for a in run.answers if _usable(a)} for run in runs]
    answered = set().union(*({a["post"] for a in run.answers} for run in runs))
    common = set.intersection(*usable_posts)
    ids = dict(
        Post.objects.filter(dataset_id=runs[0].dataset_id, external_id__in=common).values_list(
            "external_id", "pk"
        )
    )
    plan = _Plan(posts=ids, left_out=len(answered) - len(ids))
    for run in runs:
        keys = []
        for answer in run.answers:
            if answer["post"] in ids and _usable(answer):
                keys.append((ids[answer["post"]], answer["kind"], answer["text"].strip()))
        plan.keys.append(list(dict.fromkeys(keys)))
        plan.answers.append(len(run.answers))
        plan.failed.append(sum(not _usable(a) for a in run.answers))
    return plan


def _descriptions(runs: Sequence[EvaluationRun], post_ids: Iterable[int]) -> dict[int, int]:
    """{post id: the image description result its references were read with}, from the reference
    campaign of the first run whose campaign still exists (none: no description)."""
    names = [run.manifest.get("references", {}).get("campaign") for run in runs]
    found = {c.name: c for c in Campaign.objects.filter(name__in=[n for n in names if n])}
    reference = next((found[n] for n in names if n in found), None)
    if reference is None:
        return {}
    rows = (
        campaign_items(campaign=reference)
        .filter(post_id__in=list(post_ids), description_result__isnull=False)
        .order_by("post_id", "position", "id")
        .values_list("post_id", "description_result_id")
    )
    described: dict[int, int] = {}
    for post_id, result_id in rows:
        described.setdefault(post_id, result_id)
    return described


def _stored_ids(keys: set[tuple[int, str, str]]) -> dict[tuple[int, str, str], int]:
    """{(post, kind, text): item id} of the stored items with these keys."""
    stored = KnowledgeItem.objects.filter(
        post_id__in={post for post, _, _ in keys}, kind__in={kind for _, kind, _ in keys}
    ).values_list("id", "post_id", "kind", "text")
    return {(post, kind, text): pk for pk, post, kind, text in stored if (post, kind, text) in keys}


@transaction.atomic
def comparison_create(
    *,
    runs: Sequence[EvaluationRun],
    name: str,
    questions: Sequence[QuestionSpec] = (),
    overlap: int = 3,
    lease_minutes: int = 15,
    instructions: str = "",
    members: Iterable[AbstractBaseUser] = (),
    seed: int = DEFAULT_SEED,
    created_by: AbstractBaseUser | None = None,
) -> Comparison:
    """Make the runs' answers items of a new finished batch and a campaign that rates them (see
    the module docstring); refused, with nothing stored, when the runs cannot be compared."""
    runs = list(runs)
    _check_runs(runs)
    _check_blind(runs, name, instructions)
    if not 0 <= seed <= MAX_ID:
        raise ApplicationError(f"the seed is a whole number from 0 to {MAX_ID}", field="seed")
    plan = _plan(runs)
    if not plan.posts:
        raise ApplicationError(
            "no post has a usable answer from every run: nothing to compare", field="runs"
        )
    now = timezone.now()
    dataset = runs[0].dataset
    batch = Batch.objects.create(
        dataset=dataset,
        pipeline=PIPELINE,
        imported=True,
        source=f"answers of evaluation runs on the {runs[0].split} split, compared blind",
        status=Batch.Status.DONE,
        posts_total=len(plan.posts),
        posts_done=len(plan.posts),
        launched_by=created_by,
        started_at=now,
        finished_at=now,
    )
    keys = list(dict.fromkeys(key for run_keys in plan.keys for key in run_keys))
    random.Random(seed).shuffle(keys)
    described = _descriptions(runs, plan.posts.values())
    items_store(
        batch_id=batch.pk,
        items=[
            KnowledgeItem(
                post_id=post,
                batch=batch,
                kind=kind,
                position=_position(kind),
                text=text,
                description_result_id=described.get(post),
                provenance={"source": PIPELINE},
            )
            for post, kind, text in keys
        ],
        now=now,
    )
    campaign = campaign_create(
        name=name,
        dataset=dataset,
        batches=[batch],
        questions=questions,
        overlap=overlap,
        lease_minutes=lease_minutes,
        instructions=instructions,
        members=members,
        created_by=created_by,
    )
    comparison = Comparison.objects.create(
        campaign=campaign,
        batch=batch,
        dataset=dataset,
        split=runs[0].split,
        seed=seed,
        posts_compared=len(plan.posts),
        posts_left_out=plan.left_out,
        created_by=created_by,
    )
    item_ids = _stored_ids(set(keys))
    for position, run in enumerate(runs):
        compared = ComparedRun.objects.create(
            comparison=comparison,
            run=run,
            position=position,
            label=run.endpoint_name,
            answers=plan.answers[position],
            failed=plan.failed[position],
        )
        ComparedItem.objects.bulk_create(
            ComparedItem(compared_run=compared, item_id=item_ids[key])
            for key in plan.keys[position]
        )
    return comparison
