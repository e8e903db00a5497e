"""import_ratings on the MIKO expert annotation as published: one Label Studio export per
annotator, each from its own installation (`completed_by: 1`, other task ids for one post)."""

import copy
import json
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.permissions import ANNOTATORS_GROUP
from annotation.models import Assignment, Campaign, Rating, Task
from generation.models import KnowledgeItem

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "miko"
EXPERT = FIXTURES / "label_studio_expert_sample.json"
BENCHMARK = FIXTURES / "release_benchmark_sample.json"


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def import_posts(path: Path = EXPERT, dataset: str = "expert", *args) -> None:
    run("import_posts", str(path), "--dataset", dataset, *args)


def import_ratings(path: Path, *args, campaign: str = "expert") -> tuple[str, str]:
    return run(
        "import_ratings", str(path), "--dataset", "expert", "--campaign", campaign,
        "--format", "label-studio", *args,
    )  # fmt: skip


def second_annotator_file(tmp_path: Path) -> Path:
    """The expert file as another annotator's Label Studio exports it: other task ids, the text
    spaced differently, `completed_by: 1`, and the choices of slot 1 turned down a level."""
    tasks = copy.deepcopy(json.loads(EXPERT.read_text(encoding="utf-8")))
    for offset, task in enumerate(tasks):
        task["id"] = 9001 + offset
        task["data"]["text"] = task["data"]["text"].replace(" ", "  ", 2) + "\n"
        for annotation in task["annotations"]:
            annotation["completed_by"] = 1
            for result in annotation["result"]:
                if result["from_name"] == "reasonableness1":
                    result["value"]["choices"] = ["一般相关"]
    path = tmp_path / "annotator2.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    return path


def test_a_rated_slot_without_an_item_is_reported_and_skipped():
    import_posts()
    out, err = import_ratings(EXPERT)
    # 3 tasks x 10 choices, less slot 10 of task 1502, whose text holds nine intentions.
    assert "campaign expert created: 29 ratings of 3 posts by 1 annotator(s)" in out
    assert (
        f"{EXPERT}: task 1502 (element 2, line 170): post '1502' has no item 10 (open) in the "
        "dataset; label-studio-1's reasonableness rating skipped"
    ) in err
    assert not Rating.objects.filter(item__post__external_id="1502", item__position=10).exists()


def test_annotator_names_the_annotator_of_the_whole_file():
    import_posts()
    out, _ = import_ratings(EXPERT, "--annotator", "a1")
    assert "29 ratings of 3 posts by 1 annotator(s)" in out
    a1 = get_user_model().objects.get(username="a1")
    assert a1.groups.filter(name=ANNOTATORS_GROUP).exists()
    assert not a1.is_active and not a1.has_usable_password()
    assert set(Rating.objects.values_list("annotator__username", flat=True)) == {"a1"}
    assert not get_user_model().objects.filter(username="label-studio-1").exists()


def test_two_annotators_files_matched_by_text_rate_the_same_items(tmp_path):
    import_posts()
    import_ratings(EXPERT, "--annotator", "a1")
    second = second_annotator_file(tmp_path)
    out, err = import_ratings(second, "--annotator", "a2", "--match-by", "text")
    assert "campaign expert updated: 29 ratings of 3 posts by 1 annotator(s)" in out
    assert "task 9002 (element 2, line 1): post '1502' has no item 10 (open)" in err

    campaign = Campaign.objects.get(name="expert")
    by_item: dict[int, set[str]] = {}
    for item_id, name in Rating.objects.filter(campaign=campaign).values_list(
        "item_id", "annotator__username"
    ):
        by_item.setdefault(item_id, set()).add(name)
    assert len(by_item) == KnowledgeItem.objects.count() == 29
    assert all(names == {"a1", "a2"} for names in by_item.values())
    assert {t.taken for t in Task.objects.filter(campaign=campaign)} == {2}
    assert Assignment.objects.filter(campaign=campaign).count() == 6
    # The two differ where the second file says so: slot 1, a level lower.
    first_slot = Rating.objects.filter(item__position=1, item__post__external_id="1501")
    values = dict(first_slot.values_list("annotator__username", "value"))
    assert values["a1"] > values["a2"]

    # Matched by id (the default) the second file's tasks are posts the dataset does not have.
    with pytest.raises(CommandError, match=r"task 9001 \(element 1, line 1\): post '9001' is not"):
        import_ratings(second, "--annotator", "a3", campaign="other")


def test_match_by_text_refuses_a_post_the_dataset_lacks_and_stores_nothing(tmp_path):
    import_posts()
    tasks = json.loads(second_annotator_file(tmp_path).read_text(encoding="utf-8"))
    tasks[2]["data"]["text"] = "A post nobody imported\nIntention1: to see"
    path = tmp_path / "unknown.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    with pytest.raises(CommandError) as error:
        import_ratings(path, "--annotator", "a2", "--match-by", "text")
    assert str(error.value).startswith(f"{path}: task 9003 (element 3, line ")
    assert "no post of dataset 'expert' has the text of post '9003'" in str(error.value)
    assert not Rating.objects.exists() and not Campaign.objects.exists()
    assert not get_user_model().objects.filter(username="a2").exists()


def test_annotator_and_match_by_text_need_a_format_that_carries_them(tmp_path):
    import_posts()
    path = tmp_path / "r.csv"
    path.write_text("post_id,kind,annotator,question,value\n1501,xWant,x,plausibility,5\n")
    with pytest.raises(CommandError, match="the csv format names the annotator on every row"):
        run("import_ratings", str(path), "--dataset", "expert", "--campaign", "c",
            "--annotator", "a1")  # fmt: skip
    with pytest.raises(CommandError, match=r"r\.csv:2: --match-by text needs the post's text"):
        run("import_ratings", str(path), "--dataset", "expert", "--campaign", "c",
            "--match-by", "text")  # fmt: skip
    with pytest.raises(CommandError, match="not a valid user name"):
        import_ratings(EXPERT, "--annotator", "two words")
    assert not Campaign.objects.exists()


def test_broken_task_names_its_element(tmp_path):
    import_posts()
    tasks = json.loads(EXPERT.read_text(encoding="utf-8"))
    tasks[2]["annotations"][0]["result"][3]["value"]["choices"] = ["很相关"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(CommandError) as error:
        import_ratings(path)
    assert str(error.value).startswith(
        f"{path}: task 340 (element 3, line 1): reasonableness4 has ['很相关']"
    )
    path.write_text(json.dumps(tasks, ensure_ascii=False)[:-40], encoding="utf-8")
    with pytest.raises(CommandError, match=r"element 3 \(line 1\): invalid JSON: .*\(column \d+\)"):
        import_ratings(path)
    assert not Rating.objects.exists() and not Campaign.objects.exists()


def test_release_benchmark_labels_with_image_name(tmp_path):
    import_posts(BENCHMARK, "expert", "--format", "miko-release")
    out, _ = run(
        "import_ratings", str(BENCHMARK), "--dataset", "expert", "--campaign", "bench",
        "--format", "miko-release", "--annotator", "miko-experts",
    )  # fmt: skip
    assert "30 ratings of 3 posts by 1 annotator(s)" in out
    record = json.loads(BENCHMARK.read_text(encoding="utf-8"))[0]
    values = list(
        Rating.objects.filter(item__post__external_id=Path(record["image_name"]).stem)
        .order_by("item__position")
        .values_list("value", flat=True)
    )
    assert values == record["intention_labels"]
    assert set(Rating.objects.values_list("annotator__username", flat=True)) == {"miko-experts"}
