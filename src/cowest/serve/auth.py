"""API keys: read from an environment variable, checked in constant time, required off loopback."""

from __future__ import annotations

import hmac
import ipaddress
import os

from ..errors import CowestError
from .protocol import APIError

KEYS_ENV = "COWEST_API_KEYS"


class ServeConfigError(CowestError):
    """The server cannot start as asked (no keys on a public address, a bad limit)."""


def load_keys(env: str = KEYS_ENV) -> list[str]:
    """The keys in `env`: one, or several separated by commas (blanks dropped)."""
    return [k.strip() for k in os.environ.get(env, "").split(",") if k.strip()]


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost': addresses no other machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to a public address
        return False


def check_bind(host: str, keys: list[str], env: str = KEYS_ENV) -> None:
    """Refuse to serve an address other machines can reach without keys."""
    if not keys and not is_loopback(host):
        raise ServeConfigError(f"refusing to serve on {host} without API keys: set {env} (one key, or several "
                               f"separated by commas), or serve on 127.0.0.1")


class KeyCheck:
    """Checks `Authorization: Bearer <key>` against the configured keys (none configured: every request passes)."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys]

    @property
    def enabled(self) -> bool:
        """Whether requests need a key."""
        return bool(self._keys)

    def __call__(self, authorization: str | None) -> str:
        """Which key the header carries (`key-<index>`; `open` without keys), or a 401."""
        if not self._keys:
            return "open"
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise APIError(401, "missing API key: send 'Authorization: Bearer <key>'", "invalid_request_error",
                           code="invalid_api_key")
        token = given.strip().encode()
        # every key is compared, so the time taken does not tell which one came close
        found = -1
        for i, key in enumerate(self._keys):
            if hmac.compare_digest(token, key):
                found = i
        if found < 0:
            raise APIError(401, "incorrect API key", "invalid_request_error", code="invalid_api_key")
        return f"key-{found}"
