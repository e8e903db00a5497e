"""Splits: fractions, the seeded draw (a property test over seeds), `split_dataset`, splits kept
from source files by `import_posts --split`, and the API."""

import io
import json
from collections import Counter

import pytest
from django.core.management import CommandError, call_command
from hypothesis import given, settings
from hypothesis import strategies as st

from config.errors import ApplicationError, Conflict
from generation.models import Dataset, Post
from students.models import PostSplit, SplitAssignment
from students.selectors import dataset_splits, posts_in_split
from students.services import splits_draw
from students.splits import fractions_checked, fractions_parsed, split_of
from tests.factories import DatasetFactory, PostFactory

FRACTIONS = {"train": 0.8, "dev": 0.1, "test": 0.1}

ids = st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=60, unique=True)
fraction_sets = st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=5).map(
    lambda weights: {f"s{i}": w / sum(weights) for i, w in enumerate(weights)}
)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**63 - 1), posts=ids, more=ids, fractions=fraction_sets
)
def test_a_post_is_in_one_split_fixed_by_seed_and_id_whatever_else_is_there(
    seed, posts, more, fractions
):
    fractions = fractions_checked(fractions)
    first = {p: split_of(seed=seed, fractions=fractions, external_id=p) for p in posts}
    assert set(first.values()) <= set(fractions)
    # Drawn again, with other posts added (and in another order): no post moves.
    grown = [*more, *posts][::-1]
    second = {p: split_of(seed=seed, fractions=fractions, external_id=p) for p in grown}
    assert all(second[p] == first[p] for p in posts)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_the_draw_follows_the_fractions(seed):
    counts = Counter(
        split_of(seed=seed, fractions=FRACTIONS, external_id=str(n)) for n in range(4000)
    )
    # 4,000 draws: each share within 3 points of its fraction (over 6 standard deviations).
    assert abs(counts["train"] / 4000 - 0.8) < 0.03
    assert abs(counts["test"] / 4000 - 0.1) < 0.03


def test_another_seed_gives_another_split():
    one = [split_of(seed=1, fractions=FRACTIONS, external_id=str(n)) for n in range(200)]
    two = [split_of(seed=2, fractions=FRACTIONS, external_id=str(n)) for n in range(200)]
    assert one != two


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("train=0.8,dev=0.1", "must sum to 1, not 0.9"),
        ("train=0.8,dev=0.1,test=0.2", "must sum to 1, not 1.1"),
        ("train=1.2,test=-0.2", "above 0 and at most 1"),
        ("train=nan,test=0.5", "above 0 and at most 1"),
        ("train=0.5,train=0.5", "named twice"),
        ("train:0.8,test=0.2", "NAME=FRACTION"),
        ("train=eighty", "NAME=FRACTION"),
        ("=1", "a split name is"),
        ("tr ain=1", "a split name is"),
        ("", "NAME=FRACTION"),
    ],
)
def test_bad_fractions_are_refused_saying_why(spec, message):
    with pytest.raises(ApplicationError, match=message):
        fractions_parsed(spec)


def test_fractions_of_a_third_sum_to_one():
    assert fractions_parsed("a=0.333333333,b=0.333333333,c=0.333333334") == {
        "a": 0.333333333, "b": 0.333333333, "c": 0.333333334,
    }  # fmt: skip


def split_names(dataset: Dataset) -> dict[str, str]:
    return dict(PostSplit.objects.filter(dataset=dataset).values_list("post__external_id", "name"))


def test_split_dataset_splits_every_post_and_later_posts_without_moving_others(db):
    dataset = DatasetFactory(name="tw15")
    PostFactory.create_batch(60, dataset=dataset)
    out = io.StringIO()
    call_command(
        "split_dataset", "--dataset", "tw15", "--fractions", "train=0.6,dev=0.2,test=0.2",
        "--seed", "7", stdout=out, verbosity=0,
    )  # fmt: skip
    first = split_names(dataset)
    assert len(first) == 60 and set(first.values()) == {"train", "dev", "test"}
    assert "seed 7 (train=0.6,dev=0.2,test=0.2)" in out.getvalue()
    assert first == {
        p: split_of(seed=7, fractions={"train": 0.6, "dev": 0.2, "test": 0.2}, external_id=p)
        for p in first
    }
    PostFactory.create_batch(20, dataset=dataset)
    call_command(
        "split_dataset", "--dataset", "tw15", "--fractions", "train=0.6,dev=0.2,test=0.2",
        "--seed", "7", stdout=io.StringIO(), verbosity=0,
    )  # fmt: skip
    second = split_names(dataset)
    assert len(second) == 80
    assert {p: second[p] for p in first} == first
    assert SplitAssignment.objects.filter(dataset=dataset).count() == 1
    page = dataset_splits(dataset=dataset)
    assert sum(page["splits"].values()) == 80 and page["unsplit"] == 0
    assert list(posts_in_split(dataset=dataset, split="test")) == list(
        Post.objects.filter(dataset=dataset, split__name="test").order_by("id")
    )


def test_drawing_again_with_another_seed_needs_replace(db):
    dataset = DatasetFactory(name="d")
    PostFactory.create_batch(30, dataset=dataset)
    splits_draw(dataset=dataset, fractions=FRACTIONS, seed=1)
    before = split_names(dataset)
    with pytest.raises(Conflict, match="already split with seed 1"):
        splits_draw(dataset=dataset, fractions=FRACTIONS, seed=2)
    with pytest.raises(CommandError, match="already split with seed 1"):
        call_command("split_dataset", "--dataset", "d", "--seed", "2", verbosity=0)
    assert split_names(dataset) == before
    call_command(
        "split_dataset", "--dataset", "d", "--seed", "2", "--replace", stdout=io.StringIO(),
        verbosity=0,
    )  # fmt: skip
    after = split_names(dataset)
    assert after != before and len(after) == 30
    assert SplitAssignment.objects.filter(dataset=dataset).get().seed == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "nope"], "no dataset named 'nope'"),
        (["--dataset", "d", "--fractions", "train=0.9,test=0.2"], "must sum to 1"),
        (["--dataset", "d", "--seed", "-1"], "the seed is a whole number"),
    ],
)
def test_split_dataset_refuses_broken_input(db, args, message):
    dataset = DatasetFactory(name="d")
    PostFactory.create_batch(3, dataset=dataset)
    with pytest.raises(CommandError, match=message):
        call_command("split_dataset", *args, verbosity=0)
    assert not PostSplit.objects.exists() and not SplitAssignment.objects.exists()


def write_jsonl(path, ids):
    path.write_text("".join(json.dumps({"id": i, "text": f"text of {i}"}) + "\n" for i in ids))
    return path


def test_import_keeps_the_split_of_the_source_files(db, tmp_path):
    for split, ids in (("train", ["a", "b", "c"]), ("test", ["d", "e"])):
        out = io.StringIO()
        call_command(
            "import_posts", str(write_jsonl(tmp_path / f"{split}.jsonl", ids)), "--dataset", "mnre",
            "--split", split, stdout=out, stderr=io.StringIO(),
        )  # fmt: skip
        assert f"in split '{split}'" in out.getvalue()
    dataset = Dataset.objects.get(name="mnre")
    assert split_names(dataset) == {
        "a": "train",
        "b": "train",
        "c": "train",
        "d": "test",
        "e": "test",
    }
    # The same file again adds nothing; a seeded draw splits only posts without a split.
    call_command(
        "import_posts", str(tmp_path / "test.jsonl"), "--dataset", "mnre", "--split", "test",
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    PostFactory(dataset=dataset, external_id="f")
    splits_draw(dataset=dataset, fractions=FRACTIONS, seed=3)
    names = split_names(dataset)
    assert names["d"] == "test" and names["a"] == "train" and "f" in names
    origins = {a["origin"] for a in dataset_splits(dataset=dataset)["assignments"]}
    assert str(tmp_path / "train.jsonl") in origins


def test_an_import_that_would_move_a_post_to_another_split_changes_nothing(db, tmp_path):
    call_command(
        "import_posts", str(write_jsonl(tmp_path / "train.jsonl", ["a", "b"])), "--dataset", "m",
        "--split", "train", stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    with pytest.raises(CommandError, match="already in another split than 'test': b"):
        call_command(
            "import_posts", str(write_jsonl(tmp_path / "test.jsonl", ["b", "c"])),
            "--dataset", "m", "--split", "test", stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    assert not Post.objects.filter(external_id="c").exists()
    assert split_names(Dataset.objects.get(name="m")) == {"a": "train", "b": "train"}


def test_import_refuses_a_bad_split_name_before_reading(db, tmp_path):
    with pytest.raises(CommandError, match="--split: a split name is"):
        call_command(
            "import_posts", str(write_jsonl(tmp_path / "x.jsonl", ["a"])), "--dataset", "m",
            "--split", "no good", stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    assert not Post.objects.exists()


def test_api_reads_and_draws_splits(admin_api, db):
    dataset = DatasetFactory(name="d")
    PostFactory.create_batch(10, dataset=dataset)
    url = f"/api/datasets/{dataset.pk}/splits/"
    assert admin_api.get(url).json() == {
        "dataset": dataset.pk, "splits": {}, "unsplit": 10, "assignments": []
    }  # fmt: skip
    answer = admin_api.post(
        url, {"fractions": {"train": 0.5, "test": 0.5}, "seed": 5}, format="json"
    )
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert sum(body["splits"].values()) == 10 and body["unsplit"] == 0
    assert body["assignments"][0]["seed"] == 5
    assert admin_api.get(url).json()["splits"] == body["splits"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"fractions": {"train": 0.5, "test": 0.4}}, "fractions", "must sum to 1"),
        ({"fractions": {"train": "x"}}, "fractions", "valid number"),
        ({"fractions": {}}, "fractions", "at least one split"),
        ({"seed": -3}, "seed", "greater than or equal to 0"),
        ({"seed": 2**64}, "seed", "less than or equal to"),
    ],
)
def test_api_refuses_bad_splits(admin_api, db, body, field, message):
    dataset = DatasetFactory(name="d")
    PostFactory.create_batch(3, dataset=dataset)
    answer = admin_api.post(f"/api/datasets/{dataset.pk}/splits/", body, format="json")
    assert answer.status_code == 400
    assert message in json.dumps(answer.json()[field])
    assert not PostSplit.objects.exists()


def test_api_conflict_unknown_dataset_and_annotators(admin_api, annotator_api, db):
    dataset = DatasetFactory(name="d")
    PostFactory.create_batch(3, dataset=dataset)
    url = f"/api/datasets/{dataset.pk}/splits/"
    assert admin_api.post(url, {"seed": 1}, format="json").status_code == 201
    again = admin_api.post(url, {"seed": 2}, format="json")
    assert again.status_code == 409 and "already split with seed 1" in again.json()["seed"][0]
    assert admin_api.get(f"/api/datasets/{dataset.pk + 100}/splits/").status_code == 404
    assert annotator_api.get(url).status_code == 403
    assert annotator_api.post(url, {"seed": 9}, format="json").status_code == 403


def test_dataset_page_shows_its_splits(admin_client, db):
    dataset = DatasetFactory(name="d")
    PostFactory.create_batch(10, dataset=dataset)
    page = admin_client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert "No splits yet" in page and "--dataset d" in page
    splits_draw(dataset=dataset, fractions={"train": 0.5, "test": 0.5}, seed=4)
    page = admin_client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert "Drawn with seed 4 (train=0.5,test=0.5)" in page
    counts = dataset_splits(dataset=dataset)["splits"]
    assert f"<td>train</td><td>{counts['train']}</td>" in page


def test_the_order_of_the_fractions_is_part_of_the_draw(db):
    dataset = DatasetFactory(name="d")
    PostFactory.create_batch(5, dataset=dataset)
    splits_draw(dataset=dataset, fractions=FRACTIONS, seed=1)
    with pytest.raises(Conflict, match=r"seed 1 \(train=0.8,dev=0.1,test=0.1\)"):
        splits_draw(dataset=dataset, fractions={"dev": 0.1, "train": 0.8, "test": 0.1}, seed=1)
