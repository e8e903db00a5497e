"""The whole flow: two endpoints evaluated on the test split (the fake OpenAI server over HTTP),
a comparison campaign from their runs (`create_campaign --compare-runs`), two annotators rating
everything through the API, and the report's figures from what they sent."""

import io
import json

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.services import user_create_annotator
from evaluation.exports.training import chat_prompt
from generation.fake_openai import FakeOpenAIServer
from generation.services.endpoints import endpoint_create
from students.models import SplitAssignment
from students.services import splits_keep
from tests.factories import annotators, campaign_create, posts_with_items, rate
from tests.helpers import PASSWORD

# What each model answers, per kind. The student's open answers are empty (failures, not rated);
# its xWant answer is the teacher's, so each post's xWant sentence is one item of both runs.
ANSWERS = {
    "teacher-model": {"xWant": "the user wants to rest", "open": "the user is tired"},
    "student-model": {"xWant": "the user wants to rest", "open": ""},
}


@pytest.fixture
def server():
    def answer(stage, body):
        user = body["messages"][-1]["content"]
        kind = next(
            k for k in ("xWant", "open") if chat_prompt("", k)[1]["content"].strip() in user
        )
        return ANSWERS[body["model"]][kind]

    with FakeOpenAIServer(latency=0.0, answers=answer) as server:
        yield server


def _evaluate(endpoint: str) -> int:
    out = io.StringIO()
    call_command(
        "evaluate", "--dataset", "references-data", "--split", "test", "--campaign",
        "references", "--endpoint", endpoint, "--json", stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    return json.loads(out.getvalue())["run"]


def test_runs_to_comparison_to_ratings_to_report(server, admin_api):
    references = campaign_create(name="references")
    items = posts_with_items(references, posts=4, kinds=["xWant", "open"])
    rate(references, items, "plausibility", annotators(2), [[5] * len(items)] * 2)
    kept = SplitAssignment.objects.create(dataset=references.dataset, source="import")
    splits_keep(
        assignment=kept, name="test", external_ids=sorted({i.post.external_id for i in items})
    )
    for name in ("teacher", "student"):
        endpoint_create(
            name=name, backend="openai", base_url=server.base_url, model=f"{name}-model"
        )
    teacher, student = _evaluate("teacher"), _evaluate("student")

    people = [user_create_annotator(username=n, password=PASSWORD) for n in ("anna", "otto")]
    out = io.StringIO()
    call_command(
        "create_campaign", "blind", "--dataset", "references-data", "--compare-runs",
        f"{teacher},{student}", "--overlap", "2", "--annotators", "anna,otto", stdout=out,
    )  # fmt: skip
    assert "4 posts compared, 0 left out" in out.getvalue()
    comparison = admin_api.get("/api/comparisons/").json()["results"][0]
    campaign = comparison["campaign"]

    # Each annotator rates every post: the teacher's open sentence 2, the shared xWant 4.
    sent = 0
    for person in people:
        api = APIClient()
        api.force_authenticate(person)
        while (task := api.post(f"/api/campaigns/{campaign}/next/")).status_code == 200:
            body = task.json()
            ratings = [
                {"item": item["id"], "question": q["id"],
                 "value": 2 if item["text"] == "the user is tired" else 4}
                for item in body["items"] for q in body["questions"]
            ]  # fmt: skip
            done = api.post(
                f"/api/assignments/{body['assignment']}/submit/",
                {"ratings": ratings},
                format="json",
            )
            assert done.status_code == 200, done.json()
            sent += len(ratings)
        assert task.status_code == 204
    assert sent == 2 * 4 * 2 * 2  # annotators × posts × items × questions

    report = admin_api.get(f"/api/comparisons/{comparison['id']}/").json()
    assert [(r["run"], r["answers"], r["failed"], r["items"], r["shared_items"])
            for r in report["runs"]] == [(teacher, 8, 0, 8, 4), (student, 8, 4, 4, 4)]  # fmt: skip
    for question in report["questions"]:
        first, second = question["runs"]
        # The teacher's posts score (4 + 2) / 2 = 3, the student's 4, on every post.
        assert (first["mean"], first["ci95"], first["posts"], first["items"]) == (
            3.0,
            [3.0, 3.0],
            4,
            8,
        )
        assert (second["mean"], second["ci95"], second["posts"], second["items"]) == (
            4.0,
            [4.0, 4.0],
            4,
            4,
        )
        assert first["ratings"] == 16 and second["ratings"] == 8
        (pair,) = question["pairs"]
        assert (pair["posts"], pair["mean_difference"], pair["ci95"]) == (4, -1.0, [-1.0, -1.0])
        # Four equal differences: scipy's exact two-sided p is 2 / 2^4.
        assert pair["p_value"] == pytest.approx(0.125) and pair["statistic"] == 0.0
