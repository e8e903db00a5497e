"""The statements the annotators' two calls run, counted through the API with token auth.

On PostgreSQL every statement of the hot path is a prepared statement (config/prepared.py) and is
counted like any other query; on SQLite the ORM twins run. A change that adds a round trip to
either call fails here: see docs/annotation.md, "Reading the query counts".
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.hot_path import task_data
from annotation.services import assignment_claim, assignments

# Outside a test transaction, so the counts are what a server runs (no savepoints around them).
pytestmark = pytest.mark.django_db(transaction=True)

# Statements per call on PostgreSQL: the token (1), the campaign with the caller's open lease (1),
# the claim (1), the task (1); now and then the lazy expiry (1). Submit: the token (1), the
# assignment with what it must cover (1), finishing it with its ratings (1).
POSTGRESQL = {"first next": 5, "next again": 3, "submit": 3, "next": 4}
# SQLite: the ORM twins. Next task: the token, the campaign, the open lease, (the expiry's scan),
# the claim's BEGIN, task, UPDATE, INSERT, COMMIT, then the task view's questions, items and
# description. Submit: the token, the assignment, its questions and items, then BEGIN, the locked
# assignment, its UPDATE, the ratings' INSERT, COMMIT.
SQLITE = {"first next": 12, "next again": 6, "submit": 9, "next": 11}


def _token_api(user) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


def _counted(call) -> tuple[object, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = call()
    return response, [query["sql"] for query in queries.captured_queries]


def test_the_two_calls_run_a_fixed_number_of_statements(campaign, annotator, monkeypatch):
    monkeypatch.setattr(assignments, "_last_expiry", {})  # the first claim expires leases
    api = _token_api(annotator)
    next_url = reverse("api-task-next", args=[campaign.pk])
    counts = {}
    response, counts["first next"] = _counted(lambda: api.post(next_url))
    task = response.json()
    # A reload hands back the open lease: no claim.
    response, counts["next again"] = _counted(lambda: api.post(next_url))
    assert response.json()["assignment"] == task["assignment"]
    ratings = [
        {"item": item["id"], "question": q["id"], "value": 3}
        for item in task["items"]
        for q in task["questions"]
    ]
    submit_url = reverse("api-assignment-submit", args=[task["assignment"]])
    response, counts["submit"] = _counted(
        lambda: api.post(submit_url, {"ratings": ratings, "seconds": 4}, format="json")
    )
    assert response.status_code == 200, response.json()
    # The next claim, within seconds of the first: no expiry this time.
    response, counts["next"] = _counted(lambda: api.post(next_url))
    assert response.status_code == 200

    expected = POSTGRESQL if connection.vendor == "postgresql" else SQLITE
    assert {call: len(sqls) for call, sqls in counts.items()} == expected, counts


@pytest.mark.postgres
def test_prepared_statements_are_seen_by_execute_wrappers_and_stay_prepared(campaign, annotator):
    seen = []

    def spy(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        lease = assignment_claim(campaign=campaign, annotator=annotator)
        task_data(assignment=lease)
    assert any("INSERT INTO annotation_assignment" in sql for sql in seen)
    assert any("FROM generation_post p" in sql for sql in seen)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    # psycopg prepared them on this connection, the server plans them once.
    assert any("INSERT INTO annotation_assignment" in sql for sql in prepared)
    assert any("FROM generation_post p" in sql for sql in prepared)
