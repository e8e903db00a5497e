"""GPU stages: chunks of posts go to the `gpu` queue, generate as one batch, and the runner reads
their results back. A tiny LLaVA-style model built in the test describes the images (on the CPU);
the other MIKO stages run on the fake OpenAI-compatible server."""

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from generation.models import Batch, StageResult  # noqa: E402
from generation.runner.run import batch_execute  # noqa: E402
from generation.services.batches import batch_launch  # noqa: E402
from generation.services.endpoints import endpoint_create  # noqa: E402
from tests.factories import fake_endpoint, make_posts  # noqa: E402

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


def test_a_gpu_stage_runs_in_chunks_beside_api_stages(
    request, fake_server, call_log, settings, monkeypatch
) -> None:
    models = request.getfixturevalue("model_dirs")
    from config.celery import app
    from generation.runner import gpu as execution

    chunks = []
    original = execution.batch_execute_gpu_chunk

    def spy(**kwargs) -> None:
        chunks.append(kwargs)
        original(**kwargs)

    monkeypatch.setattr(app.conf, "task_always_eager", True)
    monkeypatch.setattr(execution, "batch_execute_gpu_chunk", spy)
    settings.DISTILLERY_GPU_CHUNK_SIZE = 3
    dataset = make_posts("miko", 7)
    llava = endpoint_create(
        name="llava",
        backend="transformers",
        model_path=str(models / "llava"),
        model="tiny-llava",
        parameters={"max_tokens": 8, "batch_size": 4},
    )
    batch = batch_launch(
        dataset=dataset,
        pipeline="miko",
        endpoint=fake_endpoint(fake_server),
        stage_endpoints={"describe_image": llava},
        enqueue=False,
    )
    batch = batch_execute(batch_id=batch.pk)

    assert batch.status == Batch.Status.DONE
    described = StageResult.objects.filter(batch=batch, stage="describe_image")
    assert described.count() == 7
    assert set(described.values_list("model", flat=True)) == {"tiny-llava"}
    assert all(result.raw_answer or result.error for result in described)
    ok_posts = set(described.filter(status="ok").values_list("post_id", flat=True))
    assert ok_posts
    assert all(len(chunk["post_ids"]) <= 3 for chunk in chunks)
    assert sorted(p for chunk in chunks for p in chunk["post_ids"]) == sorted(
        dataset.posts.values_list("id", flat=True)
    )
    # Every post whose description worked went on to the API stages; no API call for the others.
    assert batch.posts_done == len(ok_posts) and batch.posts_failed == 7 - len(ok_posts)
    assert fake_server.stage_counts["describe_image"] == 0
    assert fake_server.stage_counts["key_info"] == len(ok_posts)
    assert batch.stage_progress["describe_image"]["done"] == len(ok_posts)
    assert not call_log.repeated()

    requests = fake_server.requests
    again = batch_execute(
        batch_id=batch_launch(
            dataset=dataset,
            pipeline="miko",
            endpoint=batch.endpoint,
            stage_endpoints={"describe_image": llava},
            enqueue=False,
        ).pk
    )
    assert again.posts_done == batch.posts_done and fake_server.requests == requests
