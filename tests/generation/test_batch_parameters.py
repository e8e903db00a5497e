"""What a stage runs with: the paper's sampling defaults, per-batch overrides, template variants;
the effective values key every result."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from generation.models import Batch, StageResult
from generation.pipelines.base import get_pipeline
from generation.runner.run import batch_execute
from generation.services.batches import batch_launch
from tests.factories import fake_endpoint, make_posts

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


def _parameters(batch: Batch) -> dict[str, dict]:
    return {r.stage: r.parameters for r in StageResult.objects.filter(batch=batch).order_by("id")}


def test_miko_runs_key_information_at_0_5_and_intentions_at_0_7(fake_server, call_log) -> None:
    dataset = make_posts("paper", 1)
    batch = batch_execute(
        batch_id=batch_launch(
            dataset=dataset, pipeline="miko", endpoint=fake_endpoint(fake_server), enqueue=False
        ).pk
    )

    stored = _parameters(batch)
    assert stored["key_info"] == {"temperature": 0.5, "max_tokens": 300}
    assert stored["intentions"] == {"temperature": 0.7, "max_tokens": 300}
    request = StageResult.objects.get(batch=batch, stage="intentions").request
    assert request["parameters"] == {"temperature": 0.7, "max_tokens": 300}


def test_a_batch_overrides_one_stage_and_the_override_keys_new_results(fake_server) -> None:
    dataset = make_posts("override", 1)
    endpoint = fake_endpoint(fake_server)
    first = batch_execute(
        batch_id=batch_launch(dataset=dataset, pipeline="miko", endpoint=endpoint, enqueue=False).pk
    )
    second = batch_execute(
        batch_id=batch_launch(
            dataset=dataset,
            pipeline="miko",
            endpoint=endpoint,
            parameters={"stages": {"intentions": {"temperature": 0.2}}},
            enqueue=False,
        ).pk
    )

    assert _parameters(second)["intentions"] == {"temperature": 0.2, "max_tokens": 300}
    # key_info is unchanged, so it comes from the cache; intentions are asked again.
    assert second.stage_progress["key_info"]["cached"] == 1
    assert second.stage_progress["intentions"]["cached"] == 0
    assert first.status == second.status == Batch.Status.DONE


def test_the_template_variant_is_chosen_per_batch(fake_server) -> None:
    dataset = make_posts("variant", 1)
    batch = batch_execute(
        batch_id=batch_launch(
            dataset=dataset,
            pipeline="miko",
            endpoint=fake_endpoint(fake_server),
            parameters={"template_variant": "distillery"},
            enqueue=False,
        ).pk
    )
    miko = get_pipeline("miko")
    key_info = StageResult.objects.get(batch=batch, stage="key_info")
    assert key_info.template_hash == miko.template_hash(miko.stage("key_info"), "distillery")
    assert key_info.template_hash != miko.template_hash(miko.stage("key_info"))


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"stages": {"nope": {"temperature": 1}}}, "'stages' must map stages of miko"),
        ({"stages": {"intentions": {"colour": 1}}}, "unknown parameter 'colour'"),
        ({"template_variant": "poetry"}, "no template variant 'poetry'"),
        ({"stages": "hot"}, "'stages' must map stages"),
    ],
)
def test_bad_batch_parameters_are_refused(fake_server, parameters, message) -> None:
    dataset = make_posts("bad-params", 1)
    with pytest.raises(ValidationError, match=message):
        batch_launch(
            dataset=dataset,
            pipeline="miko",
            endpoint=fake_endpoint(fake_server),
            parameters=parameters,
            enqueue=False,
        )
    assert not Batch.objects.exists()


def test_generate_takes_parameters_and_a_variant(fake_server) -> None:
    make_posts("cli", 1)
    fake_endpoint(fake_server)
    call_command(
        "generate", "--dataset", "cli", "--pipeline", "miko", "--endpoint", "fake",
        "--param", "key_info.temperature=0.1", "--param", "seed=7",
        "--template-variant", "distillery", "--wait",
    )  # fmt: skip
    batch = Batch.objects.get()
    assert batch.parameters == {
        "seed": 7,
        "stages": {"key_info": {"temperature": 0.1}},
        "template_variant": "distillery",
    }
    assert _parameters(batch)["key_info"] == {"temperature": 0.1, "max_tokens": 300, "seed": 7}
    with pytest.raises(CommandError, match="--param wants"):
        call_command("generate", "--dataset", "cli", "--pipeline", "miko", "--endpoint", "fake",
                     "--param", "oops")  # fmt: skip
