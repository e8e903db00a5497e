"""import_posts on the files MIKO's authors published, with the variants those files really hold."""

import copy
import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from generation.models import Batch, Dataset, KnowledgeItem, Post, StageResult
from generation.pipelines.miko import MIKO_KINDS
from tests.factories import make_image

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "miko"
EXPERT = FIXTURES / "label_studio_expert_sample.json"
EXPORT = FIXTURES / "label_studio_export_sample.json"
BENCHMARK = FIXTURES / "release_benchmark_sample.json"


def run_import(path: Path, dataset: str = "d", **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_posts", str(path), dataset=dataset, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def snapshot() -> tuple:
    return tuple(
        model.objects.count() for model in (Dataset, Post, KnowledgeItem, Batch, StageResult)
    )


def refused(path: Path, message: str, **options) -> str:
    before = snapshot()
    with pytest.raises(CommandError) as caught:
        run_import(path, **options)
    assert message in str(caught.value)
    assert snapshot() == before
    return str(caught.value)


def write_json(path: Path, value, **dump) -> Path:
    path.write_text(json.dumps(value, ensure_ascii=False, **dump), encoding="utf-8")
    return path


def expert_tasks() -> list[dict]:
    return json.loads(EXPERT.read_text(encoding="utf-8"))


# --- Label Studio: the expert annotation files ----------------------------------------------------


def test_expert_file_imports_nine_intentions_at_their_slots_with_a_warning(tmp_path):
    out, err = run_import(EXPERT)
    assert "3 posts, 29 items" in out
    assert (
        f"{EXPERT}: task 1502 (element 2, line 170): intention 10 (open) missing; "
        "imported the other 9"
    ) in err
    nine = Post.objects.get(external_id="1502")
    # `Intention1:` without a space: the post is the text before it.
    assert nine.text.startswith("A new week is like a curve.")
    assert "Intention" not in nine.text
    assert list(nine.items.order_by("position").values_list("position", "kind")) == [
        (n, kind) for n, kind in enumerate(MIKO_KINDS[:9], start=1)
    ]
    assert nine.items.get(position=9).text.startswith("Before posting this Tweet, the user needs")
    spaced = Post.objects.get(external_id="1501")  # `Intention 1:` with a space
    assert spaced.items.count() == 10
    assert Post.objects.get(external_id="340").metadata["image_name"] == "3131.jpg"


def test_expert_file_on_one_line_longer_than_the_line_cap(tmp_path, settings):
    # Label Studio can write an export as one line: the cap is on each task, not on the line.
    settings.DISTILLERY_MAX_LINE_BYTES = 8_000
    path = write_json(tmp_path / "minified.json", expert_tasks())
    assert path.stat().st_size > 8_000 and path.read_text().count("\n") == 0
    out, err = run_import(path, format="label-studio")
    assert "3 posts, 29 items" in out
    assert "task 1502 (element 2, line 1): intention 10 (open) missing" in err


def test_twelve_task_export_on_one_line(tmp_path, settings):
    settings.DISTILLERY_MAX_LINE_BYTES = 10_000
    path = write_json(tmp_path / "export.json", json.loads(EXPORT.read_text(encoding="utf-8")))
    out, _ = run_import(path)
    assert "12 posts, 120 items" in out


def test_images_of_label_studio_local_files_paths(tmp_path):
    make_image(tmp_path / "images" / "3131.jpg")
    out, _ = run_import(EXPERT, images=tmp_path / "images")
    assert "and 1 images" in out
    assert Post.objects.get(external_id="340").image


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda t: t[1]["data"].pop("text"), "task 1502 (element 2, line 1): missing field 'text'"),
        (lambda t: t[2].pop("id"), "element 3 (line 1): missing field 'id'"),
        (
            lambda t: t[1]["data"].update(text="A post\nIntention1:\nIntention2:"),
            "task 1502 (element 2, line 1): intentions:",
        ),
        (
            lambda t: t[0]["data"].update(image=7),
            "task 1501 (element 1, line 1): field 'image' must be str",
        ),
    ],
)
def test_a_broken_task_names_the_task_and_its_element(tmp_path, break_it, message):
    run_import(EXPORT, dataset="d")  # something a failed import must leave as it was
    tasks = expert_tasks()
    break_it(tasks)
    path = write_json(tmp_path / "broken.json", tasks)
    assert refused(path, message, format="label-studio").startswith(f"{path}: ")


def test_bad_json_on_one_line_names_the_element_and_column(tmp_path):
    text = json.dumps(expert_tasks(), ensure_ascii=False)
    cut = text.index('"id": 1502')
    path = tmp_path / "bad.json"
    path.write_text(text[:cut] + '"id" 1502' + text[cut + len('"id": 1502') :], encoding="utf-8")
    message = refused(path, "element 2 (line 1): bad JSON: Expecting ':' delimiter (column")
    column = int(message.rsplit("column ", 1)[1].rstrip(")"))
    assert path.read_text(encoding="utf-8")[column - 1 : column + 3] == "1502"


# --- The other public release of the benchmark ---------------------------------------------------


def test_release_benchmark_with_image_name_and_prompt(tmp_path):
    records = json.loads(BENCHMARK.read_text(encoding="utf-8"))
    make_image(tmp_path / records[0]["image_name"])
    out, err = run_import(BENCHMARK, format="miko-release", images=tmp_path)
    assert "3 posts, 30 items" in out and "and 1 images" in out
    post = Post.objects.get(external_id="822227376801280004")
    assert post.image
    assert post.metadata == {
        "image_name": records[0]["image_name"],
        "intention_labels": records[0]["intention_labels"],
        "prompt": records[0]["prompt"],
    }
    assert [item.kind for item in post.items.order_by("position")] == MIKO_KINDS
    # Told apart from the other formats by its content.
    out, _ = run_import(BENCHMARK, dataset="auto")
    assert "(miko-release)" in out


def test_release_benchmark_without_labels_imports_posts_and_items(tmp_path):
    records = json.loads(BENCHMARK.read_text(encoding="utf-8"))
    for record in records:
        del record["intention_labels"]
    path = write_json(tmp_path / "unlabelled.json", records, indent=1)
    out, _ = run_import(path)  # detected without the labels too
    assert "3 posts, 30 items" in out and "(miko-release)" in out
    assert all("intention_labels" not in p.metadata for p in Post.objects.all())


def test_release_benchmark_broken_record_names_the_post(tmp_path):
    records = json.loads(BENCHMARK.read_text(encoding="utf-8"))
    records[1]["intention_labels"] = [1, 0]
    path = write_json(tmp_path / "b.json", records, indent=1)
    refused(
        path,
        f"{path}: post '818243071133388801' (element 2, line 31): 'intention_labels' must be ten",
        format="miko-release",
    )
    del records[1]["image_name"]
    path = write_json(tmp_path / "b.json", records, indent=1)
    refused(path, f"{path}: element 2 (line 31): missing field 'image'", format="miko-release")


# --- --match-by text ------------------------------------------------------------------------------


def second_annotator_file(tmp_path: Path, first_id: int = 9001) -> Path:
    """The expert tasks as another annotator's installation exports them: other task ids, the
    text spaced differently, another image path, `completed_by: 1`."""
    tasks = copy.deepcopy(expert_tasks())
    for offset, task in enumerate(tasks):
        task["id"] = first_id + offset
        task["data"]["text"] = "  " + task["data"]["text"].replace(" ", "  ", 3)
        task["data"]["image"] = task["data"]["image"].replace("?d=", "?d=other%5C")
        for annotation in task["annotations"]:
            annotation["completed_by"] = 1
            annotation["task"] = task["id"]
    return write_json(tmp_path / "annotator2.json", tasks, indent=1)


def test_match_by_text_recognises_the_posts_of_another_annotators_file(tmp_path):
    run_import(EXPERT)
    second = second_annotator_file(tmp_path)
    out, err = run_import(second, format="label-studio", match_by="text")
    assert "0 posts, 0 items" in out and "3 posts already there" in out
    assert Post.objects.count() == 3 and KnowledgeItem.objects.count() == 29
    assert not err.count("warning: ") - err.count("intention 10 (open) missing")
    # By id (the default) they are other posts.
    out, _ = run_import(second, format="label-studio")
    assert "3 posts, 29 items" in out and Post.objects.count() == 6


def test_match_by_text_renames_a_new_post_whose_id_another_post_holds(tmp_path):
    run_import(EXPERT)
    tasks = json.loads(second_annotator_file(tmp_path).read_text(encoding="utf-8"))
    tasks[0]["data"]["text"] = "A post nobody imported yet\nIntention1: to share it"
    tasks[0]["id"] = 1502  # the id of another post in the dataset
    path = write_json(tmp_path / "annotator2.json", tasks)
    out, err = run_import(path, format="label-studio", match_by="text")
    assert "1 posts, 1 items" in out and "2 posts already there" in out
    assert (
        "annotator2.json: task 1502 (element 1, line 1): id '1502' is another post's in this "
        "dataset; imported as 'annotator2:1502'"
    ) in err
    assert Post.objects.get(external_id="annotator2:1502").text == "A post nobody imported yet"
    assert Post.objects.get(external_id="1502").text.startswith("A new week")


def test_match_by_text_refuses_a_text_several_posts_share(tmp_path):
    lines = [
        {"id": "a", "text": "Same text", "metadata": {"image_name": "1.jpg"}},
        {"id": "b", "text": "Same  text", "metadata": {"image_name": "2.jpg"}},
    ]
    first = tmp_path / "p.jsonl"
    first.write_text("".join(json.dumps(line) + "\n" for line in lines))
    run_import(first)
    # The image tells them apart ...
    told = tmp_path / "q.jsonl"
    told.write_text(
        json.dumps({"id": "x", "text": "Same text", "metadata": {"image_name": "2.jpg"}})
    )
    out, _ = run_import(told, match_by="text")
    assert "0 posts" in out and "1 posts already there" in out
    # ... and where it cannot, the import stops.
    vague = tmp_path / "r.jsonl"
    vague.write_text(json.dumps({"id": "y", "text": "Same text"}) + "\n")
    refused(vague, f"{vague}:1: its text is the text of several posts (a, b)", match_by="text")
