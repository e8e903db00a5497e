"""Login throttling, shared by every door that checks a password.

The doors (the login page, the Django admin's login, `POST /api/auth/token/`, and the password
change forms, which check the old password) all authenticate the username that
`normalize_username` returns, and count failures under that same name, so `" ada"`, `"ada "` and
`"\\tada"` are one account with one count.

Two counts, so that a lockout costs the attacker rather than the account's owner:
- per (username, client address): `LOGIN_FAILURE_LIMIT` failures lock that pair only; the owner,
  from another address, still logs in;
- per client address: `LOGIN_ADDRESS_FAILURE_LIMIT` failures, whatever the usernames, lock that
  address out of every account (guessing many accounts from one place).
A success clears the pair's count, never the address's. A count lasts `LOGIN_COOLDOWN_SECONDS`
from the first failure, and a lock `LOGIN_COOLDOWN_SECONDS` from the failure that set it.

The client address is `REMOTE_ADDR`, unless that is a proxy listed in `DISTILLERY_TRUSTED_PROXIES`:
then `X-Forwarded-For` is read from the right, skipping trusted proxies, and the first address that
is not one is the client (what a proxy saw connect to it, never what the client wrote).

Counted in the cache (Redis in production through CACHE_URL), so every web process shares it.
"""

import hashlib
import ipaddress
import unicodedata
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def normalize_username(raw: object) -> str:
    """The username every door authenticates and counts: NFKC (as Django's `UsernameField`), then
    surrounding whitespace stripped (as every form and serializer field does)."""
    return unicodedata.normalize("NFKC", str(raw)).strip()


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # An IPv4 peer seen through an IPv6 socket (::ffff:10.0.0.2) is that IPv4 address.
    return getattr(ip, "ipv4_mapped", None) or ip


def client_address(request: HttpRequest) -> str:
    """The address of the client, as the last trusted proxy saw it (see the module's docstring)."""
    address = request.META.get("REMOTE_ADDR", "")
    networks = _networks(tuple(settings.DISTILLERY_TRUSTED_PROXIES))
    if not networks:
        return address
    ip = _ip(address)
    hops = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    while ip is not None and hops and any(ip in network for network in networks):
        hop = _ip(hops.pop())
        if hop is None:
            break  # not an address: the last one a trusted proxy vouched for stands
        ip = hop
    return str(ip) if ip is not None else address


def _pair_key(request: HttpRequest, username: str) -> str:
    name = normalize_username(username).casefold()
    digest = hashlib.sha256(f"{name}|{client_address(request)}".encode()).hexdigest()
    return f"login-failures:{digest}"


def _address_key(request: HttpRequest) -> str:
    digest = hashlib.sha256(client_address(request).encode()).hexdigest()
    return f"login-failures-address:{digest}"


def login_blocked(request: HttpRequest, username: str) -> bool:
    counts = cache.get_many([_pair_key(request, username), _address_key(request)])
    return (
        counts.get(_pair_key(request, username), 0) >= settings.LOGIN_FAILURE_LIMIT
        or counts.get(_address_key(request), 0) >= settings.LOGIN_ADDRESS_FAILURE_LIMIT
    )


def _count(key: str, limit: int) -> None:
    timeout = settings.LOGIN_COOLDOWN_SECONDS
    cache.add(key, 0, timeout=timeout)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=timeout)
        count = 1
    if count >= limit:
        cache.touch(key, timeout)  # the lock lasts a full cool-down from this failure


def login_failed(request: HttpRequest, username: str) -> None:
    _count(_pair_key(request, username), settings.LOGIN_FAILURE_LIMIT)
    _count(_address_key(request), settings.LOGIN_ADDRESS_FAILURE_LIMIT)


def login_succeeded(request: HttpRequest, username: str) -> None:
    cache.delete(_pair_key(request, username))
