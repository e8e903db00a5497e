"""The whole flow, through the interfaces people use: command line, REST API, browser.

Import the MIKO release sample as plain posts → generate with the MIKO pipeline against the fake
OpenAI-compatible server while it injects faults (429s, 500s, bodies that are not JSON, an answer
that cannot be parsed), retrying the failed posts through the API → create a campaign → three
simulated annotators rate over HTTP with token auth, and one person rates a post from the keyboard
in Chromium → `agreement --json` → `export_dataset` with thresholds. The exported items must be
exactly those the ratings imply, computed here in plain Python from what was submitted.
"""

import io
import json
import random
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import httpx
import krippendorff
import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.services import user_create_annotator
from annotation.models import Assignment, Campaign, Rating, Task
from annotation.selectors import tasks_with_done
from annotation.services import leases_expire
from generation.fake_openai import FakeOpenAIServer
from generation.models import Batch, KnowledgeItem, StageResult
from tests.helpers import PASSWORD, browser_login

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fast_retries", "eager_tasks"),
]

RELEASE = Path(__file__).resolve().parents[2] / "sample_data/miko/release_sample.json"
SIMULATED = ["sim1", "sim2", "sim3"]
QUESTIONS = ("plausibility", "typicality")
# The browser annotator's keys: one digit per item × question, in the page's order.
BROWSER_DIGITS = "54" * 5 + "21" * 5
THRESHOLDS = {"plausibility": 4, "typicality": 3}
MIN_RATINGS = 3

# (item id, question name) -> {annotator: value}: every rating this test submitted.
Submitted = dict[tuple[int, str], dict[str, int]]


@pytest.fixture
def eager_tasks(monkeypatch) -> None:
    """Tasks queued by the API run in the request (SQLite's in-memory database has one thread)."""
    from config.celery import app

    monkeypatch.setattr(app.conf, "task_always_eager", True)


def _posts_file(tmp_path: Path) -> Path:
    """The release sample as generic posts without items: the pipeline generates them."""
    records = json.loads(RELEASE.read_text(encoding="utf-8"))
    path = tmp_path / "posts.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            line = {
                "id": Path(record["image"]).stem,
                "text": record["text"],
                "metadata": {"intention_labels": record["intention_labels"]},
            }
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path


def _run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def _generate(api: httpx.Client) -> Batch:
    """Generate until every post is done: the runner retries transient faults by itself; the
    unparseable answer fails its post, which is then retried through the API."""
    unparseable = ["Sorry, I cannot guess the intentions behind this post."]

    def answers(stage, body):
        return unparseable.pop() if stage == "intentions" and unparseable else None

    faults = {"rate_limit": 0.05, "server_error": 0.05}
    with FakeOpenAIServer(
        latency=0.005, faults=faults, answers=answers, retry_after=0.01, seed=7
    ) as server:
        server.fail_next("malformed", 2)
        _run(
            "endpoint_add", "fake", "--backend", "openai", "--base-url", server.base_url,
            "--model", "fake-model", "--concurrency", "8",
        )  # fmt: skip
        _run("generate", "--dataset", "miko", "--pipeline", "miko", "--endpoint", "fake", "--wait")
        batch = Batch.objects.get(imported=False)
        assert batch.status == Batch.Status.DONE
        assert (batch.posts_done, batch.posts_failed) == (59, 1)
        assert server.status_counts[429] > 0 and server.status_counts[500] > 0
        assert server.faults_served["malformed"] == 2
        failed = StageResult.objects.get(batch=batch, status="failed")
        assert failed.stage == "intentions" and "ParseError" in failed.error

        response = api.post(f"/api/batches/{batch.pk}/retry-failed/")
        assert response.status_code == 200, response.text
        progress = api.get(f"/api/batches/{batch.pk}/").json()["progress"]
        assert progress["status"] == "done", progress
        assert (progress["posts_done"], progress["posts_failed"]) == (60, 0)
    batch.refresh_from_db()
    return batch


def _simulated_value(username: str, item_id: int, question: str) -> int:
    """Annotators who mostly agree: a quality per item, each annotator off by at most one."""
    quality = 1 + (item_id * 7) % 5 - (1 if question == "typicality" else 0)
    noise = random.Random(f"{username}:{item_id}:{question}").choice([-1, 0, 0, 1])
    return min(5, max(1, quality + noise))


def _token_client(live_server, username: str) -> httpx.Client:
    response = httpx.post(
        f"{live_server.url}/api/auth/token/", data={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    headers = {"Authorization": f"Token {response.json()['token']}"}
    return httpx.Client(base_url=live_server.url, headers=headers, timeout=30)


def _rate_in_the_browser(page, live_server, campaign: Campaign, submitted: Submitted) -> int:
    """anna rates her first post with digits and Enter only; returns the assignment's id."""
    browser_login(page, live_server, "anna")
    page.goto(f"{live_server.url}/annotate/{campaign.pk}/")
    page.wait_for_function("document.activeElement && document.activeElement.type === 'radio'")
    assignment = int(page.get_attribute("article.post", "data-assignment"))
    cells = page.eval_on_selector_all(
        "fieldset.question",
        "groups => groups.map(g => [Number(g.closest('fieldset.item').dataset.item),"
        " Number(g.dataset.question)])",
    )
    names = dict(campaign.questions.values_list("pk", "name"))
    assert len(cells) == len(BROWSER_DIGITS) == 20
    for digit, (item_id, question_id) in zip(BROWSER_DIGITS, cells, strict=True):
        page.keyboard.press(digit)
        submitted[(item_id, names[question_id])]["anna"] = int(digit)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "id => document.querySelector('article.post') &&"
        " document.querySelector('article.post').dataset.assignment !== String(id)",
        arg=assignment,
    )
    return assignment


def _rate_over_http(clients: dict[str, httpx.Client], campaign_id: int, submitted: Submitted):
    """Round-robin: each simulated annotator takes its next post and submits it, until the API
    answers 204 (nothing left) for all of them."""
    active = dict(clients)
    while active:
        for username, api in list(active.items()):
            response = api.post(f"/api/campaigns/{campaign_id}/next/")
            if response.status_code == 204:
                del active[username]
                continue
            assert response.status_code == 200, response.text
            task = response.json()
            ratings = []
            for item in task["items"]:
                assert item["my_values"] == {}  # never anyone's earlier ratings
                for question in task["questions"]:
                    value = _simulated_value(username, item["id"], question["name"])
                    ratings.append({"item": item["id"], "question": question["id"], "value": value})
                    submitted[(item["id"], question["name"])][username] = value
            answer = api.post(
                f"/api/assignments/{task['assignment']}/submit/",
                json={"ratings": ratings, "seconds": 4.2},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "done"


def _expected_items(submitted: Submitted) -> set[int]:
    """Items whose mean reaches every threshold, with at least MIN_RATINGS on every question."""
    kept = set()
    for item_id in {item_id for item_id, _ in submitted}:
        values = {q: list(submitted.get((item_id, q), {}).values()) for q in QUESTIONS}
        if all(
            len(values[q]) >= MIN_RATINGS and sum(values[q]) >= THRESHOLDS[q] * len(values[q])
            for q in QUESTIONS
        ):
            kept.add(item_id)
    return kept


def _alpha(submitted: Submitted, question: str) -> float:
    annotators = ["anna", *SIMULATED]
    units = sorted(item_id for item_id, q in submitted if q == question)
    matrix = np.full((len(annotators), len(units)), np.nan)
    for column, item_id in enumerate(units):
        for username, value in submitted[(item_id, question)].items():
            matrix[annotators.index(username), column] = value
    return krippendorff.alpha(
        reliability_data=matrix, level_of_measurement="ordinal", value_domain=[1, 2, 3, 4, 5]
    )


def test_import_generate_rate_measure_and_export(tmp_path, live_server, page, admin_user) -> None:
    for username in ["anna", *SIMULATED]:
        user_create_annotator(username=username, password=PASSWORD)

    summary = _run("import_posts", str(_posts_file(tmp_path)), "--dataset", "miko")
    assert "60" in summary

    admin = _token_client(live_server, "ada")
    batch = _generate(admin)
    assert KnowledgeItem.objects.filter(batch=batch).count() == 600
    assert not StageResult.objects.filter(batch=batch, status="failed").exists()

    _run(
        "create_campaign", "e2e", "--dataset", "miko", "--batch", str(batch.pk), "--overlap", "3",
        "--annotators", ",".join(["anna", *SIMULATED]),
    )  # fmt: skip
    campaign = Campaign.objects.get(name="e2e")
    assert Task.objects.filter(campaign=campaign).count() == 60

    submitted: Submitted = defaultdict(dict)
    _rate_in_the_browser(page, live_server, campaign, submitted)
    # anna stops for the day; her next post's lease runs out and goes back to the pool.
    assert leases_expire(campaign=campaign, now=timezone.now() + timedelta(hours=1)) == 1

    _rate_over_http(
        {name: _token_client(live_server, name) for name in SIMULATED}, campaign.pk, submitted
    )
    assert admin.get(f"/api/campaigns/{campaign.pk}/progress/").json()["progress"]["percent"] == 100
    assert not tasks_with_done(Task.objects.filter(campaign=campaign)).exclude(done=3).exists()
    assert Assignment.objects.filter(campaign=campaign, status="done").count() == 180
    assert Rating.objects.filter(campaign=campaign).count() == 600 * 3 * 2
    stored = {
        (item_id, question, username): value
        for item_id, question, username, value in Rating.objects.filter(
            campaign=campaign
        ).values_list("item_id", "question__name", "annotator__username", "value")
    }
    assert stored == {
        (item_id, question, username): value
        for (item_id, question), by_user in submitted.items()
        for username, value in by_user.items()
    }

    agreement = json.loads(_run("agreement", "--campaign", "e2e", "--json"))
    for question in QUESTIONS:
        figures = agreement["questions"][question]
        assert (figures["n_items"], figures["n_ratings"], figures["level"]) == (
            600,
            1800,
            "ordinal",
        )
        assert figures["alpha"] == pytest.approx(_alpha(submitted, question), abs=1e-9)
        assert set(figures["kinds"]) == {
            "xWant", "oEffect", "xAttr", "xIntent", "xReact", "oReact", "oWant", "xEffect",
            "xNeed", "open",
        }  # fmt: skip

    output = tmp_path / "kept.jsonl"
    _run(
        "export_dataset", "--campaign", "e2e", "--format", "jsonl", "--output", str(output),
        "--min-plausibility", str(THRESHOLDS["plausibility"]),
        "--min-typicality", str(THRESHOLDS["typicality"]),
        "--min-ratings", str(MIN_RATINGS), "--no-progress",
    )  # fmt: skip
    exported = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    expected = _expected_items(submitted)
    assert 0 < len(expected) < 600  # the thresholds cut something and keep something
    assert {row["item_id"] for row in exported} == expected
    assert len(exported) == len(expected)  # each once
    for row in exported:
        for question in QUESTIONS:
            values = list(submitted[(row["item_id"], question)].values())
            assert row["scores"][question]["n"] == len(values)
            mean = sum(values) / len(values)
            assert row["scores"][question]["mean"] == pytest.approx(mean, abs=1e-4)
    manifest = json.loads(Path(f"{output}.manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["items"] == len(expected)
