"""Which browser origins may open sessions: a page on another site must not be able to use a
visitor's network position (or a secret it obtained) to talk to the service."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class OriginPolicy:
    """By default the service's own origin and loopback origins; ``allowed`` adds exact
    origins (``https://app.example.com``), or ``*`` for any."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self._allowed = frozenset(_normalize(origin) for origin in allowed)

    def allows(self, origin: str | None, host: str | None) -> bool:
        """``origin``: the request's ``Origin`` header (None: not sent by a browser);
        ``host``: its ``Host`` header."""
        if origin is None:
            return True
        normalized = _normalize(origin)
        if "*" in self._allowed or normalized in self._allowed:
            return True
        parts = urlsplit(normalized)
        if parts.scheme not in ("http", "https"):
            return False
        if parts.hostname in _LOOPBACK_HOSTS:
            return True
        return host is not None and parts.netloc == host.lower()


def _normalize(origin: str) -> str:
    return origin.strip().rstrip("/").lower()
