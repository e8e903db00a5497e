"""The leaderboard page, a run's manifest, and the evaluation runs API (admins only)."""

import pytest

from students.models import EvaluationRun
from tests.factories import DatasetFactory


def figures(rouge: float) -> dict:
    return {"rouge_l": rouge, "bleu": 10 * rouge, "bertscore": None, "failure_rate": 0.0}


@pytest.fixture
def runs(db):
    dataset = DatasetFactory(name="miko")
    made = []
    for name, rouge in (("teacher", 0.5), ("student <b>", 0.25)):
        made.append(
            EvaluationRun.objects.create(
                dataset=dataset, split="test", endpoint_name=name, pipeline="direct",
                status="done", prompt_tokens=10, completion_tokens=5, cost=0.5,
                scores={
                    "overall": figures(rouge),
                    "kinds": {"open": figures(rouge / 2), "xWant": figures(rouge)},
                },
                manifest={"split": "test"}, answers=[{"post": "p", "kind": "xWant", "text": "t"}],
            )
        )  # fmt: skip
    EvaluationRun.objects.create(
        dataset=dataset, split="test", endpoint_name="broken", pipeline="direct", status="failed"
    )
    EvaluationRun.objects.create(
        dataset=dataset, split="dev", endpoint_name="on dev", pipeline="direct", status="done",
        scores={"overall": figures(0.1), "kinds": {"xWant": figures(0.1)}},
    )  # fmt: skip
    return made


def test_the_leaderboard_compares_endpoints_per_kind(admin_client, runs):
    dataset = runs[0].dataset
    page = admin_client.get(f"/datasets/{dataset.pk}/leaderboard/").content.decode()
    # Kinds in MIKO's order (xWant before open), newest run first, failed runs and other splits out.
    assert page.index(">xWant</th>") < page.index(">open</th>")
    assert page.index("student &lt;b&gt;") < page.index("teacher")
    board, _, unfinished = page.partition("<h2>Not finished</h2>")
    assert "broken" not in board and "on dev" not in page
    assert "broken (direct): failed" in unfinished  # listed apart, linked to its page
    assert "<td>0.500</td>" in page and "<strong>0.500</strong>" in page
    assert f'href="/evaluation-runs/{runs[0].pk}/manifest.json"' in page
    assert f'href="/evaluation-runs/{runs[0].pk}/"' in page
    bleu = admin_client.get(f"/datasets/{dataset.pk}/leaderboard/?metric=bleu").content.decode()
    assert "<strong>5.000</strong>" in bleu
    dev = admin_client.get(f"/datasets/{dataset.pk}/leaderboard/?split=dev").content.decode()
    assert "on dev" in dev and "teacher" not in dev
    odd = admin_client.get(f"/datasets/{dataset.pk}/leaderboard/?metric=nope&split=%00x")
    assert odd.status_code in (200, 400)
    empty = admin_client.get(f"/datasets/{dataset.pk}/leaderboard/?split=valid").content.decode()
    assert "No finished evaluation run on the valid split" in empty
    assert admin_client.get(f"/datasets/{dataset.pk + 99}/leaderboard/").status_code == 404


def test_a_runs_manifest_downloads_as_json(admin_client, runs):
    answer = admin_client.get(f"/evaluation-runs/{runs[0].pk}/manifest.json")
    assert answer["Content-Type"] == "application/json"
    body = answer.json()
    assert body["manifest"] == {"split": "test"} and body["answers"][0]["text"] == "t"
    assert body["tokens"] == {"prompt": 10, "completion": 5}
    assert admin_client.get(f"/evaluation-runs/{runs[-1].pk + 99}/manifest.json").status_code == 404


def test_annotators_reach_neither_page_nor_api(annotator_client, annotator_api, runs):
    assert annotator_client.get(f"/datasets/{runs[0].dataset_id}/leaderboard/").status_code == 403
    assert annotator_client.get(f"/evaluation-runs/{runs[0].pk}/manifest.json").status_code == 403
    assert annotator_api.get("/api/evaluation-runs/").status_code == 403
    assert annotator_api.get(f"/api/evaluation-runs/{runs[0].pk}/").status_code == 403


def test_the_api_lists_and_shows_runs(admin_api, runs):
    listed = admin_api.get(f"/api/evaluation-runs/?dataset={runs[0].dataset_id}&split=test").json()
    assert [r["endpoint_name"] for r in listed["results"]] == ["broken", "student <b>", "teacher"]
    one = admin_api.get(f"/api/evaluation-runs/{runs[0].pk}/").json()
    assert one["scores"]["overall"]["rouge_l"] == 0.5
    assert one["manifest_url"] == f"/evaluation-runs/{runs[0].pk}/manifest.json"
    assert "answers" not in one
    bad = admin_api.get("/api/evaluation-runs/?dataset=²")
    assert bad.status_code == 400 and "dataset" in bad.json()
    assert admin_api.get(f"/api/evaluation-runs/{runs[-1].pk + 99}/").status_code == 404
