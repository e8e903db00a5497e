"""The cotpd export as a training set: Twitter-2015 and MNRE samples imported, rated, exported."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from evaluation.augmentations import gold_labels, project_replacement, project_style, tokenize
from generation.models import Batch, BatchItem, KnowledgeItem, Post
from generation.services.imports import posts_import
from tests.factories import annotators, campaign_create, describe, rate, stage_result

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cotpd"
ZIMMERMAN = "1015799"  # "... where George Zimmerman got shot at ..." (PER at tokens 8-9)
SMASH = "563049"  # "RT @redbullESPORTS : Smash Shiba is stoked for #NWM7 Melee Grand Finals ."
NOTHING_PASSED = "1109405"
BTS = "twitter_stream_2018_10_10_7_0_2_193"  # three entity pairs in one sentence
COSBY = "twitter_stream_2018_09_04_11_0_2_240"  # "RT @WLWT : Bill Cosby 's star on ..."


def add_item(batch, post, kind, text, *, plausible=None, caption=None) -> KnowledgeItem:
    result = None
    if plausible is not None:
        result = stage_result(
            post, kind, {"text": text, "plausible": plausible}, batch=batch, model="teacher"
        )
    position = KnowledgeItem.objects.filter(batch=batch, post=post, kind=kind).count() + 1
    item = KnowledgeItem.objects.create(
        post=post,
        batch=batch,
        kind=kind,
        position=position,
        text=text,
        stage_result=result,
        description_result=caption,
    )
    BatchItem.objects.create(batch=batch, item=item)
    return item


def campaign_over(dataset_name: str, plan: dict[str, list[tuple]]):
    """A cotpd campaign over every post of the dataset: per post, (kind, text, plausibility
    rating[, judgement]) items; posts not in `plan` get one cot_noun rated 5."""
    campaign = campaign_create(name=f"{dataset_name}-campaign", questions=("plausibility",))
    campaign.dataset = posts_dataset = Post.objects.filter(dataset__name=dataset_name)[0].dataset
    campaign.save()
    batch = Batch.objects.create(
        dataset=posts_dataset, pipeline="cotpd", imported=True, status=Batch.Status.DONE
    )
    campaign.batches.add(batch)
    items, values = [], []
    for post in Post.objects.filter(dataset=posts_dataset).order_by("id"):
        caption = describe(post, f"A picture for {post.external_id}.", batch=batch, stage="caption")
        for entry in plan.get(post.external_id, [("cot_noun", f"About {post.external_id}.", 5)]):
            kind, text, value, *judgement = entry
            plausible = (judgement or [None])[0]
            items.append(add_item(batch, post, kind, text, plausible=plausible, caption=caption))
            values.append(value)
    coders = annotators(2, prefix=f"{dataset_name}-coder")
    rate(campaign, items, "plausibility", coders, [values, values])
    return campaign


@pytest.fixture
def twitter(db):
    posts_import(path=FIXTURES / "twitter2015_sample.txt", dataset_name="twitter2015")
    return campaign_over(
        "twitter2015",
        {
            ZIMMERMAN: [
                ("cot_noun", "George Zimmerman is the man who shot Trayvon Martin.", 5),
                ("cot_sentence", "A user jokes about a notorious place.", 2),
                ("aug_image", "A street corner in Florida at dusk.", 4),
                ("aug_entity",
                 "RT @JayKenMinaj _ : Me outside of where Trayvon Martin got shot at. "
                 "You know God is so good.", 5, "yes"),
                ("aug_entity", "RT @JayKenMinaj _ : Me outside of where Mickey Mouse got shot "
                 "at . You know God is so good .", 5, False),  # judged implausible
                ("aug_entity", "Totally different words with no entity at all", 5, True),
                ("aug_entity", "RT @JayKenMinaj _ : Me outside where Barack Obama got shot at . "
                 "You know God is so good .", 2, True),  # rated low: not accepted
                ("aug_style", "omg me outside where George Zimmerman got shot at!! God is so "
                 "good #blessed", 4),
                ("aug_style", "me outside where Zimmerman got shot lol", 4),  # entity lost
            ],
            SMASH: [
                ("cot_noun", "Smash and Melee are video games.", 4),
                ("aug_style", "Smash Shiba stoked af for #NWM7 Melee Grand Finals!!", 5),
            ],
            NOTHING_PASSED: [("cot_noun", "Swan upping is a ceremony.", 1)],
        },
    )  # fmt: skip


def export(campaign, tmp_path: Path, *args: str) -> tuple[Path, list[dict], dict]:
    output = tmp_path / "cotpd.jsonl"
    call_command(
        "export_dataset", "--campaign", campaign.name, "--format", "cotpd",
        "--output", str(output), "--no-progress", *args, stdout=io.StringIO(),
    )  # fmt: skip
    records = [json.loads(line) for line in output.read_text().splitlines()]
    manifest = json.loads(Path(f"{output}.manifest.json").read_text())
    return output, records, manifest


def by_id(records: list[dict]) -> dict[str, dict]:
    return {record["id"]: record for record in records}


def test_every_post_is_kept_with_its_gold_labels(twitter, tmp_path):
    _, records, manifest = export(twitter, tmp_path, "--min-plausibility", "4")
    posts = [r for r in records if r["augmentation"] is None]
    assert len(posts) == 12 == manifest["counts"]["posts"]
    assert [r["id"] for r in posts] == list(
        Post.objects.filter(dataset__name="twitter2015").order_by("id")
        .values_list("external_id", flat=True)
    )  # fmt: skip
    empty = by_id(records)[NOTHING_PASSED]
    assert empty["knowledge"] == {}
    assert empty["caption"] == f"A picture for {NOTHING_PASSED}."
    assert empty["tokens"][:2] == ["Swan", "upping"] and "B-LOC" in empty["ner_tags"]

    zimmerman = by_id(records)[ZIMMERMAN]
    post = Post.objects.get(external_id=ZIMMERMAN)
    assert zimmerman["tokens"] == post.metadata["tokens"]
    assert zimmerman["ner_tags"] == post.metadata["tags"]
    assert zimmerman["ner_tags"][8:10] == ["B-PER", "I-PER"]
    assert zimmerman["entities"] == post.metadata["entities"]
    assert zimmerman["relations"] == [] and zimmerman["source_id"] is None
    # Accepted knowledge of each kind; the sample augmentations are records, not knowledge.
    assert zimmerman["knowledge"] == {
        "cot_noun": "George Zimmerman is the man who shot Trayvon Martin.",
        "aug_image": "A street corner in Florida at dusk.",
    }
    smash = by_id(records)[SMASH]
    assert [e["text"] for e in smash["entities"]] == ["Smash Shiba", "Melee Grand Finals"]


def test_posts_with_nothing_accepted_can_be_dropped(twitter, tmp_path):
    _, records, manifest = export(twitter, tmp_path, "--min-plausibility", "4", "--drop-empty")
    assert NOTHING_PASSED not in by_id(records)
    assert manifest["counts"]["posts"] == 11 and manifest["drop_empty"] is True


def test_entity_replacements_are_samples_with_their_new_spans(twitter, tmp_path):
    _, records, manifest = export(twitter, tmp_path, "--min-plausibility", "4")
    replaced = [r for r in records if r["augmentation"] == "aug_entity"]
    # Kept: the plausible, aligned one. Dropped: judged implausible, not alignable, rated low.
    assert [r["id"] for r in replaced] == [f"{ZIMMERMAN}#aug_entity-1"]
    record = replaced[0]
    assert record["source_id"] == ZIMMERMAN
    assert record["text"].startswith("RT @JayKenMinaj _ : Me outside of where Trayvon Martin")
    assert record["tokens"][8:11] == ["Trayvon", "Martin", "got"]
    assert record["tokens"][12:14] == ["at", "."]  # "at." split like the post's tokens
    assert record["ner_tags"][8:10] == ["B-PER", "I-PER"]
    assert record["ner_tags"].count("O") == len(record["tokens"]) - 2
    assert record["entities"] == [{"type": "PER", "start": 8, "end": 10, "text": "Trayvon Martin"}]
    assert record["knowledge"] == {}  # the explanations name the replaced entity
    assert record["caption"] == f"A picture for {ZIMMERMAN}."
    item = KnowledgeItem.objects.get(text=record["text"])
    assert record["item_id"] == item.id
    assert manifest["augmentations"]["aug_entity"] == {
        "kept": 1, "dropped_implausible": 1, "dropped_unaligned": 1
    }  # fmt: skip


def test_style_rewrites_keep_tags_where_the_entities_survive(twitter, tmp_path):
    _, records, manifest = export(twitter, tmp_path, "--min-plausibility", "4")
    rewrites = by_id([r for r in records if r["augmentation"] == "aug_style"])
    assert sorted(rewrites) == [f"{ZIMMERMAN}#aug_style-1", f"{SMASH}#aug_style-1"]
    smash = rewrites[f"{SMASH}#aug_style-1"]
    assert [(e["text"], e["type"]) for e in smash["entities"]] == [
        ("Smash Shiba", "OTHER"), ("Melee Grand Finals", "OTHER")
    ]  # fmt: skip
    assert smash["tokens"][-2:] == ["!", "!"]
    # The style rewrite keeps the post's meaning, so its knowledge still applies.
    assert smash["knowledge"] == {"cot_noun": "Smash and Melee are video games."}
    zimmerman = rewrites[f"{ZIMMERMAN}#aug_style-1"]
    start = zimmerman["tokens"].index("George")
    assert zimmerman["ner_tags"][start : start + 2] == ["B-PER", "I-PER"]
    # "me outside where Zimmerman got shot lol" lost "George Zimmerman": dropped.
    assert manifest["augmentations"]["aug_style"] == {
        "kept": 2, "dropped_implausible": 0, "dropped_unaligned": 1
    }  # fmt: skip
    assert manifest["counts"]["records"] == len(records) == 12 + 3


def test_loads_with_datasets_as_token_classification(twitter, tmp_path):
    import datasets

    path, records, manifest = export(twitter, tmp_path, "--min-plausibility", "4")
    loaded = datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert len(loaded) == len(records)
    for row in loaded:
        assert len(row["tokens"]) == len(row["ner_tags"])
    assert manifest["ner_labels"] == [
        "O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-OTHER", "I-OTHER", "B-PER", "I-PER"
    ]  # fmt: skip
    labels = datasets.ClassLabel(names=manifest["ner_labels"])
    cast = loaded.cast_column("ner_tags", datasets.Sequence(labels))
    zimmerman = cast[[r["id"] for r in records].index(ZIMMERMAN)]
    assert zimmerman["ner_tags"][8:10] == [labels.str2int("B-PER"), labels.str2int("I-PER")]


@pytest.fixture
def mnre(db):
    posts_import(path=FIXTURES / "mnre_sample.txt", dataset_name="mnre", format="mnre")
    return campaign_over(
        "mnre",
        {
            COSBY: [
                ("cot_noun", "Bill Cosby is an American comedian.", 5),
                ("aug_entity", "RT @WLWT: Tom Hanks's star on Sunset Boulevard vandalized",
                 5, True),
                ("aug_style", "Bill Cosby's star on the Hollywood Walk of Fame got vandalized "
                 "smh", 5),
            ],
        },
    )  # fmt: skip


def test_mnre_records_keep_every_relation_of_the_sentence(mnre, tmp_path):
    _, records, manifest = export(mnre, tmp_path)
    posts = [r for r in records if r["augmentation"] is None]
    assert len(posts) == 11 == manifest["counts"]["posts"]
    for record in posts:
        post = Post.objects.get(dataset__name="mnre", external_id=record["id"])
        assert record["tokens"] == post.metadata["tokens"]
        assert record["relations"] == post.metadata["relations"]
        assert record["ner_tags"] is None and record["entities"] == []
    bts = by_id(records)[BTS]
    assert len(bts["relations"]) == 3
    assert bts["relations"][0]["head"] == {"name": "BTS", "pos": [3, 4]}
    assert manifest["ner_labels"] == []


def test_mnre_augmentations_move_head_and_tail(mnre, tmp_path):
    _, records, _ = export(mnre, tmp_path)
    replaced = by_id(records)[f"{COSBY}#aug_entity-1"]
    assert replaced["relations"] == [
        {
            "head": {"name": "Tom Hanks", "pos": [3, 5]},
            "tail": {"name": "Sunset Boulevard", "pos": [8, 10]},
            "relation": "/per/misc/present_in",
        }
    ]
    assert replaced["tokens"][5] == "'s"
    styled = by_id(records)[f"{COSBY}#aug_style-1"]
    relation = styled["relations"][0]
    assert relation["head"] == {"name": "Bill Cosby", "pos": [0, 2]}
    assert relation["tail"] == {"name": "Hollywood Walk of Fame", "pos": [6, 10]}
    assert styled["tokens"][6:10] == ["Hollywood", "Walk", "of", "Fame"]


# The projection itself, on the first Twitter-2015 tweet.
TOKENS = "Me outside of where George Zimmerman got shot at .".split()
TAGS = ["O", "O", "O", "O", "B-PER", "I-PER", "O", "O", "O", "O"]
GOLD = {"tokens": TOKENS, "tags": TAGS}


@pytest.mark.parametrize(
    ("rewrite", "entities"),
    [
        ("Me outside of where John Smith got shot at .", [("John Smith", 4, 6)]),
        ("Me outside of where Trayvon Benjamin Martin got shot at.", [
            ("Trayvon Benjamin Martin", 4, 7)]),
        ("Me outside of where Obama got shot at .", [("Obama", 4, 5)]),
        ("Me outside of where George Bush got shot at .", [("George Bush", 4, 6)]),
        ("Me outside of where George Zimmerman got shot at .", [("George Zimmerman", 4, 6)]),
    ],
)  # fmt: skip
def test_replacement_spans(rewrite, entities):
    labels = project_replacement(gold_labels(" ".join(TOKENS), GOLD), rewrite)
    assert [(e["text"], e["start"], e["end"]) for e in labels.record()["entities"]] == entities
    assert len(labels.tags) == len(labels.tokens)


@pytest.mark.parametrize(
    "rewrite",
    [
        "Me outside of where got shot at .",  # the entity was dropped
        "Me outside of the place where John Smith was shot .",  # other words changed beside it
        "A completely different sentence",
        "",
    ],
)
def test_replacements_that_cannot_be_labelled_are_refused(rewrite):
    assert project_replacement(gold_labels(" ".join(TOKENS), GOLD), rewrite) is None


def test_style_projection_tags_every_occurrence_and_refuses_lost_entities():
    gold = gold_labels(" ".join(TOKENS), GOLD)
    labels = project_style(gold, "George Zimmerman again?! where George Zimmerman got shot")
    assert [e["start"] for e in labels.record()["entities"]] == [0, 6]  # "?", "!" split
    assert project_style(gold, "where Zimmerman got shot") is None
    assert project_style(gold, "") is None


def test_gold_labels_read_broken_metadata_as_no_gold():
    assert gold_labels("a b", {"tokens": ["a", "b"], "tags": ["O"]}).tags is None
    assert gold_labels("a b", {"tokens": ["a", "b"], "tags": ["O", "X-PER"]}).tags is None
    broken = {"tokens": ["a", "b"], "relations": [{"head": {"pos": [0, 9]}}, "nonsense"]}
    assert gold_labels("a b", broken).relations == []
    plain = gold_labels("just words here", {"image_name": "x.jpg"})
    assert plain.tokens == ["just", "words", "here"] and not plain.has_gold


def test_tokenize_splits_like_the_post():
    known = {"Zimmerman", "'s", "@WLWT", "I"}
    assert tokenize("@WLWT: Zimmerman. Hanks's (I'm)", known) == [
        "@WLWT", ":", "Zimmerman", ".", "Hanks", "'s", "(", "I'm", ")"
    ]  # fmt: skip


def test_each_record_has_the_caption_its_own_run_read(twitter, tmp_path):
    """A later batch captioned the posts again: the records keep the captions their items read."""
    later = Batch.objects.create(
        dataset=twitter.dataset, pipeline="cotpd", imported=True, status=Batch.Status.DONE
    )
    for post in Post.objects.filter(dataset=twitter.dataset):
        describe(post, "A caption from a later run.", batch=later, stage="caption")
    _, records, _ = export(twitter, tmp_path, "--min-plausibility", "4")
    for record in records:
        assert record["caption"] == f"A picture for {record['source_id'] or record['id']}."
