"""import_posts on every format's sample file: what lands in the database."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from generation.models import Batch, Dataset, KnowledgeItem, Post, StageResult
from generation.pipelines.miko import MIKO_KINDS
from generation.services.imports import posts_import
from tests.factories import make_image

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).resolve().parents[2] / "sample_data"


def run_import(path: Path, dataset: str = "d", **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_posts", str(path), dataset=dataset, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def test_miko_pipeline_imports_posts_stages_and_ten_items(tmp_path):
    images = tmp_path / "images"
    first = json.loads((SAMPLES / "miko/pipeline_outputs_sample.jsonl").open().readline())
    make_image(images / first["image_id"])
    out, err = run_import(
        SAMPLES / "miko/pipeline_outputs_sample.jsonl", format="miko-pipeline", images=images
    )
    assert "40 posts, 400 items, 120 stage results and 1 images" in out
    assert "; 39 images not found" in out  # the summary counts them (issue 14)
    assert "not found; post imported without it" in err
    assert "100%" in err  # the progress bar
    post = Post.objects.get(external_id=str(first["question_id"]))
    assert post.text == first["text"]
    assert post.image.name.startswith(f"posts/{post.dataset_id}/")
    assert Image.open(post.image.path).size == (32, 24)
    batch = Batch.objects.get()
    assert (batch.imported, batch.pipeline, batch.status) == (True, "miko", "done")
    assert batch.posts_done == 40
    items = list(post.items.order_by("position"))
    assert [item.kind for item in items] == MIKO_KINDS
    assert items[0].text.startswith("After posting this Tweet, the user wants to")
    assert items[0].stage_result.stage == "intentions"
    stages = {result.stage: result for result in post.stage_results.all()}
    assert set(stages) == {"describe_image", "key_info", "intentions"}
    assert stages["describe_image"].parsed == {"description": first["image_descrption"]}
    assert stages["key_info"].parsed["concept"]
    assert stages["intentions"].request["prompt"] == first["prompt"]


def test_miko_release_keeps_labels_and_tolerates_nine_intentions(tmp_path):
    make_image(tmp_path / "80.jpg")
    out, err = run_import(SAMPLES / "miko/release_sample.json", images=tmp_path)
    assert "60 posts, 598 items" in out
    assert (
        "release_sample.json: post '3105' (element 21, line 562): intention 10 (open) missing; "
        "imported the other 9"
    ) in err
    post = Post.objects.get(external_id="80")
    assert post.metadata["intention_labels"] == [1, 1, 1, 1, 0, 1, 1, 1, 0, 1]
    assert post.image
    assert [item.kind for item in post.items.all()] == MIKO_KINDS
    assert Batch.objects.get().pipeline == "miko"


def test_label_studio_text_before_intentions_is_the_post(tmp_path):
    make_image(tmp_path / "172.jpg")
    out, _ = run_import(SAMPLES / "miko/label_studio_export_sample.json", images=tmp_path)
    assert "12 posts, 120 items" in out
    post = Post.objects.get(external_id="7172")
    assert post.text == "Cariloha is Hiring"
    assert post.image and post.metadata["image_name"] == "172.jpg"
    assert post.items.get(position=10).kind == "open"


@pytest.mark.parametrize("name", ["twitter2015_sample.txt", "twitter2017_sample.txt"])
def test_twitter_conll_rebuilds_text_and_keeps_tags(tmp_path, name):
    make_image(tmp_path / "1015799.jpg")
    out, _ = run_import(SAMPLES / "cotpd" / name, images=tmp_path)
    assert out.startswith("12 posts, 0 items")
    assert Post.objects.count() == 12
    if name == "twitter2015_sample.txt":
        post = Post.objects.get(external_id="1015799")
        assert post.text.startswith("RT @JayKenMinaj _ : Me outside of where George Zimmerman")
        assert post.metadata["tags"][8:10] == ["B-PER", "I-PER"]
        assert {"type": "PER", "start": 8, "end": 10, "text": "George Zimmerman"} in (
            post.metadata["entities"]
        )
        assert post.image
    assert not KnowledgeItem.objects.exists()


def test_mnre_groups_entity_pairs_of_a_sentence():
    out, _ = run_import(SAMPLES / "cotpd/mnre_sample.txt", format="mnre")
    assert out.startswith("11 posts")
    post = Post.objects.get(external_id="twitter_stream_2018_10_10_7_0_2_193")
    assert post.text.startswith("RT @billboard : BTS kicks off London")
    assert len(post.metadata["relations"]) == 3
    assert post.metadata["relations"][0]["head"] == {"name": "BTS", "pos": [3, 4]}


def test_generic_jsonl_with_items_and_images(tmp_path):
    make_image(tmp_path / "img" / "a.png", fmt="PNG")
    lines = [
        {
            "id": "a",
            "text": "first",
            "image": "a.png",
            "metadata": {"lang": "en"},
            "items": [{"kind": "xWant", "text": "to rest"}, {"kind": "open", "text": "why"}],
        },
        {"id": 2, "text": "second", "image": None},
    ]
    path = tmp_path / "posts.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out, _ = run_import(path, images=tmp_path / "img")
    assert "2 posts, 2 items, 0 stage results and 1 images" in out
    assert list(Post.objects.values_list("external_id", flat=True)) == ["a", "2"]
    assert [(i.kind, i.position) for i in KnowledgeItem.objects.all()] == [
        ("xWant", 1),
        ("open", 2),
    ]
    assert KnowledgeItem.objects.first().provenance == {"line": 1}
    batch = Batch.objects.get()
    assert (batch.source, batch.parameters, batch.pipeline) == (
        str(path),
        {"format": "jsonl"},
        "import",
    )


def test_generic_csv_keeps_other_columns_as_metadata(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text('id,text,image,lang,metadata\n1,"hello, world",,en,"{""k"": 1}"\n2,bye,,fr,\n')
    out, _ = run_import(path)
    assert out.startswith("2 posts")
    assert Post.objects.get(external_id="1").metadata == {"lang": "en", "k": 1}
    assert Post.objects.get(external_id="1").text == "hello, world"


@pytest.mark.parametrize(
    ("sample", "fmt"),
    [
        ("miko/pipeline_outputs_sample.jsonl", "miko-pipeline"),
        ("miko/release_sample.json", "miko-release"),
        ("miko/label_studio_export_sample.json", "label-studio"),
        ("cotpd/twitter2015_sample.txt", "twitter-conll"),
        ("cotpd/mnre_sample.txt", "mnre"),
    ],
)
def test_auto_recognises_every_format(sample, fmt):
    report = posts_import(path=SAMPLES / sample, dataset_name="auto")
    assert report.format == fmt
    assert report.posts_created == Post.objects.count() > 0


def test_auto_recognises_generic_jsonl_and_csv(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": "1", "text": "x"}\n')
    (tmp_path / "a.csv").write_text("id,text\n1,x\n")
    assert posts_import(path=tmp_path / "a.jsonl", dataset_name="j").format == "jsonl"
    assert posts_import(path=tmp_path / "a.csv", dataset_name="c").format == "csv"


def test_reimporting_the_same_file_adds_nothing():
    path = SAMPLES / "miko/pipeline_outputs_sample.jsonl"
    run_import(path)
    counts = (Post.objects.count(), KnowledgeItem.objects.count(), StageResult.objects.count())
    out, _ = run_import(path)
    assert out.startswith("0 posts, 0 items, 0 stage results")
    assert "40 posts already there" in out
    assert counts == (
        Post.objects.count(),
        KnowledgeItem.objects.count(),
        StageResult.objects.count(),
    )
    assert Batch.objects.count() == 1


def test_conflicting_reimport_names_the_ids(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n')
    run_import(path)
    path.write_text(
        '{"id": "a", "text": "one"}\n{"id": "b", "text": "TWO"}\n{"id": "c", "text": "3"}\n'
    )
    with pytest.raises(CommandError, match=r"1 posts conflict .* dataset 'd' .*: b$"):
        run_import(path)
    assert sorted(Post.objects.values_list("text", flat=True)) == ["one", "two"]


def test_import_into_another_dataset_keeps_them_apart(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_text('{"id": "a", "text": "one"}\n')
    run_import(path, dataset="first")
    run_import(path, dataset="second")
    assert Dataset.objects.count() == 2
    assert Post.objects.count() == 2


def test_text_with_tabs_newlines_and_backslashes_survives(tmp_path):
    text = 'tab\there\nnew line\r\nback\\slash \\N "quoted" é 🙂'
    path = tmp_path / "posts.jsonl"
    line = {
        "id": "x",
        "text": text,
        "metadata": {"k": text},
        "items": [{"kind": "open", "text": text}],
    }
    path.write_text(json.dumps(line) + "\n")
    run_import(path)
    post = Post.objects.get()
    assert (post.text, post.metadata["k"], post.items.get().text) == (text, text, text)


@pytest.mark.postgres
def test_foreign_key_checks_run_unless_an_operator_opts_out(tmp_path, settings):
    from django.db import connection

    from generation.copying import foreign_key_checks_skipped

    def role_inside() -> str:
        with foreign_key_checks_skipped(), connection.cursor() as cursor:
            cursor.execute("SHOW session_replication_role")
            return cursor.fetchone()[0]

    assert role_inside() == "origin"
    settings.DISTILLERY_IMPORT_SKIP_FK_CHECKS = True
    assert role_inside() == "replica"  # the test database's user may: it is a superuser


@pytest.mark.postgres
def test_foreign_key_checks_are_back_after_the_import(tmp_path, settings):
    from django.db import connection

    settings.DISTILLERY_IMPORT_SKIP_FK_CHECKS = True
    path = tmp_path / "posts.jsonl"
    path.write_text('{"id": "a", "text": "one", "items": [{"kind": "open", "text": "x"}]}\n')
    posts_import(path=path, dataset_name="d")  # inside the test's transaction
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone()[0] == "origin"


def test_mnre_gathers_a_sentence_from_anywhere_and_numbers_second_sentences(tmp_path):
    def line(tokens, image, relation):
        pair = {"name": tokens[0], "pos": [0, 1]}
        return repr({"token": tokens, "h": pair, "t": pair, "img_id": image, "relation": relation})

    path = tmp_path / "mnre.txt"
    path.write_text(
        "\n".join(
            [
                line(["a", "b"], "1.jpg", "r1"),
                line(["c", "d"], "2.jpg", "r2"),
                line(["a", "b"], "1.jpg", "r3"),
                line(["e"], "1.jpg", "r4"),
            ]
        )
        + "\n"
    )
    out, _ = run_import(path)
    assert out.startswith("3 posts")
    first = Post.objects.get(external_id="1")
    assert [r["relation"] for r in first.metadata["relations"]] == ["r1", "r3"]
    assert Post.objects.get(external_id="1#2").text == "e"


def test_unreadable_answers_are_kept_as_failed_stage_results(tmp_path):
    path = tmp_path / "outputs.jsonl"
    record = {
        "question_id": 7,
        "image_id": "7.jpg",
        "text": "hi",
        "image_descrption": "a cat",
        "keyinfo": "Concept: Cats.\nKeywords: cat",
        "intention": "no idea, sorry",
    }
    path.write_text(json.dumps(record) + "\n")
    _, err = run_import(path, format="miko-pipeline")
    assert "outputs.jsonl:1: intentions not readable" in err
    failed = StageResult.objects.get(stage="intentions")
    assert (failed.status, failed.raw_answer, failed.parsed) == ("failed", "no idea, sorry", None)
    assert failed.error
    assert not KnowledgeItem.objects.exists()
    assert StageResult.objects.get(stage="describe_image").parsed == {"description": "a cat"}
    batch = Batch.objects.get()
    assert (batch.posts_total, batch.posts_done, batch.posts_failed) == (1, 0, 1)
