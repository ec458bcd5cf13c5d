"""Who is calling: the service's API keys, and how a request presents one.

A key arrives as ``Authorization: Bearer KEY`` or, from browsers (which cannot set headers
on a WebSocket), as the subprotocol ``openai-insecure-api-key.KEY``, as OpenAI's clients send
it. Keys are compared in constant time and never logged: a key is named by its ``key_id``, a
short hash, wherever one must be named (limits, client secrets).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

KEYS_ENVIRONMENT_VARIABLE = "STEP_REALTIME_API_KEYS"
SUBPROTOCOL_KEY_PREFIX = "openai-insecure-api-key."


class ApiKeyFileError(ValueError):
    """An API keys file that cannot be read."""


def key_id(key: str) -> str:
    """A name for a key that does not reveal it."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class ApiKeys:
    """The service's keys. Empty: no authentication."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        unique = {key.strip() for key in keys if key.strip()}
        self._keys = tuple((key.encode(), key_id(key)) for key in sorted(unique))

    @classmethod
    def from_sources(
        cls,
        keys: Sequence[str] = (),
        keys_file: Path | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> ApiKeys:
        """Keys from the command line, ``STEP_REALTIME_API_KEYS`` (comma-separated) and a
        file (one key a line; blank lines and ``#`` comments skipped)."""
        found = list(keys)
        found += environ.get(KEYS_ENVIRONMENT_VARIABLE, "").split(",")
        if keys_file is not None:
            try:
                lines = keys_file.read_text().splitlines()
            except OSError as exc:
                raise ApiKeyFileError(f"cannot read API keys file {keys_file}: {exc}") from None
            found += [line for line in lines if not line.strip().startswith("#")]
        return cls(found)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def match(self, candidate: str) -> str | None:
        """The ``key_id`` of the key ``candidate`` is, or None. Every key is compared, in
        constant time, whatever matches."""
        given = candidate.encode()
        found: str | None = None
        for key, name in self._keys:
            if hmac.compare_digest(key, given):
                found = name
        return found

    def has_id(self, name: str) -> bool:
        return any(hmac.compare_digest(name, known) for _, known in self._keys)

    def signing_key(self, purpose: str) -> bytes:
        """A secret derived from all the keys: every service replica given the same keys
        derives the same one, and changing the keys changes it."""
        material = b"\n".join(key for key, _ in self._keys)
        return hmac.new(material, purpose.encode(), hashlib.sha256).digest()


def presented_credential(
    headers: Mapping[str, str], subprotocols: Sequence[str] = ()
) -> str | None:
    """The key or client secret a request carries, from its ``Authorization`` header or a
    WebSocket subprotocol."""
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for protocol in subprotocols:
        if protocol.startswith(SUBPROTOCOL_KEY_PREFIX) and len(protocol) > len(
            SUBPROTOCOL_KEY_PREFIX
        ):
            return protocol[len(SUBPROTOCOL_KEY_PREFIX) :]
    return None
