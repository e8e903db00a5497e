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

# Item lines come in three styles; an answer uses one, and the first style found wins, so a
# sentence that happens to start with "3." inside a labelled answer is not read as an item.
_LABELLED = re.compile(r"^intentions?\s*#?\s*(\d{1,2})\b\s*[:.)\-–—]?\s*(.*)$", re.IGNORECASE)
# "Intention 1 (xWant): ..." or "1. xWant: ...": the kind named before the sentence is dropped.
_KINDS_PATTERN = "|".join(MIKO_KINDS)
_KIND_PREFIX = re.compile(
    rf"^(?:\((?:{_KINDS_PATTERN})\)\s*[:\-–—]?|(?:{_KINDS_PATTERN})\s*[:\-–—])\s*", re.IGNORECASE
)
_NUMBERED = re.compile(r"^\(?(\d{1,2})\s*[:.)]\s*(.*)$")
_KIND_LABELLED = re.compile(
    r"^(" + "|".join(MIKO_KINDS) + r")\s*(?:\(\d{1,2}\))?\s*:\s*(.*)$", re.IGNORECASE
)
_KEY_INFO_LABEL = r"(concepts?|actions?|objects?|emotions?|key\s*words?)"
_KEY_INFO_LINE = re.compile(
    rf"^{_KEY_INFO_LABEL}\b\s*(?:\([^)]*\))?\s*([:\-–—=]?)\s*(.*)$", re.IGNORECASE
)
# "Concept: A. Action: B." on one line: each labelled field starts a line of its own.
_INLINE_KEY_INFO_LABEL = re.compile(rf"(?<=\S)\s+(?={_KEY_INFO_LABEL}\s*:)", re.IGNORECASE)


def _item_start(line: str, style: re.Pattern[str]) -> tuple[int, str] | None:
    match = style.match(strip_markup(line))
    if not match:
        return None
    label, text = match.groups()
    if style is _KIND_LABELLED:
        return MIKO_KINDS.index(_KIND_BY_LOWER[label.lower()]) + 1, text
    return int(label), text


def _answer_style(lines: list[str]) -> re.Pattern[str] | None:
    for style in (_LABELLED, _KIND_LABELLED, _NUMBERED):
        if any(_item_start(line, style) for line in lines):
            return style
    return None


def _full_sentence(position: int, text: str) -> str:
    if text.lower().startswith(_OPENINGS):
        return text
    start = MIKO_SLOTS[position - 1][1]
    if text[:1].isupper() and not text[1:2].isupper():
        text = text[0].lower() + text[1:]
    return f"{start} {text}"


def _intentions_from_json(data: dict[str, Any]) -> dict[str, str]:
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
    return _ten_items({n: v if isinstance(v, str) else "" for n, v in values.items()})


def _ten_items(texts: dict[int, str]) -> dict[str, str]:
    extra = sorted(n for n in texts if not 1 <= n <= len(MIKO_SLOTS))
    if extra:
        raise ParseError(f"intention numbers out of range 1..10: {extra}")
    missing = [n for n in range(1, len(MIKO_SLOTS) + 1) if n not in texts]
    if missing:
        raise ParseError(
            f"expected ten intentions, found {len(texts)}; missing "
            + ", ".join(str(n) for n in missing)
        )
    parsed = {}
    for position, kind in enumerate(MIKO_KINDS, start=1):
        text = _KIND_PREFIX.sub("", clean_text(texts[position]))
        if not text:
            raise ParseError(f"intention {position} ({kind}) is empty")
        parsed[kind] = _full_sentence(position, text)
    return parsed


def split_intentions(raw: str) -> tuple[str, dict[str, str]]:
    """The text before the first intention line, and the parsed intentions after it.

    Label Studio tasks of the MIKO annotation hold the post followed by its ten intentions; the
    preamble of a model's answer ("Here are ten intentions:") is returned the same way.
    """
    lines = raw.splitlines()
    style = _answer_style(lines)
    if style is None:
        raise ParseError(
            "no intention lines found (expected 'Intention1: ...' to 'Intention10: ...')"
        )
    preamble: list[str] = []
    texts: dict[int, str] = {}
    current: int | None = None
    after_blank = False
    for line in lines:
        start = _item_start(line, style)
        if start is not None:
            number, text = start
            if number in texts:
                raise ParseError(f"intention {number} appears twice")
            texts[number], current, after_blank = text, number, False
        elif not line.strip():
            after_blank = current is not None
        elif current is None:
            preamble.append(line)
        elif not after_blank or not texts[current].strip():
            # A wrapped line continues its item; after a blank line only an item still waiting
            # for its text takes it, so closing chatter is not glued to the tenth intention.
            texts[current] = f"{texts[current]} {line.strip()}"
            after_blank = False
    return "\n".join(preamble).strip(), _ten_items(texts)


def parse_intentions(raw: str) -> dict[str, str]:
    """Ten intentions keyed by kind, in slot order, each a full sentence.

    Reads `Intention1:`/`Intention 1:`/`1.`/`xWant:` lines (bold, bullets, blank lines, a missing
    colon and a doubled final dot are fine) or a JSON object keyed by kind or `IntentionN`.
    Ten distinct, non-empty slots are required.
    """
    data = json_answer(raw)
    if data is not None:
        return _intentions_from_json(data)
    return split_intentions(raw)[1]


def intention_items(parsed: dict[str, Any]) -> list[ItemSpec]:
    """The ten knowledge items of a parsed `intentions` answer, at positions 1..10."""
    missing = [kind for kind in MIKO_KINDS if not parsed.get(kind)]
    if missing:
        raise ParseError(f"parsed intentions lack {', '.join(missing)}")
    return [
        ItemSpec(kind=kind, position=position, text=parsed[kind])
        for position, kind in enumerate(MIKO_KINDS, start=1)
    ]


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
            ),
            Stage(
                name="intentions",
                template="intentions.txt",
                parse=parse_intentions,
                items=intention_items,
                needs=("describe_image", "key_info"),
                json_schema=INTENTIONS_SCHEMA,
            ),
        ),
    )
)
