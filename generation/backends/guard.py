"""What an endpoint may point at and which environment variable may hold its key.

An endpoint sends `Authorization: Bearer <value of its api_key_env>` to its base URL, so an admin
who could name any variable and any address could read the worker's environment (the database
password, SECRET_KEY, ...) or the cloud's metadata service. Both are checked when an endpoint is
saved (`generation.services.endpoints`) and again when the backend reads the key and makes its
client (`generation.backends.openai`), for endpoints saved before these checks or by other means.

Settings (docs/security.md, "Model endpoints: keys and addresses"):

- `DISTILLERY_API_KEY_ENV_ALLOWED`: the variables a key may come from; a name ending in `*` is a
  prefix. Default `OPENAI_API_KEY` and `DISTILLERY_KEY_*`. Django, database, broker and other
  secrets' variables are refused even when listed (`FORBIDDEN_*` below).
- `DISTILLERY_ALLOW_PRIVATE_ENDPOINTS`: loopback and private addresses (a vLLM on the same host or
  network). Link-local and metadata addresses are refused whatever it says.
"""

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from django.conf import settings

DEFAULT_ALLOWED_KEY_ENV = ["OPENAI_API_KEY", "DISTILLERY_KEY_*"]
FORBIDDEN_KEY_ENV = re.compile(
    r"""^(
        SECRET_KEY | DATABASE_URL | REDIS_URL | BROKER_URL | CACHE_URL | EMAIL_URL
        | PATH | HOME | USER | PWD | PYTHONPATH | LD_PRELOAD | LD_LIBRARY_PATH
        | (DJANGO | CELERY | REDIS | DATABASE | POSTGRES | PG | DB | MYSQL | RABBITMQ | AMQP
           | EMAIL | AWS | GOOGLE | AZURE | SENTRY | SSH | GPG )_.*
        | DISTILLERY_(?!KEY_).*
        | .*(PASSWORD | PASSWD | SECRET_KEY | _FILE) )$""",
    re.VERBOSE | re.IGNORECASE,
)
# Cloud metadata services, by name and by address (AWS, GCP, Azure, Alibaba, Oracle, ...).
METADATA_HOSTS = {
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.com",
    "instance-data",
    "instance-data.ec2.internal",
}
METADATA_ADDRESSES = {
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud
}


def _allowed_patterns() -> list[str]:
    return list(getattr(settings, "DISTILLERY_API_KEY_ENV_ALLOWED", DEFAULT_ALLOWED_KEY_ENV))


def _allowed_text() -> str:
    return ", ".join(_allowed_patterns()) or "none"


def api_key_env_error(name: str) -> str | None:
    """Why the variable `name` may not hold an endpoint's key; None when it may."""
    if not name:
        return None
    if FORBIDDEN_KEY_ENV.match(name):
        return (
            f"{name} holds a setting or secret of Distillery itself and is never sent to a model "
            f"server; put the key in a variable of its own (allowed: {_allowed_text()})."
        )
    for pattern in _allowed_patterns():
        if name == pattern or (pattern.endswith("*") and name.startswith(pattern[:-1])):
            return None
    return (
        f"{name} is not a variable an API key may come from (allowed: {_allowed_text()}; "
        "set DISTILLERY_API_KEY_ENV_ALLOWED to change)."
    )


def _address_error(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_link_local or address in METADATA_ADDRESSES:
        return f"{host} is a link-local or cloud metadata address ({address}); it is never allowed."
    if address.is_global and not address.is_multicast:
        return None
    if getattr(settings, "DISTILLERY_ALLOW_PRIVATE_ENDPOINTS", False):
        return None
    return (
        f"{host} is a loopback or private address ({address}); "
        "set DISTILLERY_ALLOW_PRIVATE_ENDPOINTS=true to allow model servers on your own network."
    )


def base_url_error(url: str, *, resolve: bool = True) -> str | None:
    """Why a model server may not be called at `url`; None when it may.

    An IP address is checked as it is; a host name by name (metadata services) and, with
    `resolve`, by every address it resolves to now. A name that does not resolve passes: there is
    nothing to connect to, and the backend checks again when it makes its client.
    """
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return "Enter a valid http(s) URL."
    if not host:
        return "Enter a valid http(s) URL."
    host = host.rstrip(".").lower()
    if host in METADATA_HOSTS:
        return f"{host} is a cloud metadata service; it is never allowed."
    try:
        return _address_error(host, ipaddress.ip_address(host))
    except ValueError:
        pass
    if not resolve:
        return None
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        error = _address_error(host, address)
        if error:
            return error
    return None
