"""The OpenAI-compatible backend over real HTTP against the fake server."""

import asyncio
import json
import logging
import time

import pytest

from generation.backends import backend_for
from generation.backends.base import BackendError, ChatRequest
from generation.fake_openai import FakeOpenAIServer
from generation.models import Endpoint
from generation.pipelines.base import StageInput, get_pipeline

SECRET = "sk-distillery-test-1234567890"
IMAGE = "data:image/png;base64,iVBORw0KGgo="


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(server, monkeypatch):
    server.reset()
    server.latency = 0.0
    server.api_key = None
    monkeypatch.setenv("DISTILLERY_KEY_TEST", SECRET)


def endpoint(server, **fields):
    values = {
        "name": "fake",
        "backend": "openai",
        "base_url": server.base_url,
        "model": "gpt-fake",
        "api_key_env": "DISTILLERY_KEY_TEST",
        "concurrency": 8,
        **fields,
    }
    return Endpoint(**values)


def intentions_request(parameters=None):
    miko = get_pipeline("miko")
    stage_input = StageInput(
        text="is anyone else okay with this … cause im not",
        image_data_url=None,
        metadata={},
        upstream={},
    )
    return miko.build_request(miko.stage("intentions"), stage_input, parameters or {})


def complete(backend, request):
    async def run():
        try:
            return await backend.acomplete(request)
        finally:
            await backend.aclose()

    return asyncio.run(run())


def failure(backend, request) -> BackendError:
    with pytest.raises(BackendError) as info:
        complete(backend, request)
    return info.value


def test_an_answer_comes_back_with_its_tokens_and_latency(server):
    server.latency = 0.05
    completion = complete(backend_for(endpoint(server)), intentions_request())

    items = get_pipeline("miko").stage("intentions").parse(completion.text)
    assert items["xWant"].startswith("After posting this Tweet, the user wants to express")
    assert completion.prompt_tokens > 0 and completion.completion_tokens > 0
    assert completion.latency_ms >= 50 and completion.finish_reason == "stop"
    assert server.last_request["model"] == "gpt-fake"


def test_images_travel_as_data_urls_in_the_vision_format(server):
    miko = get_pipeline("miko")
    stage_input = StageInput(text="hi", image_data_url=IMAGE, metadata={}, upstream={})
    request = miko.build_request(miko.stage("describe_image"), stage_input, {})
    complete(backend_for(endpoint(server)), request)

    content = server.last_request["messages"][0]["content"]
    assert content[1] == {"type": "image_url", "image_url": {"url": IMAGE}}


def test_sampling_parameters_merge_and_backend_options_stay_home(server):
    backend = backend_for(
        endpoint(server, parameters={"temperature": 0.7, "timeout": 30, "top_k": 40})
    )
    complete(backend, intentions_request({"temperature": 0.1, "max_tokens": 300}))

    sent = server.last_request
    assert (sent["temperature"], sent["max_tokens"], sent["top_k"]) == (0.1, 300, 40)
    assert "timeout" not in sent and "structured_output" not in sent
    assert "response_format" not in sent


def test_structured_output_is_used_where_the_endpoint_supports_it(server):
    backend = backend_for(endpoint(server, parameters={"structured_output": True}))
    completion = complete(backend, intentions_request())

    response_format = server.last_request["response_format"]
    stage = get_pipeline("miko").stage("intentions")
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"] == stage.json_schema
    assert list(json.loads(completion.text)) == list(stage.json_schema["properties"])
    assert len(stage.items(stage.parse(completion.text))) == 10


def test_rate_limits_are_retryable_and_keep_retry_after_and_raw(server):
    server.retry_after = 2.5
    server.fail_next("rate_limit")
    error = failure(backend_for(endpoint(server)), intentions_request())

    assert (error.retryable, error.status, error.retry_after) == (True, 429, 2.5)
    assert "Rate limit reached" in str(error) and '"rate_limit_error"' in error.raw


def test_server_errors_are_retryable(server):
    server.fail_next("server_error")
    error = failure(backend_for(endpoint(server)), intentions_request())
    assert (error.retryable, error.status) == (True, 500)


def test_timeouts_are_retryable(server):
    server.hang_seconds = 20
    server.fail_next("timeout")
    backend = backend_for(endpoint(server, parameters={"timeout": 0.3}))
    started = time.perf_counter()
    error = failure(backend, intentions_request())

    assert error.retryable and error.status is None and "0.3 s" in str(error)
    assert time.perf_counter() - started < 5


def test_malformed_bodies_are_retryable_and_kept_raw(server):
    server.fail_next("malformed")
    error = failure(backend_for(endpoint(server)), intentions_request())
    assert error.retryable and error.status == 200
    assert error.raw.startswith('{"id": "chatcmpl-fake"')


def test_truncated_answers_come_back_marked_and_parse_as_partial(server):
    server.fail_next("truncated")
    completion = complete(backend_for(endpoint(server)), intentions_request())
    assert completion.finish_reason == "length"
    # Issue 11: the slots before the cut are kept, the others named as missing.
    stage = get_pipeline("miko").stage("intentions")
    assert stage.missing_slots(stage.parse(completion.text))[-1] == "open"


def test_other_client_errors_are_not_retryable(server):
    server.fail_next("bad_request")
    error = failure(backend_for(endpoint(server)), intentions_request())
    assert (error.retryable, error.status) == (False, 400)


def test_a_refused_connection_is_retryable():
    with FakeOpenAIServer() as gone:
        url = gone.base_url
    error = failure(
        backend_for(Endpoint(backend="openai", base_url=url, model="m")), ChatRequest([])
    )
    assert error.retryable and "connection" in str(error)


def test_the_api_key_comes_from_the_environment_and_never_shows(server, caplog):
    caplog.set_level(logging.DEBUG)
    server.api_key = SECRET
    backend = backend_for(endpoint(server))
    complete(backend, intentions_request())
    assert server.last_api_key == SECRET

    server.api_key = "sk-another"
    error = failure(backend_for(endpoint(server)), intentions_request())
    assert (error.retryable, error.status) == (False, 401)
    for shown in (repr(backend), str(error), repr(error), error.raw, caplog.text):
        assert SECRET not in shown
    assert "DISTILLERY_KEY_TEST" in repr(backend)


def test_an_unset_api_key_variable_is_a_clear_permanent_error(server, monkeypatch):
    monkeypatch.delenv("DISTILLERY_KEY_TEST")
    with pytest.raises(BackendError, match="DISTILLERY_KEY_TEST .* is not set") as info:
        backend_for(endpoint(server))
    assert not info.value.retryable


def test_calls_overlap_up_to_the_endpoint_concurrency(server):
    server.latency = 0.2

    async def run(concurrency, calls):
        backend = backend_for(endpoint(server, concurrency=concurrency))
        started = time.perf_counter()
        await asyncio.gather(*(backend.acomplete(intentions_request()) for _ in range(calls)))
        await backend.aclose()
        return time.perf_counter() - started

    assert asyncio.run(run(64, 64)) < 2.0
    assert server.peak_concurrency == 64
    server.reset()
    asyncio.run(run(4, 12))
    assert server.peak_concurrency == 4


def test_a_backend_survives_a_new_event_loop(server):
    backend = backend_for(endpoint(server))
    request = intentions_request()
    first = asyncio.run(backend.acomplete(request))
    second = asyncio.run(backend.acomplete(request))
    asyncio.run(backend.aclose())
    assert first.text == second.text


@pytest.mark.parametrize("structured", [False, True], ids=["text", "structured"])
def test_the_three_miko_stages_chain_through_the_backend(server, structured):
    miko = get_pipeline("miko")
    backend = backend_for(endpoint(server, parameters={"structured_output": structured}))
    text = "is anyone else okay with this … cause im not"

    async def run():
        upstream = {}
        for wave in miko.waves():
            (stage,) = wave
            stage_input = StageInput(
                text=text, image_data_url=IMAGE, metadata={}, upstream=upstream
            )
            completion = await backend.acomplete(miko.build_request(stage, stage_input, {}))
            upstream[stage.name] = stage.parse(completion.text)
        await backend.aclose()
        return upstream

    upstream = asyncio.run(run())
    assert upstream["describe_image"]["description"].startswith("The image features a young boy")
    assert upstream["key_info"]["concept"] == "Agreement/Disagreement"
    items = miko.stage("intentions").items(upstream["intentions"])
    assert [item.position for item in items] == list(range(1, 11))
    assert server.stage_counts == {"describe_image": 1, "key_info": 1, "intentions": 1}
    assert "Concept: Agreement/Disagreement." in server.last_request["messages"][0]["content"]
