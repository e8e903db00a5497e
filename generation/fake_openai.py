"""A fake OpenAI-compatible server for tests, benchmarks and demos.

It answers `/v1/chat/completions` and `/v1/models` on 127.0.0.1 from a background thread, after a
configurable latency, with the real MIKO answers of `sample_data/` (recognising the stage from the
prompt, or from the structured-output schema name) and plausible canned CoTPD answers. Faults can
be injected at random rates or for the next N requests; counters say what it served.

    with FakeOpenAIServer(latency=0.2, faults={"rate_limit": 0.1}) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="x")
        ...
        server.peak_concurrency, server.status_counts[429]

From the command line: `python -m generation.fake_openai --port 8100 --latency 0.2`; a server in
another process reports its counters at `GET /_fake/stats` and zeroes them at `POST /_fake/reset`.
"""

import argparse
import asyncio
import hashlib
import json
import random
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from generation.pipelines.miko import parse_intentions, parse_key_info

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data/miko/pipeline_outputs_sample.jsonl"

#: Faults that can be injected, each answered the way a real server fails.
FAULTS = (
    "rate_limit",  # 429 with a Retry-After header
    "server_error",  # 500
    "timeout",  # hangs for `hang_seconds` before answering (clients time out first)
    "malformed",  # 200 with a body that is not JSON
    "truncated",  # 200 with the answer cut in half and finish_reason "length"
    "bad_request",  # 400
)

# A phrase of each stage's prompt template (generation/prompts/) that tells the stage apart.
STAGE_MARKERS = (
    ("intentions", "guess the intention"),
    ("key_info", "Extract the key information"),
    ("key_info", "three-to-five keywords"),
    ("describe_image", "Describe the image in detail"),
    ("describe_image", "please describe the current image in detail"),
    ("caption", "Write a caption"),
    ("cot_noun", "Explain the entities"),
    ("cot_sentence", "Explain the sentence"),
    ("cot_multimodal", "how the text and the image relate"),
    ("aug_style", "Rewrite the text in the style"),
    ("aug_entity", "Replace the named entities"),
    ("aug_image", "Imagine an image"),
    ("judge", 'Answer with a single line "rating: N"'),
)
_POST_TEXT = re.compile(r"^Text: (.*)$", re.MULTILINE)
# The post text inside MIKO's own key-information and image-description prompts.
_QUOTED_POST_TEXT = (
    re.compile(r'The information is "(.*?)"(?:/ "| Formulate your answer)', re.DOTALL),
    re.compile(r'^Based on the following text "(.*)", please describe', re.DOTALL),
)

#: `answers` callables receive (stage, request body) and return the answer text, or None for
#: the default answer. The stage is None when the prompt matches no known stage.
AnswerFunction = Callable[[str | None, dict[str, Any]], str | None]


def _load_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _prompt_text(messages: list[dict[str, Any]]) -> tuple[str, int]:
    """The text of the last user message and how many images it carries."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content, 0
        parts = content or []
        text = "\n".join(p.get("text", "") for p in parts if p.get("type") == "text")
        return text, sum(1 for p in parts if p.get("type") == "image_url")
    return "", 0


def _canned_cotpd(stage: str, text: str, record: dict[str, Any]) -> str:
    words = [w for w in re.findall(r"[A-Za-z][\w'-]+", text) if len(w) > 3] or ["post"]
    topic = words[0]
    description = record["image_descrption"]
    return {
        "caption": description,
        "cot_noun": (
            f'"{topic}" is the main entity of the text; the other words are everyday terms. '
            "The hashtags and emoji markers are social-media conventions, not entities."
        ),
        "cot_sentence": (
            f"The author writes about {topic} for their followers. The tone is informal and "
            "slightly ironic, so the sentiment is mixed rather than plainly positive."
        ),
        "cot_multimodal": (
            f"The image shows what the text talks about: {description.split('.')[0].lower()}. "
            "It gives the context that the short text leaves out."
        ),
        "aug_style": f"ok so {text.lower()} #mood",
        "aug_entity": f"Rewritten: {text.replace(topic, 'Alex', 1)}\nPlausible: yes",
        "aug_image": f"A photo of {topic} in a busy street, taken on a phone at dusk.",
    }[stage]


def _judge_answer(prompt: str) -> str:
    """A judge's rating (judges/prompts/): one of the values the prompt allows, by a stable hash
    of the prompt, so the same call always gets the same rating."""
    found = re.search(r"where N is one of ([-\d, ]+)\.", prompt)
    values = [v.strip() for v in found.group(1).split(",")] if found else ["1"]
    digest = hashlib.sha1(prompt.encode(), usedforsecurity=False).digest()
    return f"rating: {values[int.from_bytes(digest[:4], 'big') % len(values)]}"


def _structured(stage: str, answer: str) -> str:
    """The JSON a server with structured output would return for the same answer."""
    if stage == "judge":
        return json.dumps({"rating": int(answer.split(":")[1])})
    if stage == "intentions":
        return json.dumps(parse_intentions(answer))
    if stage == "key_info":
        return json.dumps(parse_key_info(answer))
    if stage in ("describe_image", "caption"):
        return json.dumps({"description": answer})
    if stage == "aug_entity":
        rewritten, plausible = answer.split("\nPlausible: ")
        return json.dumps({"text": rewritten.removeprefix("Rewritten: "), "plausible": plausible})
    return json.dumps({"text": answer})


class FakeOpenAIServer:
    """An OpenAI-compatible chat server on 127.0.0.1, running in a background thread.

    `faults` maps fault names (see `FAULTS`) to the share of requests that get them, drawn from a
    random generator seeded with `seed`; `fail_next(fault, count)` queues faults for the next
    requests, before any random draw. With `api_key`, requests without that bearer token get 401.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        faults: dict[str, float] | None = None,
        answers: AnswerFunction | None = None,
        seed: int = 0,
        retry_after: float = 1.0,
        hang_seconds: float = 60.0,
        api_key: str | None = None,
        model: str = "fake-model",
        port: int = 0,
        records_path: Path = SAMPLE,
    ) -> None:
        unknown = set(faults or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
        self.latency = latency
        self.faults = dict(faults or {})
        self.answers = answers
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.api_key = api_key
        self.model = model
        self._seed = seed
        self._port = port
        self._records = _load_records(records_path)
        self._by_text = {record["text"]: record for record in self._records}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._socket: socket.socket | None = None
        self.reset()

    # Counters ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Zero the counters and forget queued faults (the random draw restarts from the seed)."""
        self.requests = 0
        self.status_counts: Counter[int] = Counter()
        self.stage_counts: Counter[str | None] = Counter()
        self.faults_served: Counter[str] = Counter()
        self.in_flight = 0
        self.peak_concurrency = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.last_request: dict[str, Any] | None = None
        self.last_api_key: str | None = None
        self._queued: deque[str] = deque()
        self._random = random.Random(self._seed)

    def stats(self) -> dict[str, Any]:
        """The counters as plain data (also served at `GET /_fake/stats`)."""
        return {
            "requests": self.requests,
            "status_counts": {str(k): v for k, v in sorted(self.status_counts.items())},
            "stage_counts": {str(k): v for k, v in self.stage_counts.items()},
            "faults_served": dict(self.faults_served),
            "in_flight": self.in_flight,
            "peak_concurrency": self.peak_concurrency,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }

    def fail_next(self, fault: str, count: int = 1) -> None:
        """The next `count` requests get `fault`."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        self._queued.extend([fault] * count)

    # Lifecycle --------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the server is not running")
        return self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as its base URL."""
        return f"{self.url}/v1"

    def start(self) -> "FakeOpenAIServer":
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", self._port))
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._start_site())
            except BaseException as exc:  # reported to the starting thread below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    async def _start_site(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        # For a server in another process (benchmarks, demos): read or zero its counters.
        app.router.add_get("/_fake/stats", self._stats)
        app.router.add_post("/_fake/reset", self._reset)
        # Handlers are cancelled when their client goes away, so a hung request that the client
        # timed out on does not keep counting as in flight.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.1
        )
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket, backlog=1024).start()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        if self._socket is not None:
            self._socket.close()
        self._loop = self._thread = self._runner = self._socket = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Requests ---------------------------------------------------------------------------------

    def _draw_fault(self) -> str | None:
        if self._queued:
            return self._queued.popleft()
        for fault, rate in self.faults.items():
            if rate and self._random.random() < rate:
                return fault
        return None

    def record_for(self, post_text: str) -> dict[str, Any]:
        """The sample record whose answers a post gets: its own, or one chosen by a stable hash."""
        record = self._by_text.get(post_text)
        if record is None:
            digest = hashlib.sha1(post_text.encode(), usedforsecurity=False).digest()
            record = self._records[int.from_bytes(digest[:4], "big") % len(self._records)]
        return record

    def _answer(self, body: dict[str, Any]) -> tuple[str | None, str, int]:
        prompt, images = _prompt_text(body.get("messages") or [])
        response_format = body.get("response_format") or {}
        schema_name = (response_format.get("json_schema") or {}).get("name")
        stage = next((s for s, _ in STAGE_MARKERS if s == schema_name), None)
        if stage is None:
            stage = next((s for s, marker in STAGE_MARKERS if marker in prompt), None)
        prompt_tokens = len(prompt) // 4 + 85 * images
        if self.answers is not None:
            custom = self.answers(stage, body)
            if custom is not None:
                return stage, custom, prompt_tokens
        found = _POST_TEXT.search(prompt)
        quoted = next((m for m in (p.search(prompt) for p in _QUOTED_POST_TEXT) if m), None)
        if found:
            post_text = found.group(1).strip()
        else:
            post_text = quoted.group(1) if quoted else prompt
        record = self.record_for(post_text)
        if stage == "intentions":
            answer = record["intention"]
        elif stage == "key_info":
            answer = record["keyinfo"]
        elif stage == "describe_image":
            answer = record["image_descrption"]
        elif stage == "judge":
            answer = _judge_answer(prompt)
        elif stage is not None:
            answer = _canned_cotpd(stage, post_text, record)
        else:
            answer = "This is a fake answer."
        if response_format.get("type") == "json_schema" and stage is not None:
            answer = _structured(stage, answer)
        return stage, answer, prompt_tokens

    def _error(self, status: int, message: str, kind: str, **headers: str) -> web.Response:
        body = {"error": {"message": message, "type": kind, "code": status}}
        return web.json_response(body, status=status, headers=headers)

    async def _chat(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.in_flight += 1
        self.peak_concurrency = max(self.peak_concurrency, self.in_flight)
        status = 200
        try:
            response = await self._respond(request)
            status = response.status
            return response
        except asyncio.CancelledError:
            status = 499  # the client went away (timed out) before the answer
            raise
        finally:
            self.in_flight -= 1
            self.status_counts[status] += 1

    async def _respond(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        self.last_api_key = authorization.removeprefix("Bearer ") or None
        try:
            body = json.loads(await request.read())
        except ValueError:
            return self._error(400, "the request body is not JSON", "invalid_request_error")
        self.last_request = body
        fault = self._draw_fault()
        if fault:
            self.faults_served[fault] += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.api_key is not None and self.last_api_key != self.api_key:
            return self._error(401, "Incorrect API key provided.", "invalid_request_error")
        if fault == "timeout":
            await asyncio.sleep(self.hang_seconds)
        elif fault == "rate_limit":
            return self._error(
                429,
                "Rate limit reached. Please try again later.",
                "rate_limit_error",
                **{"Retry-After": f"{self.retry_after:g}"},
            )
        elif fault == "server_error":
            return self._error(500, "The server had an error.", "server_error")
        elif fault == "bad_request":
            return self._error(400, "Invalid request: unsupported parameter.", "invalid_request")
        elif fault == "malformed":
            return web.Response(
                text='{"id": "chatcmpl-fake", "object": "chat.completion", "choices": [{"ind',
                content_type="application/json",
            )
        stage, answer, prompt_tokens = self._answer(body)
        finish_reason = "stop"
        if fault == "truncated":
            answer, finish_reason = answer[: len(answer) // 2], "length"
        completion_tokens = max(1, len(answer) // 4)
        self.stage_counts[stage] += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        return web.json_response(
            {
                "id": f"chatcmpl-fake-{self.requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or self.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response(self.stats())

    async def _models(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        if self.api_key is not None and authorization.removeprefix("Bearer ") != self.api_key:
            return self._error(401, "Incorrect API key provided.", "invalid_request_error")
        model = {"id": self.model, "object": "model", "created": 0, "owned_by": "distillery"}
        return web.json_response({"object": "list", "data": [model]})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake OpenAI-compatible server.")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=RATE",
        help=f"inject a fault at a rate, e.g. rate_limit=0.1 ({', '.join(FAULTS)})",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retry-after", type=float, default=1.0, help="seconds, for 429s")
    parser.add_argument("--hang-seconds", type=float, default=60.0, help="for timeouts")
    args = parser.parse_args(argv)
    faults = {}
    for spec in args.fault:
        name, _, rate = spec.partition("=")
        faults[name] = float(rate or 1)
    server = FakeOpenAIServer(
        latency=args.latency,
        faults=faults,
        seed=args.seed,
        port=args.port,
        retry_after=args.retry_after,
        hang_seconds=args.hang_seconds,
    )
    with server:
        print(
            f"fake OpenAI server on {server.base_url} (latency {args.latency:g} s); Ctrl-C stops",
            flush=True,
        )
        try:
            while True:
                time.sleep(5)
        except KeyboardInterrupt:
            print(f"served {server.requests} requests, peak concurrency {server.peak_concurrency}")


if __name__ == "__main__":
    main()
