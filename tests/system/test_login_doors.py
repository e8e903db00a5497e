"""Every door that takes a password is throttled the same way: the login page, the API token and
the Django admin's own login page (which would otherwise let anyone guess staff passwords)."""

import pytest
from django.test import Client

from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db

DOORS = {
    "login page": "/accounts/login/",
    "django admin": "/admin/login/",
    "api token": "/api/auth/token/",
}


def _try(door: str, password: str):
    """One attempt, from a browser that is not signed in (same address: the test client's)."""
    return Client().post(DOORS[door], {"username": "ada", "password": password})


def _signed_in(response, door: str) -> bool:
    if door == "api token":
        return response.status_code == 200 and "token" in response.json()
    return response.status_code == 302 and "login" not in response["Location"]


@pytest.mark.parametrize("door", DOORS)
def test_repeated_failures_close_every_door(admin_user, settings, door) -> None:
    settings.LOGIN_FAILURE_LIMIT = 3
    assert _signed_in(_try(door, PASSWORD), door)
    for _ in range(3):
        assert not _signed_in(_try(door, "wrong"), door)
    # Even the right password is refused now, at this door and at the others.
    for other in DOORS:
        assert not _signed_in(_try(other, PASSWORD), other), other
