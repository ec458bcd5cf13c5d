"""Check server events against the ``openai`` package's own models of the GA protocol."""

from __future__ import annotations

from typing import Any

from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

# This service's extensions (README, "Protocol"), which OpenAI's clients ignore.
EXTENSION_EVENTS = frozenset({"response.reasoning.delta", "response.reasoning.done"})

_SERVER_EVENT: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)


def validate_server_event(event: dict[str, Any]) -> None:
    """Raises pydantic's ``ValidationError`` if ``event`` is not a GA server event."""
    if event.get("type") not in EXTENSION_EVENTS:
        _SERVER_EVENT.validate_python(event)
