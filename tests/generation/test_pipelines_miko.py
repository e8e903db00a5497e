"""MIKO parsers on the 40 real answers of the MIKO pipeline, on broken answers, and its prompts."""

import json
import re
from pathlib import Path

import pytest

from generation.pipelines.base import ParseError, StageInput, get_pipeline, without_last_slot
from generation.pipelines.miko import (
    MIKO_KINDS,
    MIKO_SLOTS,
    intention_items,
    parse_description,
    parse_intentions,
    parse_key_info,
    split_intentions,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures/miko"
RECORDS = [
    json.loads(line)
    for line in (FIXTURES / "pipeline_outputs_sample.jsonl").read_text().splitlines()
]
KEY_INFO_INPUTS = [
    json.loads(line)
    for line in (FIXTURES / "key_info_inputs_sample.jsonl").read_text().splitlines()
]
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
    parsed = parse_intentions(record["intention"])
    assert list(parsed) == MIKO_KINDS  # ten slots, no "missing"
    items = intention_items(parsed)

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
    "only empty slots": ("Intention1:\nIntention2: ...\n", "no usable intention"),
    "only the template echoed": (
        "Intention1: After posting this Tweet, the user wants to ...\n"
        "Intention2: After viewing this Tweet, others will ...",
        "no usable intention",
    ),
    "duplicate": (CLEAN.replace("Intention5:", "Intention4:"), "intention 4 appears twice"),
    "eleven": (CLEAN + "\nIntention11: More.", "out of range"),
    "broken json": ('{"xWant": "After posting', "does not load"),
    "json without intentions": ('{"answer": "none"}', "holds no intentions"),
    "json with empty slots": ('{"xWant": "", "oEffect": null}', "no usable intention"),
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


# Partial answers (issue 11, point 2): the usable slots are kept, the others named in "missing".
PARTIAL = {
    "nine": ("\n".join(CLEAN.splitlines()[:9]), ["open"]),
    "empty slot": (re.sub(r"Intention7: [^\n]*", "Intention7:", CLEAN), ["oWant"]),
    "template echoed in a slot": (
        re.sub(
            r"Intention2: [^\n]*", "Intention2: After viewing this Tweet, others will ...", CLEAN
        ),
        ["oEffect"],
    ),
    "cut off after slot 6": (
        CLEAN.split("Intention7:")[0] + "Intention7: ",
        ["oWant", "xEffect", "xNeed", "open"],
    ),
    "json missing kinds": (
        '{"xWant": "After posting this Tweet, the user wants to go."}',
        MIKO_KINDS[1:],
    ),
    "json empty and null slots": (
        json.dumps({**parse_intentions(CLEAN), "xAttr": "", "open": None}),
        ["xAttr", "open"],
    ),
}


@pytest.mark.parametrize("raw,missing", PARTIAL.values(), ids=PARTIAL.keys())
def test_partial_answers_keep_their_usable_slots_and_name_the_missing(raw, missing):
    parsed = parse_intentions(raw)
    complete = parse_intentions(CLEAN)

    assert parsed["missing"] == missing
    present = [kind for kind in MIKO_KINDS if kind not in missing]
    assert [key for key in parsed if key != "missing"] == present
    if not raw.startswith("{"):
        assert all(parsed[kind] == complete[kind] for kind in present)
    items = intention_items(parsed)
    assert [(i.kind, i.position) for i in items] == [
        (kind, MIKO_KINDS.index(kind) + 1) for kind in present
    ]


def test_a_truncated_answer_keeps_the_slots_before_the_cut():
    parsed = parse_intentions(CLEAN[: len(CLEAN) // 2])
    assert parsed["missing"][-1] == "open" and "xWant" in parsed
    assert len(intention_items(parsed)) == 10 - len(parsed["missing"])
    # A start cut mid-way is kept as written (real released answers hold "Intention10: The
    # user", which annotators rated); the runner drops the cut slot of a truncated answer.
    cut = parse_intentions(CLEAN.split("Intention6:")[0] + "Intention6: After viewing this Tw")
    assert cut["oReact"] == "After viewing this Tw"
    stage = get_pipeline("miko").stage("intentions")
    assert without_last_slot(stage, cut)["missing"] == [
        "oReact",
        "oWant",
        "xEffect",
        "xNeed",
        "open",
    ]
    assert "oReact" not in without_last_slot(stage, cut)


def test_intention_items_ignore_missing_and_need_one_slot():
    assert [i.position for i in intention_items({"xAttr": "x", "missing": ["xWant"]})] == [3]
    with pytest.raises(ParseError, match="no slot"):
        intention_items({"missing": MIKO_KINDS})


CHATTER = {
    "opener line": "Sure! Here is what the user may intend:\n" + CLEAN,
    "opener on the first item's line": "Sure! Here are ten intentions: " + CLEAN,
    "everything on one line": "Here you go. " + CLEAN.replace("\n", " "),
    "closing without a blank line": CLEAN + "\nI hope this helps! Let me know if you need more.",
    "closing note": CLEAN + "\nNote: these are guesses based on the text and the image.",
    "closing summary": CLEAN + "\nThese intentions reflect the user's confidence.",
    "closing new sentence": CLEAN + "\nOverall, the post is about self-confidence.",
    "closing after a blank line": CLEAN + "\n\nhope that works for you",
}


@pytest.mark.parametrize("raw", CHATTER.values(), ids=CHATTER.keys())
def test_chatty_openers_and_closings_are_not_part_of_any_slot(raw):
    assert parse_intentions(raw) == parse_intentions(CLEAN)


def test_closing_chatter_after_a_slot_without_a_final_dot_is_not_glued():
    raw = re.sub(r"(Intention10: [^\n]*)\.", r"\1", CLEAN) + "\nLet me know if you need more!"
    assert parse_intentions(raw)["open"] == parse_intentions(CLEAN)["open"].rstrip(".")


SPELLINGS = {
    "word numbers": lambda n: f"Intention {WORDS[n - 1]}:",
    "capital word numbers": lambda n: f"Intention {WORDS[n - 1].title()} -",
    "hash": lambda n: f"Intention #{n}",
    "hash and colon": lambda n: f"Intention #{n}:",
    "dash": lambda n: f"Intention {n} -",
    "parenthesised number": lambda n: f"Intention ({n}):",
    "closing parenthesis": lambda n: f"{n})",
    "number and dash": lambda n: f"{n} -",
    "plural heading style": lambda n: f"### Intentions {n}:",
}
WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


@pytest.mark.parametrize("label", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_label_spellings_are_read(label):
    raw = re.sub(r"^Intention(\d+):", lambda m: label(int(m.group(1))), CLEAN, flags=re.M)
    assert parse_intentions(raw) == parse_intentions(CLEAN)


DOUBLED_STARTS = {
    # slot line as the model wrote it -> the full sentence stored
    "Intention1: After posting this tweet, the user wants to go.": (
        "xWant",
        "After posting this tweet, the user wants to go.",
    ),
    "Intention1: AFTER POSTING THIS TWEET, THE USER WANTS TO go.": (
        "xWant",
        "AFTER POSTING THIS TWEET, THE USER WANTS TO go.",
    ),
    "Intention1: the user wants to go.": (
        "xWant",
        "After posting this Tweet, the user wants to go.",
    ),
    "Intention1: Wants to go.": ("xWant", "After posting this Tweet, the user wants to go."),
    "Intention1: to go.": ("xWant", "After posting this Tweet, the user wants to go."),
    "Intention3: The user is seeking attention.": (
        "xAttr",
        "The user posts this Tweet because the user is seeking attention.",
    ),
    "Intention3: is seeking attention.": (
        "xAttr",
        "The user posts this Tweet because the user is seeking attention.",
    ),
    "Intention3: seeking attention.": (
        "xAttr",
        "The user posts this Tweet because the user is seeking attention.",
    ),
    "Intention10: The user posts this tweet because the user is bored.": (
        "open",
        "The user posts this tweet because the user is bored.",
    ),
    "Intention10: because they are bored.": (
        "open",
        "The user post this tweet because they are bored.",
    ),
    "Intention9: Needs to take a photo.": (
        "xNeed",
        "Before posting this Tweet, the user needs to take a photo.",
    ),
}


@pytest.mark.parametrize("line,expected", DOUBLED_STARTS.items(), ids=list(DOUBLED_STARTS))
def test_a_sentence_start_is_never_doubled(line, expected):
    kind, sentence = expected
    number = int(re.match(r"Intention(\d+)", line).group(1))
    raw = re.sub(rf"^Intention{number}: [^\n]*", line, CLEAN, flags=re.M)
    assert parse_intentions(raw)[kind] == sentence


@pytest.mark.parametrize("record", RECORDS[:10], ids=[str(r["question_id"]) for r in RECORDS[:10]])
def test_no_cut_of_a_real_sentence_start_doubles_it(record):
    # However much of its start the model left out, each slot comes back with the start once.
    parsed = parse_intentions(record["intention"])
    for position, (kind, start) in enumerate(MIKO_SLOTS, start=1):
        sentence = parsed[kind]
        if not sentence.lower().startswith(start.lower()):
            continue
        rest = sentence[len(start) :].strip()
        words = start.split()
        for cut in range(len(words)):
            line = f"Intention{position}: " + " ".join(words[cut:] + [rest])
            raw = re.sub(rf"^Intention{position}: [^\n]*", line, record["intention"], flags=re.M)
            result = parse_intentions(raw)[kind]
            assert result.lower().count(words[-1].lower() + " " + rest.split()[0].lower()) == 1
            assert result.lower().startswith(" ".join(words[:2]).lower()), result


def test_miko_stages_carry_the_papers_sampling():
    miko = get_pipeline("miko")
    assert miko.stage("key_info").defaults == {"temperature": 0.5, "max_tokens": 300}
    assert miko.stage("intentions").defaults == {"temperature": 0.7, "max_tokens": 300}
    assert miko.stage("describe_image").defaults == {}


@pytest.mark.parametrize(
    "record", KEY_INFO_INPUTS, ids=[str(r["question_id"]) for r in KEY_INFO_INPUTS]
)
def test_the_key_info_prompt_is_the_one_miko_sent(record):
    miko = get_pipeline("miko")
    stage_input = StageInput(
        text=record["text"],
        image_data_url=None,
        metadata={},
        upstream={"describe_image": {"description": record["image_descrption"]}},
    )
    # chat-keyinfo.py sent the input's prompt followed by the answer format.
    sent = (
        record["prompt"]
        + " Formulate your answer as: Concept:\nAction:\nObject:\nEmotion:\nKeywords:\n"
    )
    assert miko.render(miko.stage("key_info"), stage_input) == sent


def test_the_key_info_prompt_of_a_post_without_an_image_leaves_the_description_out():
    miko = get_pipeline("miko")
    prompt = miko.render(miko.stage("key_info"), StageInput("hi there", None, {}, {}))
    assert 'The information is "hi there" Formulate your answer as: Concept:\n' in prompt
    assert "/ " not in prompt and "[[" not in prompt


def test_the_image_prompt_is_the_papers():
    miko = get_pipeline("miko")
    prompt = miko.render(miko.stage("describe_image"), StageInput("so proud", None, {}, {}))
    assert (
        prompt
        == 'Based on the following text "so proud", please describe the current image in detail.\n'
    )


def test_the_distillery_wording_stays_as_a_variant():
    miko = get_pipeline("miko")
    assert miko.variants() == {
        "describe_image": ["default", "distillery"],
        "key_info": ["default", "distillery"],
        "intentions": ["default"],
    }
    stage_input = StageInput("so proud", None, {}, {"describe_image": {"description": "A cat."}})
    key_info = miko.stage("key_info")
    prompt = miko.render(key_info, stage_input, variant="distillery")
    assert prompt.startswith("Extract the key information of the social media post below")
    assert "Image description: A cat." in prompt
    assert miko.template_hash(key_info) != miko.template_hash(key_info, "distillery")
