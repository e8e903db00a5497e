"""`train_student`: a tiny random Llama trained a few steps on CPU from an sft-chat export, its
adapter loaded by the transformers backend, evaluated on the held-out posts; broken input."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from evaluation.selectors.filters import ItemFilters
from evaluation.services import export_create, export_run
from generation.models import Endpoint
from students.models import EvaluationRun, SplitAssignment, StudentTraining
from students.services import splits_keep
from students.training import student_train, student_training_create
from tests.factories import annotators, campaign_create, posts_with_items, rate

torch = pytest.importorskip("torch")
pytest.importorskip("trl")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.generation.tiny_models import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny")) / "llama"


@pytest.fixture
def export(db, admin_user):
    """A done sft-chat export of the train posts (0 and 1) of a campaign whose posts 2 and 3 are
    in test."""
    campaign = campaign_create(name="c")
    items = posts_with_items(campaign, posts=4, kinds=["xWant", "open"])
    rate(campaign, items, "plausibility", annotators(2), [[5] * 8, [4] * 8])
    posts = sorted({i.post.external_id for i in items})
    kept = SplitAssignment.objects.create(dataset=campaign.dataset, source="import")
    splits_keep(assignment=kept, name="train", external_ids=posts[:2])
    splits_keep(assignment=kept, name="test", external_ids=posts[2:])
    job = export_create(
        campaign=campaign, fmt="sft-chat", filters=ItemFilters(min_mean={}, min_ratings=0)
    )
    return export_run(job_id=job.pk)


def test_a_student_trains_is_registered_and_answers_with_its_adapter(export, tiny, admin_client):
    assert export.status == "done" and export.items_written == 4  # the train posts only
    training = student_training_create(
        export=export, base_model=str(tiny), max_steps=3, enqueue=False
    )
    training = student_train(training_id=training.pk)
    assert training.status == "done", training.error
    assert [step for step, _ in training.losses] == [1, 2, 3]
    endpoint = training.endpoint
    assert endpoint.backend == Endpoint.Backend.TRANSFORMERS
    assert endpoint.model_path == str(tiny)
    assert endpoint.parameters["adapter"] == training.adapter_path

    from generation.backends import backend_for
    from generation.backends.transformers import load_model

    student = backend_for(endpoint).loaded()
    base = load_model(str(tiny), device="cpu", dtype=torch.float32, allow_download=False)
    ids = base.tokenizer("Post: hello", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert not torch.allclose(student.model(ids).logits, base.model(ids).logits)

    page = admin_client.get(f"/student-trainings/{training.pk}/").content.decode()
    assert "<polyline" in page and f"endpoint <strong>{endpoint.name}</strong>" in page

    out = io.StringIO()
    call_command(
        "evaluate", "--dataset", "c-data", "--split", "test", "--endpoint", endpoint.name,
        "--accept", "plausibility=4", "--json", stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    run = EvaluationRun.objects.get(pk=json.loads(out.getvalue())["run"])
    assert run.scores["overall"]["answers"] == 4
    assert run.completion_tokens > 0
    assert run.manifest["endpoint"]["adapter"] == training.adapter_path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"export": 10**9}, "no export 1000000000"),
        ({"base-model": "/no/such/model"}, "not a model folder"),
        ({"max-steps": "0"}, "max_steps is 1 to"),
        ({"format": "jsonl"}, "a student trains on an sft-chat export"),
    ],
)
def test_train_student_refuses_broken_input(export, tiny, change, message):
    if "format" in change:
        export.format = change["format"]
        export.save(update_fields=["format"])
    args = {"export": export.pk, "base-model": str(tiny), "max-steps": "2"}
    args.update({k: v for k, v in change.items() if k != "format"})
    with pytest.raises(CommandError, match=message):
        call_command(
            "train_student", *[f"--{k}={v}" for k, v in args.items()], "--wait",
            stdout=io.StringIO(),
        )  # fmt: skip
    assert not StudentTraining.objects.exists()


def test_an_export_not_done_is_refused(export, tiny):
    export.status = "running"
    export.save(update_fields=["status"])
    with pytest.raises(CommandError, match="is running, not done"):
        call_command(
            "train_student", f"--export={export.pk}", f"--base-model={tiny}", "--wait",
            stdout=io.StringIO(),
        )  # fmt: skip
