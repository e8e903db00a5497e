"""The comparisons API and pages (admins only), refusals with nothing stored, and blindness: what an
annotator sees never names the run, its endpoint or its model."""

import json

import pytest

from comparisons.models import Comparison
from generation.models import Batch
from tests.comparisons.runs import answer, make_run

# Distinctive names and ids: they must appear nowhere an annotator looks.
TEACHER, STUDENT = "zebra-teacher-endpoint", "quokka-student-endpoint"
TEACHER_ID, STUDENT_ID = 987654, 876543


@pytest.fixture
def runs(reference):
    dataset = reference.dataset
    posts = ["p0", "p1", "p2"]
    teacher = make_run(
        dataset, TEACHER, [answer(p, k, f"the user wants tea ({p} {k})") for p in posts
                           for k in ("xWant", "open")], pk=TEACHER_ID,
        manifest={"references": {"campaign": "references"}, "endpoint": {"model": "gpt-zebra"}},
    )  # fmt: skip
    student = make_run(
        dataset, STUDENT, [answer(p, k, f"the user wants coffee ({p} {k})") for p in posts
                           for k in ("xWant", "open")], pk=STUDENT_ID,
    )  # fmt: skip
    return teacher, student


def _nothing_stored() -> None:
    assert not Comparison.objects.exists()
    assert not Batch.objects.filter(pipeline="comparison").exists()


def test_the_api_creates_lists_and_reports(admin_api, runs, annotator):
    teacher, student = runs
    answer_ = admin_api.post(
        "/api/comparisons/",
        {"runs": [teacher.pk, student.pk], "name": "blind", "members": ["anna"], "overlap": 1,
         "questions": [{"name": "plausibility"}]},
        format="json",
    )  # fmt: skip
    assert answer_.status_code == 201, answer_.json()
    report = answer_.json()
    comparison = Comparison.objects.get()
    assert report["id"] == comparison.pk and report["url"] == f"/comparisons/{comparison.pk}/"
    assert report["posts"] == {"compared": 3, "left_out": 0} and report["items"] == 12
    assert [r["name"] for r in report["runs"]] == [
        f"{TEACHER} (run {TEACHER_ID})",
        f"{STUDENT} (run {STUDENT_ID})",
    ]
    (question,) = report["questions"]
    assert question["name"] == "plausibility"
    assert [r["mean"] for r in question["runs"]] == [None, None]  # nothing rated yet
    assert question["pairs"][0]["posts"] == 0 and question["pairs"][0]["p_value"] is None
    assert comparison.campaign.questions.get().prompt.startswith("Could this be why")
    assert admin_api.get(f"/api/comparisons/{comparison.pk}/").json() == report
    listed = admin_api.get(f"/api/comparisons/?dataset={teacher.dataset_id}&split=test").json()
    assert [c["id"] for c in listed["results"]] == [comparison.pk]
    assert listed["results"][0]["runs"] == [r["name"] for r in report["runs"]]
    assert admin_api.get("/api/comparisons/?split=dev").json()["count"] == 0
    assert admin_api.get("/api/comparisons/?dataset=x").status_code == 400
    assert admin_api.get(f"/api/comparisons/{comparison.pk + 1}/").status_code == 404


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({"runs": ["{t}"]}, "runs", "a comparison needs at least two runs"),
        ({"runs": ["{t}", 999999]}, "runs", "no evaluation run 999999"),
        ({"runs": ["{t}", "{t}"]}, "runs", "run {t} is named twice"),
        ({"runs": ["{t}", "{s}"], "name": f"{STUDENT} wins"}, "name", "names endpoint"),
        ({"runs": ["{t}", "{s}"], "seed": -1}, "seed", "greater than or equal to 0"),
        ({"runs": ["{t}", "{s}"], "overlap": 0}, "overlap", "overlap must be between"),
        ({"runs": ["{t}", "{s}"], "members": ["nobody"]}, "members", "does not exist"),
        ({"runs": "3,4"}, "runs", "Expected a list"),
        ({"runs": ["{t}", "{s}"], "questions": [{"name": "-x"}]}, "questions", "question name"),
    ],
)
def test_the_api_refuses_broken_input(admin_api, runs, body, field, message):
    ids = {"t": runs[0].pk, "s": runs[1].pk}
    body = {"name": "blind", **body}
    if isinstance(body["runs"], list):
        body["runs"] = [int(str(r).format(**ids)) for r in body["runs"]]
    answer_ = admin_api.post("/api/comparisons/", body, format="json")
    assert answer_.status_code == 400
    assert message.format(**ids) in json.dumps(answer_.json()[field])
    _nothing_stored()


def test_the_api_refuses_a_run_not_done(admin_api, runs):
    runs[1].status = "running"
    runs[1].save()
    answer_ = admin_api.post(
        "/api/comparisons/", {"runs": [r.pk for r in runs], "name": "b"}, format="json"
    )
    assert answer_.status_code == 400
    assert answer_.json() == {
        "runs": [f"run {STUDENT_ID} ({STUDENT}) is running: only done runs are compared"]
    }
    _nothing_stored()


def test_annotators_reach_neither_the_api_nor_the_pages(annotator_api, annotator_client, runs):
    body = {"runs": [r.pk for r in runs], "name": "blind"}
    assert annotator_api.post("/api/comparisons/", body, format="json").status_code == 403
    assert annotator_api.get("/api/comparisons/").status_code == 403
    _nothing_stored()
    dataset = runs[0].dataset_id
    assert annotator_client.get(f"/datasets/{dataset}/comparisons/new/").status_code == 403
    assert annotator_client.post(f"/datasets/{dataset}/comparisons/new/", body).status_code == 403
    _nothing_stored()


def test_the_form_from_the_leaderboard_creates_and_reports(admin_client, runs, annotator):
    teacher, student = runs
    dataset = teacher.dataset
    board = admin_client.get(f"/datasets/{dataset.pk}/leaderboard/?split=test").content.decode()
    url = f"/datasets/{dataset.pk}/comparisons/new/?split=test"
    assert f'href="{url}"' in board
    form = admin_client.get(url).content.decode()
    assert f'value="{TEACHER_ID}"' in form and f'value="{STUDENT_ID}"' in form
    assert "Compare runs with people" in form
    fields = {"split": "test", "name": "blind", "questions": ["plausibility", "typicality"],
              "scale": "1-5", "overlap": "2", "lease_minutes": "15", "seed": "13",
              "members": [str(annotator.pk)]}  # fmt: skip
    one = admin_client.post(url, {**fields, "runs": [str(TEACHER_ID)]})
    assert one.status_code == 400 and "a comparison needs at least two runs" in one.content.decode()
    named = admin_client.post(url, {**fields, "runs": [str(TEACHER_ID), str(STUDENT_ID)],
                                    "name": f"{TEACHER} vs the rest"})  # fmt: skip
    assert named.status_code == 400 and "names endpoint" in named.content.decode()
    _nothing_stored()
    made = admin_client.post(url, {**fields, "runs": [str(TEACHER_ID), str(STUDENT_ID)]})
    comparison = Comparison.objects.get()
    assert made.status_code == 302 and made["Location"] == f"/comparisons/{comparison.pk}/"
    assert comparison.campaign.overlap == 2 and list(comparison.campaign.members.all()) == [
        annotator
    ]
    page = admin_client.get(made["Location"]).content.decode()
    assert "3 posts compared" in page and f"{TEACHER} (run {TEACHER_ID})" in page
    assert "<svg" in page and "Plausibility per run" in page and "not rated yet" in page
    campaign_page = admin_client.get(f"/campaigns/{comparison.campaign.pk}/").content.decode()
    assert f'href="/comparisons/{comparison.pk}/"' in campaign_page
    listed = admin_client.get(url).content.decode()
    assert f'href="/comparisons/{comparison.pk}/"' in listed
    assert admin_client.get(f"/comparisons/{comparison.pk + 1}/").status_code == 404
    assert admin_client.get(f"/datasets/{dataset.pk + 99}/comparisons/new/").status_code == 404


def test_nothing_an_annotator_sees_names_the_run(admin_api, annotator_api, annotator_client, runs):
    teacher, student = runs
    made = admin_api.post(
        "/api/comparisons/",
        {"runs": [STUDENT_ID, TEACHER_ID], "name": "Which reads better?", "members": ["anna"]},
        format="json",
    ).json()
    campaign = made["campaign"]["id"]
    secrets = [TEACHER, STUDENT, str(TEACHER_ID), str(STUDENT_ID), "gpt-zebra", "comparison"]
    seen = []
    for _ in range(3):
        task = annotator_api.post(f"/api/campaigns/{campaign}/next/")
        assert task.status_code == 200
        seen.append(task.content.decode())
        page = annotator_client.get(f"/annotate/{campaign}/")
        seen.append(page.content.decode())
        items = task.json()["items"]
        assert len(items) == 4  # two runs × two kinds
        annotator_api.post(
            f"/api/assignments/{task.json()['assignment']}/submit/",
            {"ratings": [{"item": i["id"], "question": q["id"], "value": 3} for i in items
                         for q in task.json()["questions"]]},
            format="json",
        )  # fmt: skip
    seen.append(annotator_api.get("/api/campaigns/").content.decode())
    seen.append(annotator_client.get("/annotate/").content.decode())
    for text in seen:
        for secret in secrets:
            assert secret.lower() not in text.lower(), secret
