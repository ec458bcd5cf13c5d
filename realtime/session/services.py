"""What every session of one service shares: engine, TTS, VAD, policies, metrics, settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from realtime.engines.base import Engine
from realtime.protocol.client_events import DEFAULT_MAX_EVENT_BYTES
from realtime.protocol.session_config import PHONE_CALLS_CANCEL_ECHO, SessionConfig
from realtime.session.limits import MAX_HISTORY_BYTES, MAX_SESSION_S
from realtime.session.outbox import DEFAULT_LEAD_MS, Outgoing
from realtime.session.rate_limits import RateLimits
from realtime.speaking.base import SpeakingParams, SpeakingPolicy
from realtime.speaking.factory import DEFAULT_POLICY
from realtime.telemetry.metrics import ServiceMetrics
from realtime.telemetry.tracing import Tracing
from realtime.turns.end_of_turn import TurnScorer
from realtime.turns.input import TurnSettings
from realtime.turns.vad import VadBatcher
from tts.base import TextToSpeech

# Reasoning budget (max reasoning tokens) for each OpenAI ``reasoning.effort``;
# None means "until the model closes its reasoning block".
DEFAULT_REASONING_BUDGETS: Mapping[str, int | None] = {
    "minimal": 0,
    "low": 256,
    "medium": 1024,
    "high": 4096,
    "xhigh": None,
}


@dataclass(frozen=True)
class SessionSettings:
    """Server-side knobs, set from the command line, the same for every session."""

    default_config: SessionConfig = field(default_factory=SessionConfig)
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_input_buffer_s: float = 600.0
    max_history_bytes: int = MAX_HISTORY_BYTES
    """The conversation's items (audio and text) beyond this are dropped, oldest first: about
    8 minutes of user audio, well past what the engine's prompt window keeps."""
    max_session_s: float = MAX_SESSION_S
    rate_limits: RateLimits = field(default_factory=RateLimits)
    frame_ms: int = 20
    audio_lead_ms: float = DEFAULT_LEAD_MS
    max_buffered_reply_ms: float = SpeakingParams.max_buffered_audio_ms
    incremental_prefill: bool = True
    turns: TurnSettings = field(default_factory=TurnSettings)
    phone_echo_cancellation: bool = PHONE_CALLS_CANCEL_ECHO
    default_policy: str = DEFAULT_POLICY
    # Mind-Paced Speaking: reasoning tokens per formulation segment (Tc), the first one
    # (None: Tc), and reply tokens per articulation (Tr); session.speaking overrides them.
    formulation_tokens: int = SpeakingParams.formulation_tokens
    first_formulation_tokens: int | None = SpeakingParams.first_formulation_tokens
    articulation_tokens: int = SpeakingParams.articulation_tokens
    reasoning_budgets: Mapping[str, int | None] = field(
        default_factory=lambda: dict(DEFAULT_REASONING_BUDGETS)
    )
    default_reasoning_budget: int | None = None


class TransportClosed(Exception):
    """The peer is gone: nothing more can be delivered (a normal end, not an error)."""


class TransportSink(Protocol):
    """Where a session's outgoing items go: a WebSocket, or a WebRTC data channel + track."""

    name: str

    async def deliver(self, item: Outgoing) -> None:
        """Raises ``TransportClosed`` once the peer is gone."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """End the transport (a WebSocket close code; others map it), after what was
        delivered."""
        ...


@dataclass
class SessionServices:
    engine: Engine
    tts: TextToSpeech
    vad: VadBatcher
    policies: Mapping[str, SpeakingPolicy]
    metrics: ServiceMetrics
    settings: SessionSettings
    turn_scorer: TurnScorer | None = None
    """semantic_vad's turn-completion model (Smart Turn); None: semantic_vad is refused."""
    tracing: Tracing = field(default_factory=Tracing)
    """OpenTelemetry traces of sessions and turns (off by default)."""
    extras: dict[str, Any] = field(default_factory=dict)
