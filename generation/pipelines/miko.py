"""MIKO: the intentions behind a multimodal post, in three stages.

1. `describe_image`: a multimodal model describes the image in the light of the post text
   (posts without an image skip it; later stages then work from the text alone).
2. `key_info`: concept, action, object, emotion and keywords of the post.
3. `intentions`: ten sentences, the nine ATOMIC relations and one open intention, in the slot
   order and with the sentence starts MIKO used (`MIKO_SLOTS`).

The parsers are shared with the importers, which read MIKO's released outputs with them.
"""

import re
from typing import Any

from generation.pipelines.base import ItemSpec, ParseError, Pipeline, Stage, register
from generation.pipelines.parsing import (
    DESCRIPTION_SCHEMA,
    clean_text,
    json_answer,
    object_schema,
    parse_free_text,
    require_text,
    strip_markup,
)

#: The ten slots in order (position = index + 1): item kind and the sentence start MIKO prompted.
MIKO_SLOTS: list[tuple[str, str]] = [
    ("xWant", "After posting this Tweet, the user wants to"),
    ("oEffect", "After viewing this Tweet, others will"),
    ("xAttr", "The user posts this Tweet because the user is"),
    ("xIntent", "The user posts this Tweet because the user intended to"),
    ("xReact", "After posting this Tweet, the user feels"),
    ("oReact", "After viewing this Tweet, others feel"),
    ("oWant", "After viewing this Tweet, others want to"),
    ("xEffect", "After posting this Tweet, the user will"),
    ("xNeed", "Before posting this Tweet, the user needs to"),
    ("open", "The user post this tweet because"),
]
MIKO_KINDS: list[str] = [kind for kind, _ in MIKO_SLOTS]
KEY_INFO_FIELDS: tuple[str, ...] = ("concept", "action", "object", "emotion", "keywords")

_KIND_BY_LOWER = {kind.lower(): kind for kind in MIKO_KINDS}
# An answer that left out the sentence start gets it back; one that starts like any slot does not
# (models sometimes write "The user posted this tweet because", which is fine as it is).
_OPENINGS = tuple({" ".join(start.lower().split()[:2]) for _, start in MIKO_SLOTS})
_NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_NUMBER = r"(\d{1,2}|" + "|".join(_NUMBER_WORDS) + r")"

# Item lines come in three styles; an answer uses one, and the first style found wins, so a
# sentence that happens to start with "3." inside a labelled answer is not read as an item.
# "Intention1:", "Intention 1 -", "Intention #1", "Intention (1):", "Intention one:".
_LABELLED = re.compile(
    rf"^intentions?\s*#?\s*\(?{_NUMBER}\)?(?![\w])\s*[:.)\-–—]?\s*(.*)$", re.IGNORECASE
)
# "Intention 1 (xWant): ..." or "1. xWant: ...": the kind named before the sentence is dropped.
_KINDS_PATTERN = "|".join(MIKO_KINDS)
_KIND_PREFIX = re.compile(
    rf"^(?:\((?:{_KINDS_PATTERN})\)\s*[:\-–—]?|(?:{_KINDS_PATTERN})\s*[:\-–—])\s*", re.IGNORECASE
)
_NUMBERED = re.compile(r"^\(?(\d{1,2})\s*(?:[:.)]|\s[\-–—])\s*(.*)$")
_KIND_LABELLED = re.compile(
    r"^(" + "|".join(MIKO_KINDS) + r")\s*(?:\(\d{1,2}\))?\s*:\s*(.*)$", re.IGNORECASE
)
# Several labelled intentions on one line ("Sure! Intention1: ... Intention2: ..."): each starts
# a line of its own.
_INLINE_LABEL = re.compile(rf"(?<=\S)[ \t]+(?=Intentions?\s*#?\s*{_NUMBER}\s*[:)\-–—])")
# Closing chatter after the last intention, never part of it.
_CHATTER = re.compile(
    r"^(?:i\s+hope|hope\s+(?:this|that|these)|let\s+me\s+know|feel\s+free|please\s+note|note\s*:|"
    r"notes?\s+that|these\s+(?:are|intentions)|those\s+are|i'?ve\s|i\s+have\s|overall\b|"
    r"in\s+summary|if\s+you|happy\s+to|glad\s+to|(?:is\s+there\s+)?anything\s+else|"
    r"do\s+you\s+want|would\s+you\s+like|keep\s+in\s+mind|disclaimer)",
    re.IGNORECASE,
)
_KEY_INFO_LABEL = r"(concepts?|actions?|objects?|emotions?|key\s*words?)"
_KEY_INFO_LINE = re.compile(
    rf"^{_KEY_INFO_LABEL}\b\s*(?:\([^)]*\))?\s*([:\-–—=]?)\s*(.*)$", re.IGNORECASE
)
# "Concept: A. Action: B." on one line: each labelled field starts a line of its own.
_INLINE_KEY_INFO_LABEL = re.compile(rf"(?<=\S)\s+(?={_KEY_INFO_LABEL}\s*:)", re.IGNORECASE)


def _number(label: str) -> int:
    label = label.lower()
    return _NUMBER_WORDS.index(label) + 1 if label in _NUMBER_WORDS else int(label)


def _item_start(line: str, style: re.Pattern[str]) -> tuple[int, str] | None:
    match = style.match(strip_markup(line))
    if not match:
        return None
    label, text = match.groups()
    if style is _KIND_LABELLED:
        return MIKO_KINDS.index(_KIND_BY_LOWER[label.lower()]) + 1, text
    return _number(label), text


def _answer_style(lines: list[str]) -> re.Pattern[str] | None:
    for style in (_LABELLED, _KIND_LABELLED, _NUMBERED):
        if any(_item_start(line, style) for line in lines):
            return style
    return None


def _words(text: str) -> list[str]:
    return [w.strip(",.;:!?\"'").lower() for w in text.split()]


def _full_sentence(position: int, text: str) -> str:
    """The slot's sentence with its start, which is never doubled.

    A text that already opens with the slot's start (in any case, "Tweet" or "tweet") or like
    another slot is kept as written; one that opens with the end of the start ("the user is
    seeking", "wants to go") gets only the part it lacks; anything else gets the whole start.
    """
    start = MIKO_SLOTS[position - 1][1]
    start_words, words = _words(start), _words(text)
    if words[: len(start_words)] == start_words:
        return text
    for size in range(len(start_words) - 1, 0, -1):
        if words[:size] == start_words[-size:]:
            parts = text.split(None, size)
            rest = parts[size] if len(parts) > size else ""
            return f"{start} {rest}".strip()
    if text.lower().startswith(_OPENINGS):
        return text
    if text[:1].isupper() and not text[1:2].isupper():
        text = text[0].lower() + text[1:]
    return f"{start} {text}"


def _usable(position: int, text: str) -> bool:
    """Whether a slot's text says something: not empty, not only its sentence start.

    "After posting this Tweet, the user wants to ..." (the prompt's pattern echoed) is not; a
    start cut off mid-way ("The user") is kept as written, as real released answers hold it and
    their annotators rated it (a runner that knows an answer was truncated drops its last slot
    with `generation.pipelines.base.without_last_slot`).
    """
    words = [w for w in _words(text) if w and w not in ("...", "…")]
    start_words = _words(MIKO_SLOTS[position - 1][1])
    return bool(words) and words != start_words


def _intentions_from_json(data: dict[str, Any]) -> dict[str, Any]:
    values: dict[int, Any] = {}
    listed = data.get("intentions")
    if isinstance(listed, list):
        for index, value in enumerate(listed, start=1):
            values[index] = value.get("text") if isinstance(value, dict) else value
    else:
        for key, value in data.items():
            kind = _KIND_BY_LOWER.get(key.lower())
            number = re.fullmatch(r"intention\s*_?(\d{1,2})", key.strip(), re.IGNORECASE)
            if kind:
                values[MIKO_KINDS.index(kind) + 1] = value
            elif number:
                values[int(number.group(1))] = value
    if not values:
        raise ParseError("the JSON answer holds no intentions (expected the ten kinds as keys)")
    return _slots({n: v if isinstance(v, str) else "" for n, v in values.items()})


def _slots(texts: dict[int, str]) -> dict[str, Any]:
    """The usable slots by kind, in slot order, and "missing" (kinds) when some are not."""
    extra = sorted(n for n in texts if not 1 <= n <= len(MIKO_SLOTS))
    if extra:
        raise ParseError(f"intention numbers out of range 1..10: {extra}")
    parsed: dict[str, Any] = {}
    missing: list[str] = []
    for position, kind in enumerate(MIKO_KINDS, start=1):
        text = _KIND_PREFIX.sub("", clean_text(texts.get(position) or ""))
        sentence = _full_sentence(position, text) if _usable(position, text) else ""
        if sentence and _usable(position, sentence):
            parsed[kind] = sentence
        else:
            missing.append(kind)
    if not parsed:
        raise ParseError(
            f"no usable intention among the {len(texts)} found "
            "(each empty or only its sentence start)"
        )
    if missing:
        parsed["missing"] = missing
    return parsed


def split_intentions(raw: str) -> tuple[str, dict[str, Any]]:
    """The text before the first intention line, and the parsed intentions after it.

    Label Studio tasks of the MIKO annotation hold the post followed by its ten intentions; the
    preamble of a model's answer ("Sure! Here are ten intentions:") is returned the same way.
    A line that only continues an item (a wrapped sentence, or the text under a label alone on
    its line) is joined to it; closing chatter ("I hope this helps!") and a new sentence after a
    finished one are not.
    """
    lines = _INLINE_LABEL.sub("\n", raw).splitlines()
    style = _answer_style(lines)
    if style is None:
        raise ParseError(
            "no intention lines found (expected 'Intention1: ...' to 'Intention10: ...')"
        )
    preamble: list[str] = []
    texts: dict[int, str] = {}
    current: int | None = None
    closed = False
    for line in lines:
        start = _item_start(line, style)
        if start is not None:
            number, text = start
            if number in texts:
                raise ParseError(f"intention {number} appears twice")
            texts[number], current, closed = text, number, False
        elif not line.strip():
            # After a blank line only an item still waiting for its text takes more lines.
            closed = current is not None and bool(texts[current].strip())
        elif current is None:
            preamble.append(line)
        elif not closed and _continues(texts[current], strip_markup(line)):
            texts[current] = f"{texts[current]} {line.strip()}"
        else:
            closed = True
    return "\n".join(preamble).strip(), _slots(texts)


def _continues(text: str, line: str) -> bool:
    """Whether a line goes on with an item's text rather than starting something else."""
    if not text.strip():
        return True
    if _CHATTER.match(line):
        return False
    finished = clean_text(text).endswith((".", "!", "?"))
    return not finished or line[:1].islower()


def parse_intentions(raw: str) -> dict[str, Any]:
    """The intentions keyed by kind, in slot order, each a full sentence.

    Reads `Intention1:`/`Intention 1:`/`Intention one:`/`Intention #1 -`/`1.`/`1)`/`xWant:`
    lines (bold, bullets, blank lines, a missing colon, a doubled final dot, a chatty opener
    and closing chatter are fine) or a JSON object keyed by kind or `IntentionN`. An answer
    with some usable slots returns those, plus `"missing"`: the kinds of the slots it lacks, in
    slot order (the key is there only when something is missing). Nothing usable, a number
    given twice or out of 1..10 is a ParseError.
    """
    data = json_answer(raw)
    if data is not None:
        return _intentions_from_json(data)
    return split_intentions(raw)[1]


def missing_intentions(parsed: dict[str, Any]) -> list[str]:
    """The kinds a parsed `intentions` output lacks, in slot order."""
    return [kind for kind in MIKO_KINDS if not parsed.get(kind)]


def intention_items(parsed: dict[str, Any]) -> list[ItemSpec]:
    """The knowledge items of a parsed `intentions` answer, at their slots' positions (1..10).

    Only the slots present yield items; "missing" is not read.
    """
    items = [
        ItemSpec(kind=kind, position=position, text=parsed[kind])
        for position, kind in enumerate(MIKO_KINDS, start=1)
        if isinstance(parsed.get(kind), str) and parsed[kind].strip()
    ]
    if not items:
        raise ParseError("the parsed intentions hold no slot")
    return items


def _field_name(label: str) -> str:
    label = label.lower().replace(" ", "")
    return "keywords" if label.startswith("keyword") else label.rstrip("s")


def _keywords(value: Any) -> list[str]:
    if isinstance(value, list):
        words = [clean_text(str(word)) for word in value]
    else:
        words = [clean_text(word) for word in re.split(r"[,;\n]", str(value or ""))]
    return [word.rstrip(".").strip() for word in words if word.rstrip(".").strip()]


def parse_key_info(raw: str) -> dict[str, Any]:
    """Concept, action, object and emotion as strings, keywords as a list of strings.

    Reads `Concept: ...` lines (any order, bold, bullets, numbering, a missing colon, trailing
    dots) or a JSON object with those fields. All five are required, each once.
    """
    data = json_answer(raw)
    if data is None:
        data = {}
        current = None
        for line in _INLINE_KEY_INFO_LABEL.sub("\n", raw).splitlines():
            cleaned = re.sub(r"^\(?\d{1,2}\s*[:.)]\s*", "", strip_markup(line))
            match = _KEY_INFO_LINE.match(cleaned)
            name = _field_name(match.group(1)) if match else None
            # A bare word such as "Action figures" listed under Keywords is a keyword, not a
            # second action; with a colon it is a field given twice.
            if match and (match.group(2) or name not in data):
                if name in data:
                    raise ParseError(f"the key information names {name!r} twice")
                current = name
                data[current] = match.group(3)
            elif current == "keywords" and cleaned:
                # Keywords listed one per line under their label.
                data[current] = f"{data[current]}, {cleaned}"
    else:
        data = {key.lower(): value for key, value in data.items()}
    missing = [name for name in KEY_INFO_FIELDS if name not in data]
    if missing:
        raise ParseError(f"the key information lacks {', '.join(missing)}")
    parsed: dict[str, Any] = {}
    for name in KEY_INFO_FIELDS[:-1]:
        value = data[name]
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        parsed[name] = require_text(value, name).rstrip(".").strip()
        if not parsed[name]:
            raise ParseError(f"{name} is empty")
    parsed["keywords"] = _keywords(data["keywords"])
    if not parsed["keywords"]:
        raise ParseError("keywords is empty")
    return parsed


def parse_description(raw: str) -> dict[str, str]:
    """The image description as `{"description": ...}`."""
    return parse_free_text(raw, key="description", labels=("image description", "description"))


KEY_INFO_SCHEMA = object_schema(
    {
        "concept": {"type": "string"},
        "action": {"type": "string"},
        "object": {"type": "string"},
        "emotion": {"type": "string"},
        "keywords": {"type": "array", "items": {"type": "string"}},
    }
)
INTENTIONS_SCHEMA = object_schema(
    {
        kind: {"type": "string", "description": f"A full sentence starting '{start} ...'"}
        for kind, start in MIKO_SLOTS
    }
)

# The sampling MIKO ran with (gpt-35-turbo, `chat-keyinfo.py` of the authors' repository): key
# information at temperature 0.5, intentions at 0.7, both with at most 300 tokens.
KEY_INFO_DEFAULTS: dict[str, Any] = {"temperature": 0.5, "max_tokens": 300}
INTENTIONS_DEFAULTS: dict[str, Any] = {"temperature": 0.7, "max_tokens": 300}

MIKO = register(
    Pipeline(
        name="miko",
        stages=(
            Stage(
                name="describe_image",
                template="describe_image.txt",
                parse=parse_description,
                uses_image=True,
                requires_image=True,
                json_schema=DESCRIPTION_SCHEMA,
            ),
            Stage(
                name="key_info",
                template="key_info.txt",
                parse=parse_key_info,
                needs=("describe_image",),
                json_schema=KEY_INFO_SCHEMA,
                defaults=KEY_INFO_DEFAULTS,
            ),
            Stage(
                name="intentions",
                template="intentions.txt",
                parse=parse_intentions,
                items=intention_items,
                needs=("describe_image", "key_info"),
                json_schema=INTENTIONS_SCHEMA,
                defaults=INTENTIONS_DEFAULTS,
                missing=missing_intentions,
                slots=tuple(MIKO_KINDS),
            ),
        ),
    )
)
