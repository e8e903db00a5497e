"""CoTPD stages: prompts with gold entities, parsers on good and broken answers, items."""

import json

import pytest

from generation.pipelines.base import ParseError, StageInput, get_pipeline
from generation.pipelines.cotpd import parse_aug_entity, parse_caption

COTPD = get_pipeline("cotpd")


def test_cot_noun_prompt_lists_the_gold_entities_of_either_format():
    twitter = {"entities": [{"type": "PER", "start": 0, "end": 1, "text": "Messi"}]}
    mnre = {"relations": [{"head": {"name": "Messi"}, "tail": {"name": "Barca"}, "relation": "x"}]}
    stage = COTPD.stage("cot_noun")
    for metadata, expected in (
        (twitter, "Entities: Messi (PER)"),
        (mnre, "Entities: Messi, Barca"),
    ):
        prompt = COTPD.render(stage, StageInput("Messi scores", None, metadata, {}))
        assert expected in prompt
    assert "Entities" not in COTPD.render(stage, StageInput("Messi scores", None, {}, {}))


@pytest.mark.parametrize(
    "kind", ["cot_noun", "cot_sentence", "cot_multimodal", "aug_style", "aug_image"]
)
def test_text_stages_yield_one_item_of_their_kind(kind):
    stage = COTPD.stage(kind)
    parsed = stage.parse("**Explanation:** Messi is a footballer.\n\nHe plays for Miami.")
    assert parsed == {"text": "Messi is a footballer.\n\nHe plays for Miami."}
    (item,) = stage.items(parsed)
    assert (item.kind, item.position, item.text) == (kind, 1, parsed["text"])
    assert stage.parse('{"text": "Short."}') == {"text": "Short."}
    with pytest.raises(ParseError, match="empty"):
        stage.parse("\n \n")
    with pytest.raises(ParseError, match="JSON"):
        stage.parse('{"text": "cut off')


def test_caption_parses_to_a_description():
    assert parse_caption("Caption: A man kicks a ball.") == {"description": "A man kicks a ball."}
    assert COTPD.stage("caption").items(parse_caption("A ball.")) == []


GOOD_AUG_ENTITY = {
    "labelled": ("Rewritten: Ronaldo scores again\nPlausible: yes", "Ronaldo scores again", True),
    "bold": (
        "**Rewritten:** Ronaldo scores again\n\n**Plausible:** No.",
        "Ronaldo scores again",
        False,
    ),
    "bare lines": ("Ronaldo scores again\nYes", "Ronaldo scores again", True),
    "explained": (
        "Rewritten sentence - Ronaldo scores again\nPlausible: yes, he is a striker.",
        "Ronaldo scores again",
        True,
    ),
    "json": (
        json.dumps({"text": "Ronaldo scores again", "plausible": "no"}),
        "Ronaldo scores again",
        False,
    ),
}


@pytest.mark.parametrize("raw,text,plausible", GOOD_AUG_ENTITY.values(), ids=GOOD_AUG_ENTITY.keys())
def test_aug_entity_parses_the_sentence_and_the_judgement(raw, text, plausible):
    parsed = parse_aug_entity(raw)
    assert parsed == {"text": text, "plausible": plausible}
    (item,) = COTPD.stage("aug_entity").items(parsed)
    assert item.kind == "aug_entity" and item.provenance == {"plausible": plausible}


BROKEN_AUG_ENTITY = {
    "no judgement": ("Rewritten: Ronaldo scores again", "no 'Plausible"),
    "not yes or no": ("Rewritten: Ronaldo scores again\nPlausible: maybe", "not yes or no"),
    "no sentence": ("Plausible: yes", "empty or missing"),
    "json without judgement": ('{"text": "Ronaldo"}', "not yes or no"),
}


@pytest.mark.parametrize("raw,message", BROKEN_AUG_ENTITY.values(), ids=BROKEN_AUG_ENTITY.keys())
def test_broken_aug_entity_answers_raise_a_clear_parse_error(raw, message):
    with pytest.raises(ParseError, match=message):
        parse_aug_entity(raw)


def test_multimodal_explanations_skip_posts_without_an_image():
    assert not COTPD.stage("cot_multimodal").applies(has_image=False)
    assert COTPD.stage("cot_noun").applies(has_image=False)
