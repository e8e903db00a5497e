import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from annotation.models import Assignment, Campaign, Rating, Task
from annotation.selectors import tasks_with_done
from tests.factories import miko_batch

SAMPLES = Path(__file__).resolve().parents[2] / "sample_data" / "miko"


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_create_campaign(dataset, annotator, other_annotator):
    batch = miko_batch(dataset=dataset, posts=3)
    out = run(
        "create_campaign", "cmd", "--dataset", "miko", "--batch", str(batch.pk),
        "--kinds", "xWant,open", "--questions", "plausibility", "--scale", "1-7",
        "--overlap", "2", "--annotators", "anna,otto",
    )  # fmt: skip
    assert "3 posts" in out
    campaign = Campaign.objects.get(name="cmd")
    assert campaign.kinds == ["xWant", "open"] and campaign.overlap == 2
    assert campaign.questions.get().scale == "1-7"
    assert set(campaign.members.values_list("username", flat=True)) == {"anna", "otto"}
    with pytest.raises(CommandError, match="unknown annotator"):
        run("create_campaign", "x", "--dataset", "miko", "--annotators", "nobody")
    with pytest.raises(CommandError, match="no dataset"):
        run("create_campaign", "x", "--dataset", "nope")
    with pytest.raises(CommandError, match="already exists"):
        run("create_campaign", "cmd", "--dataset", "miko")


def write(tmp_path, name, text) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_import_generic_csv(tmp_path, dataset):
    miko_batch(dataset=dataset, posts=2)
    posts = list(dataset.posts.order_by("id").values_list("external_id", flat=True))
    path = write(
        tmp_path,
        "ratings.csv",
        "post_id,kind,annotator,question,value\n"
        f"{posts[0]},xWant,ext1,plausibility,5\n"
        f"{posts[0]},xWant,ext1,typicality,4\n"
        f"{posts[0]},open,ext2,plausibility,2\n"
        f"{posts[1]},xNeed,ext1,plausibility,1\n",
    )
    out = run("import_ratings", str(path), "--dataset", "miko", "--campaign", "ext")
    assert "4 ratings of 2 posts by 2 annotator(s)" in out
    campaign = Campaign.objects.get(name="ext")
    assert [q.name for q in campaign.questions.all()] == ["plausibility", "typicality"]
    assert Task.objects.filter(campaign=campaign).count() == 2
    assert Rating.objects.count() == 4
    ext1 = get_user_model().objects.get(username="ext1")
    assert not ext1.is_active and not ext1.has_usable_password()
    task = tasks_with_done(Task.objects).get(campaign=campaign, post__external_id=posts[0])
    assert (task.taken, task.done) == (2, 2)
    # Importing the same file again changes nothing.
    run("import_ratings", str(path), "--dataset", "miko", "--campaign", "ext")
    assert Rating.objects.count() == 4 and Assignment.objects.count() == 3


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("post,kind\n", ":1: the header must be post_id,kind,annotator,question,value"),
        ("{h}{p},xWant,a,plausibility,5\n{p},xWant,a,plausibility,9\n", ":3: value 9 is not on"),
        ("{h}{p},xWant,a,plausibility,5\nnope,xWant,a,plausibility,3\n", ":3: post 'nope' is not"),
        ("{h}{p},sarcasm,a,plausibility,5\n", ":2: post '{p}' has no kind 'sarcasm'"),
        ("{h}{p},xWant,a,plausibility,five\n", ":2: value 'five' is not a whole number"),
        ("{h}{p},xWant,a,plausibility,5\n{p},xWant,a,plausibility,4\n", ":3: a second rating"),
        ("{h}{p},xWant,a,plausibility\n", ":2: expected 5 columns, found 4"),
    ],
)
def test_broken_csv_names_the_line_and_stores_nothing(tmp_path, dataset, body, problem):
    miko_batch(dataset=dataset, posts=1)
    post = dataset.posts.get().external_id
    header = "post_id,kind,annotator,question,value\n"
    path = write(tmp_path, "bad.csv", body.format(h=header, p=post))
    with pytest.raises(CommandError) as error:
        run("import_ratings", str(path), "--dataset", "miko", "--campaign", "bad")
    assert str(error.value).startswith(str(path) + ":")
    assert problem.format(p=post) in str(error.value)
    assert not Campaign.objects.filter(name="bad").exists()
    assert not Rating.objects.exists()
    assert not get_user_model().objects.filter(username="a").exists()


def test_import_label_studio_export(tmp_path, db):
    call_command(
        "import_posts", str(SAMPLES / "label_studio_export_sample.json"),
        "--dataset", "ls", "--format", "label-studio", stdout=StringIO(), stderr=StringIO(),
    )  # fmt: skip
    path = SAMPLES / "label_studio_export_sample.json"
    out = run("import_ratings", str(path), "--dataset", "ls", "--campaign", "ls", "--format",
              "label-studio", "--scale", "1-5")  # fmt: skip
    tasks = json.loads(path.read_text(encoding="utf-8"))
    expected = sum(
        len(a["result"]) for t in tasks for a in t["annotations"] if not a.get("was_cancelled")
    )
    assert f"{expected} ratings" in out
    campaign = Campaign.objects.get(name="ls")
    assert campaign.questions.get().name == "reasonableness"
    assert campaign.questions.get().scale == "1-5"
    # 非常相关 → 5, 一般相关 → 3, 不相关 → 1.
    first = tasks[0]["annotations"][0]["result"][0]
    rating = Rating.objects.get(
        item__post__external_id=str(tasks[0]["id"]),
        item__position=int(first["from_name"].removeprefix("reasonableness")),
        annotator__username=f"label-studio-{tasks[0]['annotations'][0]['completed_by']}",
    )
    level = first["value"]["choices"][0]
    assert rating.value == {"非常相关": 5, "一般相关": 3, "不相关": 1}[level]
    assert set(Rating.objects.values_list("value", flat=True)) <= {1, 3, 5}


def test_broken_label_studio_export(tmp_path, db):
    source = SAMPLES / "label_studio_export_sample.json"
    call_command("import_posts", str(source), "--dataset", "ls", "--format", "label-studio",
                 stdout=StringIO(), stderr=StringIO())  # fmt: skip
    text = source.read_text(encoding="utf-8")
    broken = text.replace("一般相关", "有点相关", 1)
    path = write(tmp_path, "ls.json", broken)
    line = broken[: broken.index("有点相关")].count("\n") + 1
    with pytest.raises(CommandError) as error:
        run("import_ratings", str(path), "--dataset", "ls", "--campaign", "ls",
            "--format", "label-studio")  # fmt: skip
    message = str(error.value)
    assert message.startswith(f"{path}: task ") and "expected one of" in message
    # The task is named with its place in the array and the line it starts on, at or before the
    # faulty choice.
    named = re.search(r"task (\d+) \(element (\d+), line (\d+)\)", message)
    tasks = json.loads(text)
    assert tasks[int(named[2]) - 1]["id"] == int(named[1])
    assert int(named[3]) <= line
    assert not Rating.objects.exists() and not Campaign.objects.exists()


def test_import_miko_release_labels(tmp_path, db):
    source = SAMPLES / "release_sample.json"
    call_command("import_posts", str(source), "--dataset", "rel", "--format", "miko-release",
                 stdout=StringIO(), stderr=StringIO())  # fmt: skip
    out = run("import_ratings", str(source), "--dataset", "rel", "--campaign", "rel",
              "--format", "miko-release")  # fmt: skip
    records = json.loads(source.read_text(encoding="utf-8"))
    skipped = sum(10 - len(r["intentions"]) for r in records)  # slots the post lacks
    assert f"{10 * len(records) - skipped} ratings" in out
    question = Campaign.objects.get(name="rel").questions.get()
    assert (question.name, question.scale) == ("relevance", "binary")
    first = records[0]
    values = list(
        Rating.objects.filter(item__post__external_id=Path(first["image"]).stem)
        .order_by("item__position")
        .values_list("value", flat=True)
    )
    assert values == first["intention_labels"]

    broken = json.loads(source.read_text(encoding="utf-8"))[:3]
    broken[2]["intention_labels"][4] = 7
    path = write(tmp_path, "rel.json", json.dumps(broken, indent=1))
    post = Path(broken[2]["image"]).stem
    pattern = rf"rel\.json: post '{post}' \(element 3, line \d+\): intention label 5 is 7"
    with pytest.raises(CommandError, match=pattern):
        run("import_ratings", str(path), "--dataset", "rel", "--campaign", "rel2",
            "--format", "miko-release")  # fmt: skip
    assert not Campaign.objects.filter(name="rel2").exists()


def test_create_campaign_from_call_command_keywords(dataset, annotator, other_annotator):
    batch = miko_batch(dataset=dataset, posts=2)
    run_kw = StringIO()
    call_command(
        "create_campaign", "kw", dataset="miko", batch=[str(batch.pk)], kinds="xWant,open",
        annotators="anna,otto", overlap=2, stdout=run_kw,
    )  # fmt: skip
    campaign = Campaign.objects.get(name="kw")
    assert campaign.kinds == ["xWant", "open"] and campaign.tasks.count() == 2
    assert campaign.members.count() == 2
