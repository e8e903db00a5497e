"""Hostile input: schemathesis drives every operation of the OpenAPI schema, as annotator and admin.

Zero server errors and no answer that breaks the schema, whatever the input.
"""

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from tests.system.world import build_world

pytestmark = pytest.mark.django_db

# Whether schema-valid input is accepted is left out: valid-looking ids that name nothing, or wrong
# passwords, are rightly refused.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
HYPOTHESIS = settings(
    max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


@pytest.fixture(autouse=True)
def _keep_the_test_transaction() -> Iterator[None]:
    """Requests go through the WSGI app, whose request signals would close the connection that
    holds the test's transaction (Django's own test client disconnects them the same way)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _token_headers(user) -> dict[str, str]:
    token, _ = Token.objects.get_or_create(user=user)
    return {"Authorization": f"Token {token.key}"}


def _load(headers: dict[str, str]):
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application, headers=headers)


@pytest.fixture
def admin_headers(admin_user) -> dict[str, str]:
    return _token_headers(admin_user)


@pytest.fixture
def annotator_headers(annotator) -> dict[str, str]:
    return _token_headers(annotator)


@pytest.fixture(autouse=True)
def world(admin_user, annotator, other_annotator):
    """Real objects (ids from 1 on SQLite), so generated ids sometimes name something."""
    return build_world(admin=admin_user, annotator=annotator, outsider=other_annotator)


@pytest.fixture
def admin_openapi(admin_headers):
    return _load(admin_headers)


@pytest.fixture
def annotator_openapi(annotator_headers):
    return _load(annotator_headers)


as_admin = schemathesis.pytest.from_fixture("admin_openapi")
as_annotator = schemathesis.pytest.from_fixture("annotator_openapi")


# A token per call: `POST /api/auth/token/revoke/` ends the caller's token, and every later call
# would otherwise test nothing but the 401.


@as_admin.parametrize()
@HYPOTHESIS
def test_every_operation_as_admin(case, admin_user):
    case.call_and_validate(headers=_token_headers(admin_user), checks=CHECKS)


@as_annotator.parametrize()
@HYPOTHESIS
def test_every_operation_as_annotator(case, annotator):
    case.call_and_validate(headers=_token_headers(annotator), checks=CHECKS)
