"""Check server events against the ``openai`` package's own models of the GA protocol."""

from __future__ import annotations

from typing import Any

from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

# This service's extensions (README, "Protocol"), which OpenAI's clients ignore.
EXTENSION_EVENTS = frozenset({"response.reasoning.delta", "response.reasoning.done"})

_SERVER_EVENT: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)


def validate_server_event(event: dict[str, Any]) -> None:
    """Raises pydantic's ``ValidationError`` if ``event`` is not a GA server event. PCM at
    16 kHz is this service's extension (GA's ``audio/pcm`` is 24 kHz only): it is checked as
    if it were 24 kHz."""
    if event.get("type") not in EXTENSION_EVENTS:
        _SERVER_EVENT.validate_python(_as_ga_rates(event))


def _as_ga_rates(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("type") == "audio/pcm" and value.get("rate") == 16_000:
            return {**value, "rate": 24_000}
        return {key: _as_ga_rates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_ga_rates(item) for item in value]
    return value
