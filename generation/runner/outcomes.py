"""One call's outcome, as the writer stores it: built from an answer or an error, cleaned of what
no database stores, and merged with an earlier partial answer when its missing slots are asked
again."""

import re
from dataclasses import dataclass, field
from typing import Any

from generation.backends.base import BackendError, ChatRequest, Completion
from generation.models import StageResult
from generation.pipelines.base import ItemSpec, ParseError, Stage, merge_partial, without_last_slot

# What a stage result's status is in the database, for each way an outcome can end.
OK, PARTIAL, FAILED = (StageResult.Status.OK, StageResult.Status.PARTIAL, StageResult.Status.FAILED)
DONE_STATUSES = (OK, PARTIAL)


#: The fields of a `generation.models.ModelCall` that `Outcome.call_fields` fills.
CALL_FIELDS = (
    "request",
    "raw_answer",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "attempts",
)


@dataclass
class Outcome:
    post_id: int
    stage: str
    ok: bool
    raw: str = ""
    parsed: dict[str, Any] | None = None
    error: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    attempts: int = 1
    request: dict[str, Any] = field(default_factory=dict)
    items: list[ItemSpec] = field(default_factory=list)
    # Slots the answer left out: a partial result keeps the ones it has.
    missing: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.ok:
            return FAILED
        return PARTIAL if self.missing else OK

    def call_fields(self) -> dict[str, Any]:
        """What a row of a `generation.models.ModelCall` model stores of the call, by field
        (`CALL_FIELDS`): judge ratings; the writer copies stage results column by column."""
        values = (self.request, self.raw, self.error, self.prompt_tokens,
                  self.completion_tokens, self.latency_ms, self.attempts)  # fmt: skip
        return dict(zip(CALL_FIELDS, values, strict=True))


def merge_retry(stage: Stage, earlier: dict[str, Any], outcome: Outcome) -> Outcome:
    """A retried partial result: the slots it had, plus what the new answer gives of the missing.

    The earlier answer is never lost: both raw answers are kept, one after the other, and a new
    answer that fails leaves the partial result (and its items) as they were, with its error.
    """
    missing = stage.missing_slots(earlier["parsed"])
    if not missing:
        return outcome
    outcome.raw = (
        f"{earlier['raw']}\n\n--- retry of missing {', '.join(missing)} ---\n\n{outcome.raw}"
    )
    merged = (
        merge_partial(stage, earlier["parsed"], outcome.parsed or {})
        if outcome.ok
        else earlier["parsed"]
    )
    outcome.ok, outcome.parsed = True, merged
    outcome.items = stage.items(merged)
    outcome.missing = stage.missing_slots(merged)
    return outcome


def request_for_storage(request: ChatRequest) -> dict[str, Any]:
    """The request as sent, with image data URLs shortened: the image is the post's own file."""
    messages = []
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                url = part.get("image_url", {}).get("url", "") if isinstance(part, dict) else ""
                if url.startswith("data:"):
                    part = {
                        "type": "image_url",
                        "image_url": {"url": f"{url[: url.find(',')]},<{len(url)} chars>"},
                    }
                parts.append(part)
            message = {**message, "content": parts}
        messages.append(message)
    stored: dict[str, Any] = {"messages": messages, "parameters": request.parameters}
    if request.json_schema is not None:
        stored["json_schema"] = True
    return stored


def storable(value: Any) -> Any:
    """A model's text as a database takes it: NUL characters and lone surrogates, which
    PostgreSQL refuses (in text and in jsonb), become U+FFFD. Dicts and lists recursively."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        return value
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value


def outcome_from_answer(
    post_id: int, stage: Stage, request: ChatRequest, completion: Completion, attempts: int
) -> Outcome:
    # Answers are untrusted input: they may carry characters no database stores, as such or
    # escaped inside a JSON answer, so the text is cleaned before the parse and the parse after.
    text = storable(completion.text)
    outcome = Outcome(
        post_id=post_id,
        stage=stage.name,
        ok=True,
        raw=text,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        latency_ms=completion.latency_ms,
        attempts=attempts,
        request=request_for_storage(request),
    )
    try:
        parsed = stage.parse(text)
        if completion.finish_reason == "length":
            # Cut off: the last slot it reached may be cut mid-sentence; a retry asks for it.
            parsed = without_last_slot(stage, parsed)
        outcome.parsed = storable(parsed)
        outcome.items = stage.items(outcome.parsed)
        outcome.missing = stage.missing_slots(outcome.parsed)
    except ParseError as error:
        outcome.ok = False
        outcome.parsed = None
        outcome.error = f"ParseError: {error}"
    return outcome


def plain_error(error: str) -> str:
    """A stored error without the exception's class name a backend error carries: its message
    already says what failed ("HTTP 500: ...", "connection to ... failed: ...")."""
    return re.sub(r"^BackendError(?: \(HTTP \d+\))?: ", "", error)


def outcome_from_error(
    post_id: int, stage: Stage, request: ChatRequest, error: BackendError, attempts: int
) -> Outcome:
    status = f" (HTTP {error.status})" if error.status else ""
    return Outcome(
        post_id=post_id,
        stage=stage.name,
        ok=False,
        raw=storable(error.raw),
        error=storable(f"{type(error).__name__}{status}: {error}"),
        attempts=attempts,
        request=request_for_storage(request),
    )
