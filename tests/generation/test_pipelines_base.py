"""What every pipeline shares: waves, template hashes, prompt rendering and request building."""

import hashlib
import re

import pytest

from generation.pipelines.base import (
    PROMPTS_DIR,
    ParseError,
    Stage,
    StageInput,
    all_pipelines,
    get_pipeline,
    merge_partial,
    render_template,
    stage_parameters,
    without_last_slot,
)
from generation.pipelines.miko import MIKO_KINDS, parse_intentions

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
    "name,stage,variant",
    [
        (name, s.name, variant)
        for name, p in all_pipelines().items()
        for s in p.stages
        for variant in p.stage_variants(s)
    ],
)
def test_every_template_renders_without_leftover_placeholders(name, stage, variant):
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
    prompt = pipeline.render(pipeline.stage(stage), stage_input(upstream=upstream), variant)
    assert "Messi scores again" in prompt
    assert not re.search(r"\{[a-z_]+\}", prompt) and "[[" not in prompt and "]]" not in prompt


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


def test_optional_pieces_of_a_line_are_kept_only_with_a_value():
    template = 'Info "{text}"[[/ "{description}"]] end\n[[x]] {text}[[ and {a}]] [1, [2]]\n'
    assert render_template(template, {"text": "t", "description": "d"}) == (
        'Info "t"/ "d" end\n[[x]] t [1, [2]]\n'
    )
    assert render_template(template, {"text": "t", "a": "A"}) == (
        'Info "t" end\n[[x]] t and A [1, [2]]\n'
    )
    # A line whose placeholders are all empty still goes, optional pieces or not.
    assert render_template("[[{a}]] {b}\nkept\n", {}) == "kept\n"


# Template variants -----------------------------------------------------------------------------


def test_template_variants_are_files_beside_the_default():
    miko = get_pipeline("miko")
    key_info = miko.stage("key_info")
    assert miko.template_path(key_info) == PROMPTS_DIR / "miko/key_info.txt"
    assert miko.template_path(key_info, "default") == PROMPTS_DIR / "miko/key_info.txt"
    assert (
        miko.template_path(key_info, "distillery") == PROMPTS_DIR / "miko/key_info.distillery.txt"
    )
    for bad in ("nope", "../cotpd/caption", "Distillery"):
        with pytest.raises(ValueError, match="no template variant .*known: default, distillery"):
            miko.template_path(key_info, bad)
    assert miko.variant_names() == ["default", "distillery"]
    assert get_pipeline("cotpd").variant_names() == ["default"]


def test_a_batch_variant_applies_to_the_stages_that_have_it():
    miko = get_pipeline("miko")
    key_info, intentions = miko.stage("key_info"), miko.stage("intentions")
    assert miko.stage_variant(key_info, None) == "default"
    assert miko.stage_variant(key_info, "distillery") == "distillery"
    # The intentions wording was MIKO's already: that stage keeps its one template.
    assert miko.stage_variant(intentions, "distillery") == "default"
    assert miko.stage_variant(key_info, {"key_info": "distillery"}) == "distillery"
    assert miko.stage_variant(intentions, {"key_info": "distillery"}) == "default"
    with pytest.raises(ValueError, match="no template variant 'nope'"):
        miko.stage_variant(key_info, "nope")
    with pytest.raises(ValueError, match="no template variant 'nope'"):
        miko.stage_variant(key_info, {"key_info": "nope"})
    with pytest.raises(ValueError, match="no stage caption"):
        miko.stage_variant(key_info, {"caption": "distillery"})
    with pytest.raises(ValueError, match="a name or an object"):
        miko.stage_variant(key_info, 3)


def test_a_variant_keys_its_own_results_and_builds_its_own_request():
    miko = get_pipeline("miko")
    describe = miko.stage("describe_image")
    assert (
        miko.template_hash(describe, "distillery")
        == hashlib.sha256(
            (PROMPTS_DIR / "miko/describe_image.distillery.txt").read_bytes()
        ).hexdigest()
    )
    assert miko.template_hash(describe) != miko.template_hash(describe, "distillery")
    paper = miko.build_request(describe, stage_input(image=IMAGE), {})
    ours = miko.build_request(describe, stage_input(image=IMAGE), {}, variant="distillery")
    assert paper.messages[0]["content"][0]["text"].startswith("Based on the following text")
    assert ours.messages[0]["content"][0]["text"].startswith("Describe the image in detail")


# Sampling parameters per stage -----------------------------------------------------------------


def test_stage_parameters_layer_endpoint_stage_batch_and_override():
    miko = get_pipeline("miko")
    key_info, intentions = miko.stage("key_info"), miko.stage("intentions")
    endpoint = {"temperature": 0.1, "top_p": 0.9, "seed": 1, "timeout": 30, "device": "cuda"}
    # The endpoint's sampling parameters, then the stage's defaults over them.
    assert stage_parameters(key_info, endpoint_parameters=endpoint, batch_parameters={}) == {
        "temperature": 0.5,
        "top_p": 0.9,
        "seed": 1,
        "max_tokens": 300,
    }
    batch = {
        "max_tokens": 500,
        "seed": 7,
        "template_variant": "distillery",
        "stages": {"intentions": {"temperature": 1.0, "timeout": 5}},
    }
    # The batch's own parameters over the stage defaults ...
    assert stage_parameters(key_info, endpoint_parameters=endpoint, batch_parameters=batch) == {
        "temperature": 0.5,
        "top_p": 0.9,
        "seed": 7,
        "max_tokens": 500,
    }
    # ... and its per-stage overrides over everything (backend options never pass).
    assert stage_parameters(intentions, endpoint_parameters=endpoint, batch_parameters=batch) == {
        "temperature": 1.0,
        "top_p": 0.9,
        "seed": 7,
        "max_tokens": 500,
    }
    # A stage without defaults runs with the endpoint's and the batch's.
    describe = miko.stage("describe_image")
    assert stage_parameters(describe, endpoint_parameters=None, batch_parameters=None) == {}
    assert stage_parameters(
        describe, endpoint_parameters={"temperature": 0.2}, batch_parameters={"stages": None}
    ) == {"temperature": 0.2}


# Partial results ---------------------------------------------------------------------------------

CLEAN = "\n".join(f"Intention{n}: first answer {n}." for n in range(1, 11))
RETRY = "\n".join(f"Intention{n}: second answer {n}." for n in range(1, 11))


def test_a_stage_reports_the_slots_its_output_lacks():
    intentions = get_pipeline("miko").stage("intentions")
    nine = parse_intentions("\n".join(CLEAN.splitlines()[:9]))
    assert intentions.missing_slots(nine) == ["open"]
    assert intentions.missing_slots(parse_intentions(CLEAN)) == []
    # MIKO's stage computes what is missing itself, so a stored output without the key works too.
    assert intentions.missing_slots({"xWant": "x"}) == MIKO_KINDS[1:]
    generic = Stage(name="s", template="s.txt", parse=lambda raw: {"text": raw})
    assert generic.missing_slots({"text": "x"}) == []
    assert generic.missing_slots({"a": "x", "missing": ["b"]}) == ["b"]
    assert generic.missing_slots(None) == []


def test_merge_partial_keeps_the_old_slots_and_takes_only_the_missing_ones():
    intentions = get_pipeline("miko").stage("intentions")
    lines = CLEAN.splitlines()
    old = parse_intentions("\n".join(lines[:2] + lines[3:9]))  # lacks xAttr and open
    assert old["missing"] == ["xAttr", "open"]
    merged = merge_partial(intentions, old, parse_intentions(RETRY))
    assert list(merged) == MIKO_KINDS  # complete, in slot order, no "missing"
    assert merged["xAttr"].endswith("second answer 3.")
    assert merged["open"].endswith("second answer 10.")
    assert all(merged[k] == old[k] for k in MIKO_KINDS if k not in ("xAttr", "open"))
    # A retry that is partial itself fills what it can; the rest stays missing.
    retry = parse_intentions("\n".join(RETRY.splitlines()[:5]))
    merged = merge_partial(intentions, old, retry)
    assert merged["missing"] == ["open"] and merged["xAttr"].endswith("second answer 3.")
    assert merged["xWant"] == old["xWant"]
    # A complete output is left as it was.
    complete = parse_intentions(CLEAN)
    assert merge_partial(intentions, complete, parse_intentions(RETRY)) == complete


def test_merge_partial_of_a_generic_stage_follows_its_missing_key():
    stage = Stage(name="s", template="s.txt", parse=lambda raw: {})
    old = {"a": "1", "missing": ["b", "c"]}
    assert merge_partial(stage, old, {"a": "X", "b": "2", "missing": ["c"]}) == {
        "a": "1",
        "b": "2",
        "missing": ["c"],
    }
    with pytest.raises(ParseError):
        parse_intentions("Intention1:\n")


def test_without_last_slot_marks_the_cut_slot_of_a_truncated_answer_missing():
    intentions = get_pipeline("miko").stage("intentions")
    complete = parse_intentions(CLEAN)
    cut = without_last_slot(intentions, complete)
    assert cut["missing"] == ["open"] and list(cut)[:-1] == MIKO_KINDS[:9]
    nine = parse_intentions("\n".join(CLEAN.splitlines()[:2] + CLEAN.splitlines()[3:9]))
    assert without_last_slot(intentions, nine)["missing"] == ["xAttr", "xNeed", "open"]
    one = {"xWant": "x", "missing": MIKO_KINDS[1:]}
    assert without_last_slot(intentions, one) == one
    generic = Stage(name="s", template="s.txt", parse=lambda raw: {})
    assert without_last_slot(generic, {"text": "t"}) == {"text": "t"}


def test_the_default_missing_function_reads_the_parsers_key():
    generic = Stage(name="s", template="s.txt", parse=lambda raw: {})
    assert generic.missing({"a": "x"}) == [] and generic.missing({"missing": ["b"]}) == ["b"]
    assert get_pipeline("miko").stage("intentions").missing({"xWant": "x"}) == MIKO_KINDS[1:]
