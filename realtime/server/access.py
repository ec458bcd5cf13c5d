"""Who may use the service, and how much of it: the options the ``Gate`` is built from."""

from __future__ import annotations

from dataclasses import dataclass, field

from realtime.server.admission import AdmissionLimits
from realtime.server.auth import ApiKeys


@dataclass(frozen=True)
class AccessOptions:
    """Who may use the service, and how much of it."""

    keys: ApiKeys = field(default_factory=ApiKeys)
    metrics_token: str | None = None
    allowed_origins: tuple[str, ...] = ()
    limits: AdmissionLimits = field(default_factory=AdmissionLimits)
    twilio_auth_token: str | None = None
    """With API keys on, phone calls are admitted on a valid ``X-Twilio-Signature``."""
