"""A small world with one of everything, built through the services, to fill every URL's path.

Two campaigns over one dataset: `anna` rates in campaign A (with the admin `ada`), `otto` only in
campaign B. anna has one post done and one leased in A; A has a finished export and an import job
waiting in the queue. `mark` goes into every text people type (dataset, post and item text,
campaign name and instructions, endpoint and question prompts), so the escaping tests can plant
hostile markup everywhere with the same world.
"""

import io
from dataclasses import dataclass

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Value
from django.db.models.functions import Concat
from PIL import Image

from annotation.models import Assignment, Campaign
from annotation.selectors import task_view
from annotation.services import (
    QuestionSpec,
    RatingInput,
    assignment_claim,
    assignment_submit,
    campaign_create,
)
from comparisons.models import Comparison
from comparisons.services import comparison_create
from critics.learning import held_out_metrics
from critics.models import Critic
from evaluation.models import ExportJob
from evaluation.selectors.filters import ItemFilters
from evaluation.services import export_create, export_run
from generation.models import Batch, Dataset, Endpoint, ImportJob, KnowledgeItem, Post, StageResult
from generation.services.endpoints import endpoint_create
from generation.services.import_jobs import import_job_create
from judges.models import JudgeRating, JudgeRun
from judges.services import judge_run_create
from students.models import EvaluationRun, StudentTraining
from students.services import splits_draw
from tests.factories import miko_batch


@dataclass
class World:
    dataset: Dataset
    post: Post
    item: KnowledgeItem
    batch: Batch
    endpoint: Endpoint
    campaign: Campaign  # anna's (and ada's)
    other_campaign: Campaign  # otto's
    assignment: Assignment  # anna's open lease in `campaign`
    done_assignment: Assignment  # anna's finished post in `campaign`
    export: ExportJob
    import_job: ImportJob
    judge_run: JudgeRun  # queued, on campaign A: one rating, one failure with a raw answer
    critic: Critic  # trained and scored (no scores stored), on campaign A
    comparison: Comparison  # of two done runs, nothing rated yet


def png(color: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color=color).save(buffer, format="PNG")
    return buffer.getvalue()


def build_world(
    *, admin: AbstractBaseUser, annotator: AbstractBaseUser, outsider: AbstractBaseUser, mark=""
) -> World:
    dataset = Dataset.objects.create(name=f"posts {mark}".strip())
    batch = miko_batch(dataset=dataset, posts=3)
    for number, post in enumerate(dataset.posts.order_by("pk")):
        post.text = f"Post {number} {mark}"
        post.image.save(f"p{number}.png", ContentFile(png()), save=False)
        post.save()
    KnowledgeItem.objects.filter(batch=batch).update(text=Concat("kind", Value(f" {mark}")))
    StageResult.objects.filter(batch=batch).update(parsed={"description": f"A picture {mark}"})
    endpoint = endpoint_create(
        name="fake", backend="openai", base_url="http://127.0.0.1:9/v1", model=f"model {mark}"
    )
    questions = [
        QuestionSpec("plausibility", f"Plausible? {mark}"),
        QuestionSpec("typicality", f"Typical? {mark}"),
    ]
    campaign = campaign_create(
        name=f"Campaign A {mark}".strip(),
        dataset=dataset,
        questions=questions,
        overlap=2,
        instructions=f"Rate **every** item. {mark}",
        members=[annotator, admin],
    )
    other = campaign_create(
        name=f"Campaign B {mark}".strip(), dataset=dataset, questions=questions, members=[outsider]
    )
    done = assignment_claim(campaign=campaign, annotator=annotator)
    view = task_view(assignment=done)
    done = assignment_submit(
        assignment=done,
        ratings=[
            RatingInput(item.item.pk, question.question.pk, 4)
            for item in view.items
            for question in view.questions
        ],
        seconds=3.0,
    )
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    splits_draw(dataset=dataset, fractions={"train": 0.5, "test": 0.5}, seed=1, created_by=admin)
    comparison = _comparison(endpoint, admin, mark)
    EvaluationRun.objects.create(
        dataset=dataset,
        split="test",
        endpoint=endpoint,
        endpoint_name=f"{endpoint.name} {mark}",
        pipeline="direct",
        status="done",
        scores={"overall": {"rouge_l": 0.5}, "kinds": {f"xWant {mark}": {"rouge_l": 0.5}}},
        answers=[{"post": "p1", "kind": "xWant", "text": f"an answer {mark}"}],
    )
    export = export_create(
        campaign=campaign, fmt="jsonl", filters=ItemFilters(min_mean={}), created_by=admin
    )
    export = export_run(job_id=export.pk)
    StudentTraining.objects.create(
        export=export, base_model=f"/models/base {mark}", status="failed", error=f"no GPU {mark}"
    )
    import_job = import_job_create(
        file=SimpleUploadedFile("posts.jsonl", b'{"id": "x", "text": "y"}\n'),
        dataset_name=f"upload {mark}".strip(),
        created_by=admin,
    )
    post = dataset.posts.order_by("pk").first()
    judge_run = _judge_run(campaign, endpoint, post.items.order_by("position").first(), admin, mark)
    return World(
        dataset=dataset,
        post=post,
        item=post.items.order_by("position").first(),
        batch=batch,
        endpoint=endpoint,
        campaign=campaign,
        other_campaign=other,
        assignment=lease,
        done_assignment=done,
        export=export,
        import_job=import_job,
        judge_run=judge_run,
        critic=_critic(campaign),
        comparison=comparison,
    )


def _comparison(endpoint, admin, mark: str) -> Comparison:
    """Two runs compared on a dataset of their own (the world's posts keep their items)."""
    dataset = Dataset.objects.create(name=f"compared {mark}".strip())
    for number in range(2):
        Post.objects.create(dataset=dataset, external_id=f"c{number}", text=f"Post {number} {mark}")
    runs = [
        EvaluationRun.objects.create(
            dataset=dataset, split="test", endpoint=endpoint, endpoint_name=f"{name} {mark}",
            pipeline="direct", status="done", scores={"overall": {}, "kinds": {}},
            answers=[{"post": f"c{number}", "kind": "xWant", "text": f"{name} {mark}",
                      "error": ""} for number in range(2)],
        )
        for name in ("teacher", "student")
    ]  # fmt: skip
    return comparison_create(runs=runs, name=f"Comparison {mark}".strip(), created_by=admin)


def _critic(campaign) -> Critic:
    """A trained critic with the metrics of a small made-up cross-validation."""
    labels = np.array([0, 1] * 10)
    metrics = held_out_metrics(labels, np.linspace(0.05, 0.95, 20), np.arange(20) // 2)
    return Critic.objects.create(
        name=f"critic-{campaign.pk}",
        campaign=campaign,
        question=campaign.questions.order_by("position")[0],
        threshold=4,
        status="done",
        scoring_status="done",
        metrics=metrics,
    )


def _judge_run(campaign, endpoint, item, admin, mark: str) -> JudgeRun:
    run = judge_run_create(campaign=campaign, endpoint=endpoint, launched_by=admin, enqueue=False)
    plausibility, typicality = campaign.questions.order_by("position")
    JudgeRating.objects.create(
        run=run, item=item, question=plausibility, call_key="a", status="ok", value=4
    )
    JudgeRating.objects.create(
        run=run,
        item=item,
        question=typicality,
        call_key="b",
        status="failed",
        raw_answer=f"Typical, I think {mark}",
        error=f"ParseError: no line {mark}",
    )
    return run
