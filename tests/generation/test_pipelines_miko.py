"""MIKO parsers on the 40 real answers of the MIKO pipeline, on broken answers, and its prompts."""

import json
import re
from pathlib import Path

import pytest

from generation.pipelines.base import ParseError, StageInput, get_pipeline
from generation.pipelines.miko import (
    MIKO_KINDS,
    MIKO_SLOTS,
    intention_items,
    parse_description,
    parse_intentions,
    parse_key_info,
    split_intentions,
)

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data/miko/pipeline_outputs_sample.jsonl"
RECORDS = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
CLEAN = RECORDS[0]["intention"]


def test_the_slots_follow_the_sample_data_table():
    assert MIKO_KINDS == [
        "xWant", "oEffect", "xAttr", "xIntent", "xReact",
        "oReact", "oWant", "xEffect", "xNeed", "open",
    ]  # fmt: skip
    assert MIKO_SLOTS[0][1] == "After posting this Tweet, the user wants to"
    assert MIKO_SLOTS[9][1] == "The user post this tweet because"


@pytest.mark.parametrize("record", RECORDS, ids=[str(r["question_id"]) for r in RECORDS])
def test_every_real_answer_parses_into_ten_items_of_the_right_kinds(record):
    items = intention_items(parse_intentions(record["intention"]))

    assert [(i.kind, i.position) for i in items] == [(k, n) for n, k in enumerate(MIKO_KINDS, 1)]
    lines = [line for line in record["intention"].splitlines() if line.strip()]
    for item, line in zip(items, lines, strict=True):
        assert line.startswith(f"Intention{item.position}: ")
        assert item.text == line.split(": ", 1)[1].strip()


@pytest.mark.parametrize("record", RECORDS, ids=[str(r["question_id"]) for r in RECORDS])
def test_every_real_key_info_answer_parses_into_five_fields(record):
    parsed = parse_key_info(record["keyinfo"])

    assert list(parsed) == ["concept", "action", "object", "emotion", "keywords"]
    for name in ("concept", "action", "object", "emotion"):
        line = next(x for x in record["keyinfo"].splitlines() if x.lower().startswith(name))
        assert parsed[name] == line.split(":", 1)[1].strip().rstrip(".")
    assert parsed["keywords"] and all(w and not w.endswith(".") for w in parsed["keywords"])


def test_key_info_example_values():
    assert parse_key_info(RECORDS[0]["keyinfo"]) == {
        "concept": "Seduction",
        "action": "Posing",
        "object": "Black lace lingerie set",
        "emotion": "Confidence",
        "keywords": ["Mirror", "Bedroom", "Curves", "Personal care products", "Beverages"],
    }


def test_the_stage_three_prompt_is_the_one_miko_sent():
    miko = get_pipeline("miko")
    for record in RECORDS:
        stage_input = StageInput(
            text=record["text"],
            image_data_url=None,
            metadata={},
            upstream={
                "describe_image": {"description": record["image_descrption"]},
                "key_info": parse_key_info(record["keyinfo"]),
            },
        )
        rendered = miko.render(miko.stage("intentions"), stage_input)
        # MIKO pasted the raw key-info answer, keeping its doubled final dots.
        sent = re.sub(r"^(Keywords: .*?)\.+$", r"\1.", record["prompt"], flags=re.M)
        assert rendered == sent


SURFACE_VARIANTS = {
    "spaced numbers": CLEAN.replace("Intention", "Intention "),
    "plain numbering": re.sub(r"Intention(\d+):", r"\1.", CLEAN),
    "parenthesis numbering": re.sub(r"Intention(\d+):", r"\1)", CLEAN),
    "missing colon": re.sub(r"Intention(\d+):", r"Intention \1", CLEAN),
    "markdown bold": re.sub(r"(Intention\d+:)", r"**\1**", CLEAN),
    "bullets and blank lines": re.sub(r"(Intention\d+:)", r"\n- \1", CLEAN),
    "trailing double dots": CLEAN.replace(".\n", "..\n"),
    "preamble and closing": "Sure! Here they are:\n\n" + CLEAN + "\n\nI hope this helps.",
    "kind labels": "\n".join(
        f"{kind}: {line.split(': ', 1)[1]}"
        for kind, line in zip(MIKO_KINDS, CLEAN.splitlines(), strict=True)
    ),
    "kinds named after the numbers": "\n".join(
        line.replace(": ", f" ({kind}): ", 1)
        for kind, line in zip(MIKO_KINDS, CLEAN.splitlines(), strict=True)
    ),
    "kinds named after plain numbers": "\n".join(
        f"{n}. {kind}: {line.split(': ', 1)[1]}"
        for n, (kind, line) in enumerate(zip(MIKO_KINDS, CLEAN.splitlines(), strict=True), 1)
    ),
    "wrapped lines": CLEAN.replace("the user wants to ", "the user wants to\n"),
    "label alone on its line": CLEAN.replace("Intention3: ", "Intention3:\n"),
    "out of order": "\n".join(reversed(CLEAN.splitlines())),
    "windows newlines": CLEAN.replace("\n", "\r\n"),
}


@pytest.mark.parametrize("raw", SURFACE_VARIANTS.values(), ids=SURFACE_VARIANTS.keys())
def test_surface_variations_parse_to_the_same_items(raw):
    assert parse_intentions(raw) == parse_intentions(CLEAN)


def test_a_missing_sentence_start_is_restored():
    raw = re.sub(
        r"(Intention1:) After posting this Tweet, the user wants to attract", r"\1 Attract", CLEAN
    )
    parsed = parse_intentions(raw)
    assert (
        parsed["xWant"] == "After posting this Tweet, the user wants to attract potential partners."
    )


def test_a_sentence_that_starts_with_a_kind_word_keeps_it():
    raw = re.sub(r"Intention10: [^\n]*", "Intention10: Open the door to new friends.", CLEAN)
    # Not read as a "open" label; the missing sentence start is restored as usual.
    assert parse_intentions(raw)["open"] == (
        "The user post this tweet because open the door to new friends."
    )


def test_json_answers_parse_like_text():
    expected = parse_intentions(CLEAN)
    assert parse_intentions(json.dumps(expected)) == expected
    numbered = {f"Intention{n}": text for n, text in enumerate(expected.values(), 1)}
    assert parse_intentions("```json\n" + json.dumps(numbered) + "\n```") == expected
    assert parse_intentions(json.dumps({"intentions": list(expected.values())})) == expected
    key_info = parse_key_info(RECORDS[0]["keyinfo"])
    assert parse_key_info(json.dumps(key_info)) == key_info
    assert parse_key_info(json.dumps({**key_info, "keywords": "Mirror, Bedroom"}))["keywords"] == [
        "Mirror",
        "Bedroom",
    ]


BROKEN_INTENTIONS = {
    "empty": ("", "no intention lines"),
    "prose": ("I cannot help with that.", "no intention lines"),
    "nine": ("\n".join(CLEAN.splitlines()[:9]), "missing 10"),
    "truncated": (CLEAN[: len(CLEAN) // 2], "expected ten intentions"),
    "duplicate": (CLEAN.replace("Intention5:", "Intention4:"), "intention 4 appears twice"),
    "eleven": (CLEAN + "\nIntention11: More.", "out of range"),
    "empty slot": (
        re.sub(r"Intention7: [^\n]*", "Intention7:", CLEAN),
        r"intention 7 \(oWant\) is empty",
    ),
    "broken json": ('{"xWant": "After posting', "does not load"),
    "json missing kinds": (
        '{"xWant": "After posting this Tweet, the user wants to go."}',
        "missing",
    ),
}


@pytest.mark.parametrize("raw,message", BROKEN_INTENTIONS.values(), ids=BROKEN_INTENTIONS.keys())
def test_broken_intention_answers_raise_a_clear_parse_error(raw, message):
    with pytest.raises(ParseError, match=message):
        parse_intentions(raw)


BROKEN_KEY_INFO = {
    "empty": ("", "lacks concept, action, object, emotion, keywords"),
    "missing emotion": ("Concept: A.\nAction: B.\nObject: C.\nKeywords: d, e", "lacks emotion"),
    "empty keywords": ("Concept: A\nAction: B\nObject: C\nEmotion: D\nKeywords: ..", "keywords"),
    "twice": ("Concept: A\nConcept: B\nAction: B\nObject: C\nEmotion: D\nKeywords: x", "twice"),
    "empty value": ("Concept:\nAction: B\nObject: C\nEmotion: D\nKeywords: x", "concept is empty"),
}


@pytest.mark.parametrize("raw,message", BROKEN_KEY_INFO.values(), ids=BROKEN_KEY_INFO.keys())
def test_broken_key_info_answers_raise_a_clear_parse_error(raw, message):
    with pytest.raises(ParseError, match=message):
        parse_key_info(raw)


def test_key_info_surface_variations():
    raw = (
        "Here is the key information:\n\n**Concept:** Seduction.\n- Action - Posing\n"
        "3. Object: Black lace lingerie set.\nEmotion Confidence\nKey words:\n- Mirror\n- Bedroom"
    )
    assert parse_key_info(raw) == {
        "concept": "Seduction",
        "action": "Posing",
        "object": "Black lace lingerie set",
        "emotion": "Confidence",
        "keywords": ["Mirror", "Bedroom"],
    }


def test_key_info_on_one_line_and_keywords_that_look_like_labels():
    raw = (
        "Concept (main idea): Toys. Action: Buying. Object: Figures. Emotion: Joy. Keywords:\n"
        "- Action figures\n- Objects of desire"
    )
    assert parse_key_info(raw) == {
        "concept": "Toys",
        "action": "Buying",
        "object": "Figures",
        "emotion": "Joy",
        "keywords": ["Action figures", "Objects of desire"],
    }


def test_split_intentions_separates_the_post_text():
    text, parsed = split_intentions("Cariloha is Hiring \n" + CLEAN)
    assert text == "Cariloha is Hiring"
    assert parsed == parse_intentions(CLEAN)


def test_descriptions_parse_to_their_text():
    record = RECORDS[0]
    assert parse_description(record["image_descrption"]) == {
        "description": record["image_descrption"]
    }
    assert parse_description("Description: **A cat.**\n") == {"description": "A cat."}
    assert parse_description('{"description": "A dog."}') == {"description": "A dog."}
    with pytest.raises(ParseError, match="empty"):
        parse_description("  \n")
