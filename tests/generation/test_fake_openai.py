"""The fake OpenAI-compatible server, driven over HTTP by the official openai client and httpx."""

import asyncio
import json
import time

import httpx
import openai
import pytest

from generation.fake_openai import FakeOpenAIServer, main
from generation.pipelines.base import StageInput, all_pipelines, get_pipeline
from generation.pipelines.miko import parse_intentions

SAMPLE_TEXT = (
    "xxxpanded call me ... playboy at half past emoji_119 emoji_119 emoji_119 emoji_119 emoji_9"
)


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_counters(server):
    server.reset()
    server.latency = 0.0


# One client for the module: a new httpx client per call costs ~80 ms of TLS setup.
HTTP = httpx.Client(timeout=10)


def chat(server, content, **extra):
    body = {"model": "m", "messages": [{"role": "user", "content": content}], **extra}
    return HTTP.post(f"{server.base_url}/chat/completions", json=body)


def stage_prompt(pipeline_name, stage_name, text=SAMPLE_TEXT):
    pipeline = get_pipeline(pipeline_name)
    stage_input = StageInput(text=text, image_data_url=None, metadata={}, upstream={})
    return pipeline.render(pipeline.stage(stage_name), stage_input)


def test_replays_the_real_miko_answer_of_a_sample_post(server):
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
    completion = client.chat.completions.create(
        model="llava", messages=[{"role": "user", "content": stage_prompt("miko", "intentions")}]
    )

    answer = completion.choices[0].message.content
    assert answer.startswith("Intention1: After posting this Tweet, the user wants to attract")
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.model == "llava"
    assert server.stage_counts == {"intentions": 1}
    assert server.last_api_key == "sk-test"


@pytest.mark.parametrize(
    "pipeline_name,stage_name",
    [(name, stage.name) for name, p in all_pipelines().items() for stage in p.stages],
)
def test_recognises_every_stage_from_its_prompt(server, pipeline_name, stage_name):
    response = chat(server, stage_prompt(pipeline_name, stage_name, text="Messi scores again"))

    assert response.status_code == 200
    answer = response.json()["choices"][0]["message"]["content"]
    assert server.stage_counts == {stage_name: 1}
    get_pipeline(pipeline_name).stage(stage_name).parse(answer)


def test_unknown_posts_get_a_stable_sample_answer(server):
    first = chat(server, stage_prompt("miko", "key_info", text="a post of my own")).json()
    again = chat(server, stage_prompt("miko", "key_info", text="a post of my own")).json()
    assert first["choices"][0]["message"]["content"] == again["choices"][0]["message"]["content"]
    assert first["choices"][0]["message"]["content"].startswith("Concept: ")


def test_structured_output_requests_get_json(server):
    stage = get_pipeline("miko").stage("intentions")
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "intentions", "schema": stage.json_schema, "strict": True},
    }
    response = chat(server, "anything", response_format=response_format)

    parsed = json.loads(response.json()["choices"][0]["message"]["content"])
    assert list(parsed) == list(stage.json_schema["properties"])
    assert parse_intentions(json.dumps(parsed)) == parsed


def test_models_are_listed(server):
    response = HTTP.get(f"{server.base_url}/models")
    assert response.json()["data"][0]["id"] == "fake-model"


def test_queued_faults_answer_like_a_failing_server(server):
    server.retry_after = 2.5
    for fault in ("rate_limit", "server_error", "bad_request", "malformed", "truncated"):
        server.fail_next(fault)
    responses = [chat(server, stage_prompt("miko", "intentions")) for _ in range(6)]

    assert [r.status_code for r in responses] == [429, 500, 400, 200, 200, 200]
    assert responses[0].headers["Retry-After"] == "2.5"
    with pytest.raises(json.JSONDecodeError):
        json.loads(responses[3].text)
    truncated, whole = (r.json()["choices"][0] for r in responses[4:])
    assert truncated["finish_reason"] == "length"
    assert len(truncated["message"]["content"]) < len(whole["message"]["content"])
    assert server.status_counts == {429: 1, 500: 1, 400: 1, 200: 3}
    assert server.faults_served == {
        "rate_limit": 1, "server_error": 1, "bad_request": 1, "malformed": 1, "truncated": 1
    }  # fmt: skip


def test_a_hang_outlasts_the_client_timeout_and_is_not_left_in_flight(server):
    server.hang_seconds = 30
    server.fail_next("timeout")
    with pytest.raises(httpx.ReadTimeout):
        HTTP.post(
            f"{server.base_url}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            timeout=0.3,
        )
    deadline = time.monotonic() + 5
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.in_flight == 0
    assert chat(server, "hi").status_code == 200


def test_random_fault_rates_are_reproducible_by_seed():
    def statuses(seed):
        with FakeOpenAIServer(faults={"rate_limit": 0.3, "server_error": 0.2}, seed=seed) as s:
            return [chat(s, "hi").status_code for _ in range(40)]

    first = statuses(7)
    assert first == statuses(7)
    assert {429, 500, 200} <= set(first)


def test_unknown_faults_are_refused():
    with pytest.raises(ValueError, match="unknown faults"):
        FakeOpenAIServer(faults={"meteor": 1.0})


def test_a_required_api_key_is_checked(server):
    server.api_key = "sk-right"
    try:
        assert chat(server, "hi").status_code == 401
    finally:
        server.api_key = None


def test_custom_answers_override_the_replay(server):
    server.answers = lambda stage, body: f"custom {stage}"
    try:
        response = chat(server, stage_prompt("miko", "key_info"))
    finally:
        server.answers = None
    assert response.json()["choices"][0]["message"]["content"] == "custom key_info"


def test_sixty_four_concurrent_requests_overlap_at_200_ms(server):
    server.latency = 0.2

    async def run():
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        messages = [{"role": "user", "content": "hi"}]
        calls = [client.chat.completions.create(model="m", messages=messages) for _ in range(64)]
        started = time.perf_counter()
        await asyncio.gather(*calls)
        await client.close()
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    assert server.peak_concurrency == 64
    assert server.requests == 64 and server.in_flight == 0
    assert elapsed < 2.0  # 64 sequential calls would take 12.8 s


def test_reset_zeroes_the_counters(server):
    chat(server, "hi")
    server.reset()
    assert (server.requests, server.peak_concurrency, sum(server.status_counts.values())) == (
        0,
        0,
        0,
    )


def test_the_command_line_refuses_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["--latency", "soon"])
    assert "invalid float value" in capsys.readouterr().err


def test_counters_are_served_for_a_server_in_another_process(server):
    chat(server, stage_prompt("miko", "key_info"))
    stats = HTTP.get(f"{server.url}/_fake/stats").json()
    assert stats["requests"] == 1 and stats["status_counts"] == {"200": 1}
    assert stats["stage_counts"] == {"key_info": 1} and stats["peak_concurrency"] == 1
    assert HTTP.post(f"{server.url}/_fake/reset").json()["requests"] == 0
    assert server.requests == 0


def test_the_command_line_serves_until_interrupted(tmp_path):
    import subprocess
    import sys

    from generation.fake_openai import SAMPLE

    port_probe = FakeOpenAIServer().start()
    port = port_probe.port
    port_probe.stop()
    process = subprocess.Popen(
        [sys.executable, "-m", "generation.fake_openai", "--port", str(port), "--latency", "0"],
        cwd=SAMPLE.parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "fake OpenAI server on" in process.stdout.readline()
        assert HTTP.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
