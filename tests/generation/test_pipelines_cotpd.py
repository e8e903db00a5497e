"""CoTPD stages: prompts with gold entities, parsers on good and broken answers, items."""

import json
import re

import pytest

from generation.pipelines.base import ParseError, StageInput, get_pipeline
from generation.pipelines.cotpd import parse_aug_entity, parse_caption

COTPD = get_pipeline("cotpd")
IMAGE = "data:image/png;base64,iVBORw0KGgo="


def test_the_entity_replacement_prompt_lists_the_gold_entities_of_either_format():
    # Was the cot_noun prompt, which leaked the gold labels into every explanation (issue 11).
    twitter = {"entities": [{"type": "PER", "start": 0, "end": 1, "text": "Messi"}]}
    mnre = {"relations": [{"head": {"name": "Messi"}, "tail": {"name": "Barca"}, "relation": "x"}]}
    stage = COTPD.stage("aug_entity")
    for metadata, expected in (
        (twitter, "Entities: Messi (PER)"),
        (mnre, "Entities: Messi, Barca"),
    ):
        prompt = COTPD.render(stage, StageInput("Messi scores", None, metadata, {}))
        assert expected in prompt
    assert "Entities" not in COTPD.render(stage, StageInput("Messi scores", None, {}, {}))


# A Twitter-2015 post and an MNRE post as the importers store them: gold labels in the metadata.
TWITTER_GOLD = {
    "tokens": ["RT", "Messi", "joins", "Inter", "Miami", "in", "Florida"],
    "tags": ["O", "B-PER", "O", "B-ORG", "I-ORG", "O", "B-LOC"],
    "entities": [
        {"type": "PER", "start": 1, "end": 2, "text": "Messi"},
        {"type": "ORG", "start": 3, "end": 5, "text": "Inter Miami"},
        {"type": "LOC", "start": 6, "end": 7, "text": "Florida"},
    ],
    "image_name": "1.jpg",
}
MNRE_GOLD = {
    "relations": [
        {
            "head": {"name": "Messi", "pos": [1, 2]},
            "tail": {"name": "Inter Miami", "pos": [3, 5]},
            "relation": "/per/org/member_of",
        }
    ],
    "image_name": "2.jpg",
}
GOLD_STRINGS = re.compile(
    r"\b(?:[BI]-(?:PER|ORG|LOC|MISC|OTHER)|PER|ORG|LOC|MISC|OTHER)\b|/per/org"
)
UPSTREAM = {"caption": {"description": "A footballer in a pink shirt."}}


@pytest.mark.parametrize("metadata", [TWITTER_GOLD, MNRE_GOLD], ids=["twitter", "mnre"])
@pytest.mark.parametrize("variant_stage", [s.name for s in COTPD.stages])
def test_gold_labels_reach_no_prompt_but_the_entity_replacement(metadata, variant_stage):
    stage = COTPD.stage(variant_stage)
    post = StageInput("RT Messi joins Inter Miami in Florida", IMAGE, metadata, UPSTREAM)
    for variant in COTPD.stage_variants(stage):
        prompt = COTPD.render(stage, post, variant)
        leaked = GOLD_STRINGS.findall(prompt) + [
            word for word in ("B-PER", "member_of", "(PER)", "Inter Miami (ORG)") if word in prompt
        ]
        if stage.name == "aug_entity":
            assert "Messi" in prompt.split("Entities:")[1]
        else:
            assert leaked == [] and "Entities" not in prompt, (stage.name, variant, leaked)


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
