"""Protocol errors: what a client did wrong, phrased as an OpenAI Realtime ``error`` event."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError


@dataclass
class ProtocolError(Exception):
    """A client event that cannot be accepted. The session reports it and keeps going."""

    code: str
    message: str
    param: str | None = None
    event_id: str | None = None
    type: str = "invalid_request_error"

    def __str__(self) -> str:
        return self.message

    @classmethod
    def from_validation(cls, exc: Exception, *, prefix: str, event_id: str | None) -> ProtocolError:
        if not isinstance(exc, ValidationError):
            return cls("invalid_value", f"invalid {prefix}: {exc}", prefix, event_id)
        first = exc.errors(include_url=False)[0]
        location = ".".join(str(part) for part in (prefix, *first["loc"]) if part != "")
        kind = first["type"]
        if kind == "extra_forbidden":
            return cls("unknown_parameter", f"Unknown parameter: '{location}'.", location, event_id)
        if kind == "missing":
            return cls(
                "missing_required_parameter",
                f"Missing required parameter: '{location}'.",
                location,
                event_id,
            )
        detail = first["msg"]
        return cls(
            "invalid_value", f"Invalid value for '{location}': {detail}.", location, event_id
        )
