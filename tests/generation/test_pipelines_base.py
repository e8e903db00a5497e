"""What every pipeline shares: waves, template hashes, prompt rendering and request building."""

import hashlib
import re

import pytest

from generation.pipelines.base import (
    PROMPTS_DIR,
    StageInput,
    all_pipelines,
    get_pipeline,
    render_template,
)

IMAGE = "data:image/png;base64,iVBORw0KGgo="


def stage_input(*, image=None, upstream=None, metadata=None, text="Messi scores again"):
    return StageInput(
        text=text, image_data_url=image, metadata=metadata or {}, upstream=upstream or {}
    )


def test_both_pipelines_are_registered_and_unknown_names_are_refused():
    assert {"miko", "cotpd"} <= set(all_pipelines())
    with pytest.raises(KeyError, match="unknown pipeline 'nope'.*cotpd, miko"):
        get_pipeline("nope")


def test_waves_respect_needs():
    miko = get_pipeline("miko")
    assert [[s.name for s in wave] for wave in miko.waves()] == [
        ["describe_image"],
        ["key_info"],
        ["intentions"],
    ]
    cotpd = get_pipeline("cotpd")
    assert [[s.name for s in wave] for wave in cotpd.waves()] == [
        ["caption", "aug_style", "aug_entity", "aug_image"],
        ["cot_noun", "cot_sentence", "cot_multimodal"],
    ]


@pytest.mark.parametrize("name", ["miko", "cotpd"])
def test_template_hash_is_the_sha256_of_the_file(name):
    pipeline = get_pipeline(name)
    hashes = set()
    for stage in pipeline.stages:
        content = (PROMPTS_DIR / name / stage.template).read_bytes()
        assert pipeline.template_hash(stage) == hashlib.sha256(content).hexdigest()
        hashes.add(pipeline.template_hash(stage))
    assert len(hashes) == len(pipeline.stages)


@pytest.mark.parametrize(
    "name,stage",
    [(name, s.name) for name, p in all_pipelines().items() for s in p.stages],
)
def test_every_template_renders_without_leftover_placeholders(name, stage):
    pipeline = get_pipeline(name)
    upstream = {
        "describe_image": {"description": "A man on a pitch."},
        "caption": {"description": "A man on a pitch."},
        "key_info": {
            "concept": "Football",
            "action": "Scoring",
            "object": "Ball",
            "emotion": "Joy",
            "keywords": ["goal", "pitch"],
        },
    }
    prompt = pipeline.render(pipeline.stage(stage), stage_input(upstream=upstream))
    assert "Messi scores again" in prompt
    assert not re.search(r"\{[a-z_]+\}", prompt)


def test_lines_with_only_empty_placeholders_are_dropped():
    template = (
        "Text: {text}\nImage description: {description}\nKeywords: {keywords}.\nAs {'a': 1}\n"
    )
    assert render_template(template, {"text": "hi", "keywords": ["a", "b"]}) == (
        "Text: hi\nKeywords: a, b.\nAs {'a': 1}\n"
    )


def test_the_intentions_prompt_works_without_an_image_description():
    miko = get_pipeline("miko")
    prompt = miko.render(miko.stage("intentions"), stage_input())
    assert "Image description" not in prompt
    assert "Concept" not in prompt.split("You can think")[0]
    assert "Intention10: The user post this tweet because..." in prompt


def test_image_stages_send_the_image_as_a_data_url_part():
    miko = get_pipeline("miko")
    request = miko.build_request(
        miko.stage("describe_image"), stage_input(image=IMAGE), {"temperature": 0.2}
    )
    (message,) = request.messages
    assert message["role"] == "user"
    text_part, image_part = message["content"]
    assert text_part["type"] == "text" and "Messi scores again" in text_part["text"]
    assert image_part == {"type": "image_url", "image_url": {"url": IMAGE}}
    assert request.parameters == {"temperature": 0.2}
    assert request.json_schema == miko.stage("describe_image").json_schema


def test_text_stages_send_a_plain_string_even_when_the_post_has_an_image():
    miko = get_pipeline("miko")
    request = miko.build_request(miko.stage("key_info"), stage_input(image=IMAGE), {})
    assert isinstance(request.messages[0]["content"], str)


def test_posts_without_an_image_skip_image_stages():
    miko = get_pipeline("miko")
    describe = miko.stage("describe_image")
    assert not describe.applies(has_image=False) and describe.applies(has_image=True)
    assert miko.stage("key_info").applies(has_image=False)
    with pytest.raises(ValueError, match="needs an image"):
        miko.build_request(describe, stage_input(), {})
