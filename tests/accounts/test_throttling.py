"""The client address every login door counts under (accounts/throttling.py)."""

import pytest
from django.test import RequestFactory

from accounts.throttling import client_address, normalize_username


def _address(remote: str, forwarded: str | None = None) -> str:
    headers = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_address(RequestFactory().post("/accounts/login/", **headers))


def test_without_trusted_proxies_the_header_is_ignored(settings) -> None:
    settings.DISTILLERY_TRUSTED_PROXIES = []
    assert _address("10.0.0.2", "203.0.113.5") == "10.0.0.2"


@pytest.mark.parametrize(
    ("remote", "forwarded", "client"),
    [
        ("10.0.0.2", "203.0.113.5", "203.0.113.5"),
        ("10.0.0.2", "1.1.1.1, 203.0.113.5", "203.0.113.5"),  # the left part is the client's say
        ("10.0.0.2", "1.1.1.1,203.0.113.5, 10.0.0.3", "203.0.113.5"),  # two trusted proxies
        ("::ffff:10.0.0.2", "203.0.113.5", "203.0.113.5"),  # IPv4 through an IPv6 socket
        ("10.0.0.2", "2001:db8::1", "2001:db8::1"),
        ("10.0.0.2", "", "10.0.0.2"),  # nothing forwarded: the proxy itself
        ("10.0.0.2", "1.1.1.1, not-an-address", "10.0.0.2"),
        ("203.0.113.9", "1.1.1.1", "203.0.113.9"),  # an untrusted peer names nobody
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(
    settings, remote, forwarded, client
) -> None:
    settings.DISTILLERY_TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert _address(remote, forwarded) == client


@pytest.mark.parametrize("raw", ["ada", " ada", "ada ", "\t ada", "ada\n", "\u3000ada", "ａｄａ"])
def test_every_spelling_normalises_to_one_username(raw) -> None:
    assert normalize_username(raw) == "ada"
