"""Protocol errors: what a client did wrong, phrased as an OpenAI Realtime ``error`` event."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from realtime.events import ErrorReported


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

    def event(self) -> ErrorReported:
        """The event that tells the client."""
        return ErrorReported(self.code, self.message, self.param, self.event_id, type=self.type)

    @classmethod
    def from_validation(
        cls,
        exc: Exception,
        *,
        prefix: str,
        event_id: str | None,
        union_tags: frozenset[str] = frozenset(),
    ) -> ProtocolError:
        """``union_tags``: the tags of discriminated unions in the model, which pydantic puts
        in an error's location (``turn_detection.server_vad.threshold``) but a client's
        parameter path never holds."""
        if not isinstance(exc, ValidationError):
            return cls("invalid_value", f"invalid {prefix}: {exc}", prefix, event_id)
        first = exc.errors(include_url=False)[0]
        parts = (prefix, *first["loc"])
        location = ".".join(str(p) for p in parts if p != "" and p not in union_tags)
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
