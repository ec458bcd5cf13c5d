"""The one door every session comes through, WebSocket or WebRTC alike: is the service
taking sessions (not draining), is the browser origin allowed, who is calling (an API key or
an ephemeral client secret), and is there room (service-wide, per key and per client
address). Other routes ask
it only who is calling.

A refusal is an HTTP response sent before the WebSocket upgrade or the SDP answer, with an
OpenAI-style JSON error body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

from realtime.server.admission import RETRY_AFTER_S, Full, LiveSessions, Slot
from realtime.server.auth import ApiKeys, presented_credential
from realtime.server.client_secrets import SECRET_PREFIX, ClientSecretError, ClientSecrets
from realtime.server.origins import OriginPolicy
from realtime.telemetry.metrics import ServiceMetrics


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str
    type: str = "invalid_request_error"
    headers: Mapping[str, str] = field(default_factory=dict)
    param: str | None = None

    def response(self) -> JSONResponse:
        body = {"error": {"type": self.type, "code": self.code, "message": self.message,
                          "param": self.param}}  # fmt: skip
        return JSONResponse(body, status_code=self.status, headers=dict(self.headers))


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: which server key (directly or through a client secret)."""

    key_id: str | None
    """None when the service has no keys."""
    session: dict[str, Any] | None = None
    """A client secret's session configuration, to apply to the session it opens."""
    ephemeral: bool = False


@dataclass(frozen=True)
class Admitted:
    caller: Caller
    slot: Slot


class Gate:
    def __init__(
        self,
        keys: ApiKeys,
        origins: OriginPolicy,
        live: LiveSessions,
        metrics: ServiceMetrics,
        *,
        metrics_token: str | None = None,
        engine_problem: Callable[[], str | None] = lambda: None,
    ) -> None:
        """``engine_problem()``: why the engine cannot take a new session now, or None."""
        self.keys = keys
        self.secrets = ClientSecrets(keys)
        self.origins = origins
        self.live = live
        self.draining = False
        self._metrics = metrics
        self._metrics_token = ApiKeys([metrics_token]) if metrics_token else None
        self._engine_problem = engine_problem

    def identify(
        self,
        headers: Mapping[str, str],
        subprotocols: Sequence[str] = (),
        *,
        allow_client_secret: bool = True,
    ) -> Caller | Refusal:
        if not self.keys:
            return Caller(None)
        credential = presented_credential(headers, subprotocols)
        if credential is None:
            return _unauthorized(
                "missing_api_key",
                "You didn't provide an API key. Provide it in an Authorization header "
                "(Bearer KEY) or, from a browser, as the WebSocket subprotocol "
                "'openai-insecure-api-key.KEY'.",
            )
        if credential.startswith(SECRET_PREFIX) and allow_client_secret:
            try:
                grant = self.secrets.verify(credential)
            except ClientSecretError as exc:
                return _unauthorized("invalid_client_secret", f"{exc}.")
            return Caller(grant.key_id, grant.session, ephemeral=True)
        name = self.keys.match(credential)
        if name is None:
            return _unauthorized("invalid_api_key", "Incorrect API key provided.")
        return Caller(name)

    def admit(
        self,
        headers: Mapping[str, str],
        subprotocols: Sequence[str] = (),
        *,
        vouched_for: str | None = None,
        address: str | None = None,
    ) -> Admitted | Refusal:
        """A session may open: a slot is taken (the caller releases it when it ends).
        ``vouched_for``: the caller was authenticated another way (a Twilio signature),
        under this name for its limits. ``address``: the client's IP address, for the
        per-address limit (None where it means nothing, as for Twilio's media servers)."""
        outcome = self._check(headers, subprotocols, vouched_for, address)
        if isinstance(outcome, Refusal):
            self._metrics.sessions_refused_total.labels(reason=outcome.code).inc()
        return outcome

    def authorize_metrics(self, headers: Mapping[str, str]) -> Refusal | None:
        if self._metrics_token is not None:
            credential = presented_credential(headers)
            if credential is None or self._metrics_token.match(credential) is None:
                return _unauthorized("invalid_metrics_token", "Incorrect metrics token provided.")
            return None
        caller = self.identify(headers, allow_client_secret=False)
        return caller if isinstance(caller, Refusal) else None

    def _check(
        self,
        headers: Mapping[str, str],
        subprotocols: Sequence[str],
        vouched_for: str | None,
        address: str | None,
    ) -> Admitted | Refusal:
        if self.draining:
            return Refusal(
                503, "server_shutting_down", "the service is shutting down; connect again "
                "to reach another replica", type="server_error",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )  # fmt: skip
        if not self.origins.allows(headers.get("origin"), headers.get("host")):
            return Refusal(
                403, "origin_not_allowed",
                f"origin {headers.get('origin')!r} may not open sessions on this service",
            )  # fmt: skip
        caller = Caller(vouched_for) if vouched_for else self.identify(headers, subprotocols)
        if isinstance(caller, Refusal):
            return caller
        if (problem := self._engine_problem()) is not None:
            return Refusal(
                503, "engine_at_capacity", f"the service is at capacity ({problem}); retry "
                f"in {RETRY_AFTER_S} s", type="server_error",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )  # fmt: skip
        slot = self.live.admit(caller.key_id, address)
        if isinstance(slot, Full):
            return Refusal(
                slot.status, slot.code, slot.message,
                type="server_error" if slot.status == 503 else "rate_limit_exceeded",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )  # fmt: skip
        return Admitted(caller, slot)


def _unauthorized(code: str, message: str) -> Refusal:
    return Refusal(401, code, message, headers={"WWW-Authenticate": "Bearer"})
