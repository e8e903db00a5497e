"""Login throttling: after too many failures for a username from one address, refuse for a while.

Counted in the cache (Redis in production through CACHE_URL), so every web process shares it.
"""

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def _key(request: HttpRequest, username: str) -> str:
    address = request.META.get("REMOTE_ADDR", "")
    digest = hashlib.sha256(f"{username.lower()}|{address}".encode()).hexdigest()
    return f"login-failures:{digest}"


def login_blocked(request: HttpRequest, username: str) -> bool:
    return cache.get(_key(request, username), 0) >= settings.LOGIN_FAILURE_LIMIT


def login_failed(request: HttpRequest, username: str) -> None:
    key = _key(request, username)
    cache.add(key, 0, timeout=settings.LOGIN_COOLDOWN_SECONDS)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.LOGIN_COOLDOWN_SECONDS)


def login_succeeded(request: HttpRequest, username: str) -> None:
    cache.delete(_key(request, username))
