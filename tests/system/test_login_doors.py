"""Every door that takes a password is throttled the same way: the login page, the API token and
the Django admin's own login page (which would otherwise let anyone guess staff passwords).

One count per account and client address, whatever the spelling of the username (the probe of
issue 13 got five fresh guesses for each of `" annotator2"`, `"annotator2 "`, `"\\t annotator2"`),
and a lockout costs the attacker's address, not the owner's, behind a trusted proxy too."""

import pytest
from django.test import Client

from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db

DOORS = {
    "login page": "/accounts/login/",
    "django admin": "/admin/login/",
    "api token": "/api/auth/token/",
}

# Spellings that authentication reads as "ada": surrounding whitespace, and NFKC (fullwidth).
SPELLINGS = [" ada", "ada ", "ada  ", "\t ada", "ada\n", "\u3000ada", "ａｄａ"]

PROXY = "10.0.0.2"
ATTACKER, OWNER = "203.0.113.5", "198.51.100.7"


@pytest.fixture(autouse=True)
def _fast_passwords(settings) -> None:
    """Many logins a test: a cheap hasher (autouse fixtures run before the users are created)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _try(door: str, password: str, username: str = "ada", **headers):
    """One attempt, from a browser that is not signed in (same address: the test client's)."""
    return Client(**headers).post(DOORS[door], {"username": username, "password": password})


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


@pytest.mark.parametrize("door", DOORS)
def test_every_spelling_of_a_username_is_one_account(admin_user, door) -> None:
    # The right password under each spelling is the right login: they are one account...
    for username in SPELLINGS:
        assert _signed_in(_try(door, PASSWORD, username), door), repr(username)


@pytest.mark.parametrize("door", DOORS)
def test_spellings_share_one_count(admin_user, settings, door) -> None:
    # ...so their failures add up: no spelling gets fresh guesses.
    settings.LOGIN_FAILURE_LIMIT = 3
    for username in SPELLINGS[:3]:
        assert not _signed_in(_try(door, "wrong", username), door)
    for other in DOORS:
        for username in ["ada", *SPELLINGS]:
            response = _try(other, PASSWORD, username)
            assert not _signed_in(response, other), (other, repr(username))
            if other == "api token":
                assert response.status_code == 429


def test_the_probe_on_the_token_api(annotator, settings) -> None:
    """Issue 13's probe, word for word: five wrong passwords, then the right one respelled."""
    settings.LOGIN_FAILURE_LIMIT = 5
    for _ in range(5):
        assert _try("api token", "wrong", "anna").status_code == 400
    for username in [" anna", "anna ", "anna  ", "\t anna"]:
        response = _try("api token", PASSWORD, username)
        assert response.status_code == 429, repr(username)
        assert "token" not in response.json()
    for username in [" anna", "anna ", "\t anna"]:  # nor any fresh guesses
        assert _try("api token", "wrong", username).status_code == 429


@pytest.mark.parametrize("door", DOORS)
def test_lockout_costs_the_attacker_not_the_owner(admin_user, settings, door) -> None:
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        _try(door, "wrong", REMOTE_ADDR=ATTACKER)
    assert not _signed_in(_try(door, PASSWORD, REMOTE_ADDR=ATTACKER), door)
    for other in DOORS:
        assert _signed_in(_try(other, PASSWORD, REMOTE_ADDR=OWNER), other), other


@pytest.mark.parametrize("door", DOORS)
def test_behind_a_trusted_proxy_each_client_counts_apart(admin_user, settings, door) -> None:
    """Every request reaches the app from the proxy's address; the owner is not locked out."""
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.DISTILLERY_TRUSTED_PROXIES = [f"{PROXY}/32"]
    for index in range(3):
        # What the attacker writes in the header (the left part) changes nothing: the proxy
        # appends the address it saw.
        _try(door, "wrong", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"1.2.3.{index}, {ATTACKER}")
    attacker = _try(door, PASSWORD, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"9.9.9.9, {ATTACKER}")
    assert not _signed_in(attacker, door)
    for other in DOORS:
        owner = _try(other, PASSWORD, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=OWNER)
        assert _signed_in(owner, other), other


@pytest.mark.parametrize("door", DOORS)
def test_a_forwarded_header_from_an_untrusted_peer_is_ignored(admin_user, settings, door) -> None:
    """Without the proxy in DISTILLERY_TRUSTED_PROXIES (or connecting past it), a made-up
    X-Forwarded-For buys no fresh guesses."""
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.DISTILLERY_TRUSTED_PROXIES = [f"{PROXY}/32"]
    for index in range(3):
        _try(door, "wrong", REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=f"1.2.3.{index}")
    forged = _try(door, PASSWORD, REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR="1.2.3.99")
    assert not _signed_in(forged, door)


def test_one_address_guessing_many_accounts_is_locked_out(admin_user, annotator, settings) -> None:
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 4
    for index in range(3):  # a different account each time: no pair reaches its limit
        _try("api token", "wrong", f"user{index}", REMOTE_ADDR=ATTACKER)
    # The attacker's own account logs in, which does not clear the address's count...
    assert _signed_in(_try("api token", PASSWORD, "anna", REMOTE_ADDR=ATTACKER), "api token")
    _try("login page", "wrong", "user3", REMOTE_ADDR=ATTACKER)
    # ...so the fourth failure locks the address out of every account, and no other address.
    for door in DOORS:
        assert not _signed_in(_try(door, PASSWORD, "ada", REMOTE_ADDR=ATTACKER), door)
        assert _signed_in(_try(door, PASSWORD, "ada", REMOTE_ADDR=OWNER), door)
    assert _try("api token", PASSWORD, "anna", REMOTE_ADDR=ATTACKER).status_code == 429
