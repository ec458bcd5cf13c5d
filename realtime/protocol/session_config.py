"""The session configuration in the OpenAI Realtime (GA) shape, plus this service's extensions.

A ``session.update`` carries a partial session: it is deep-merged into the current
configuration and the result is validated as a whole, so a bad update changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from realtime.protocol.errors import ProtocolError
from tokenizer.g711 import G711_SAMPLE_RATE

SUPPORTED_RATES = (16_000, 24_000)
ReasoningEffort = Literal["minimal", "low", "medium", "high", "xhigh"]
SpeakingPolicyName = Literal["after-think", "mps", "speak-first"]

# The OpenAI session fields this service accepts but does not act on.
_IGNORED_OPENAI_FIELDS = ("tracing", "include", "truncation", "prompt")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PcmFormat(_Strict):
    """Little-endian PCM16 at 16 or 24 kHz."""

    type: Literal["audio/pcm"] = "audio/pcm"
    rate: Literal[16000, 24000] = 24_000


class PcmuFormat(_Strict):
    """G.711 μ-law, 8 kHz (telephony)."""

    type: Literal["audio/pcmu"] = "audio/pcmu"

    @property
    def rate(self) -> int:
        return G711_SAMPLE_RATE


class PcmaFormat(_Strict):
    """G.711 A-law, 8 kHz (telephony)."""

    type: Literal["audio/pcma"] = "audio/pcma"

    @property
    def rate(self) -> int:
        return G711_SAMPLE_RATE


def _format_tag(value: Any) -> str:
    """A format's ``type``; absent means PCM, as in OpenAI's models where it is optional."""
    found = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return str(found) if found is not None else "audio/pcm"


AudioFormat = Annotated[
    Annotated[PcmFormat, Tag("audio/pcm")]
    | Annotated[PcmuFormat, Tag("audio/pcmu")]
    | Annotated[PcmaFormat, Tag("audio/pcma")],
    Discriminator(_format_tag),
]
_AUDIO_FORMAT_TAGS = frozenset({"audio/pcm", "audio/pcmu", "audio/pcma"})


# server_vad's defaults (OpenAI's); the turn detector's parameters default to them too.
DEFAULT_VAD_THRESHOLD = 0.5
DEFAULT_PREFIX_PADDING_MS = 300
DEFAULT_SILENCE_DURATION_MS = 500


class ServerVad(_Strict):
    """End of turn after a fixed silence (``silence_duration_ms``)."""

    type: Literal["server_vad"] = "server_vad"
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] = DEFAULT_VAD_THRESHOLD
    prefix_padding_ms: Annotated[int, Field(ge=0, le=5_000)] = DEFAULT_PREFIX_PADDING_MS
    silence_duration_ms: Annotated[int, Field(ge=50, le=10_000)] = DEFAULT_SILENCE_DURATION_MS
    create_response: bool = True
    interrupt_response: bool = True
    idle_timeout_ms: Annotated[int, Field(ge=1_000, le=600_000)] | None = None


Eagerness = Literal["low", "medium", "high", "auto"]


class SemanticVad(_Strict):
    """End of turn decided by a turn-completion model (Smart Turn v3.2) at each pause.

    OpenAI's GA shape: only ``eagerness`` tunes it (see ``realtime/turns/end_of_turn.py``
    for what each value means here); the VAD underneath uses server_vad's defaults.
    """

    type: Literal["semantic_vad"] = "semantic_vad"
    eagerness: Eagerness = "auto"
    create_response: bool = True
    interrupt_response: bool = True


TurnDetection = Annotated[ServerVad | SemanticVad, Field(discriminator="type")]
_TURN_DETECTION_TAGS = frozenset({"server_vad", "semantic_vad"})
_UNION_TAGS = _TURN_DETECTION_TAGS | _AUDIO_FORMAT_TAGS


class InputTranscription(_Strict):
    """Accepted for compatibility; the engine decides whether it transcribes (``echo`` does)."""

    model: str | None = None
    language: str | None = None
    prompt: str | None = None


class NoiseReduction(_Strict):
    """Input noise reduction before the VAD and the engine (null: off). ``near_field`` for a
    headset or phone held to the mouth, ``far_field`` (stronger) for a laptop or room mic."""

    type: Literal["near_field", "far_field"]


class EchoCancellation(_Strict):
    """Extension: cancel the echo of the reply in the input on the server (null: off), with
    the reply audio sent as the reference. For clients that play the reply through a
    loudspeaker and do not cancel its echo themselves (browsers do)."""

    type: Literal["server"] = "server"


PHONE_CALLS_CANCEL_ECHO = True
"""The server's default for phone calls (a phone on speaker hears the reply; Twilio's media
streams do not cancel it)."""


class InputAudio(_Strict):
    format: AudioFormat = Field(default_factory=PcmFormat)
    turn_detection: TurnDetection | None = Field(default_factory=ServerVad)
    transcription: InputTranscription | None = None
    noise_reduction: NoiseReduction | None = None
    x_echo_cancellation: EchoCancellation | None = None


class OutputAudio(_Strict):
    format: AudioFormat = Field(default_factory=PcmFormat)
    voice: str | None = None
    speed: Annotated[float, Field(ge=0.25, le=1.5)] = 1.0


class AudioConfig(_Strict):
    input: InputAudio = Field(default_factory=InputAudio)
    output: OutputAudio = Field(default_factory=OutputAudio)


class Reasoning(_Strict):
    effort: ReasoningEffort | None = None


class Speaking(_Strict):
    """Extension: how reply speech is scheduled against the model's reasoning.

    ``policy`` is one of ``after-think`` (speak once reasoning is over), ``mps``
    (Mind-Paced Speaking) and ``speak-first``. Clients that do not know it leave it out.
    """

    policy: SpeakingPolicyName | None = None
    formulation_tokens: Annotated[int, Field(ge=8, le=2_048)] | None = None
    articulation_tokens: Annotated[int, Field(ge=4, le=512)] | None = None
    max_buffered_audio_ms: Annotated[int, Field(ge=200, le=30_000)] | None = None


class FunctionTool(_Strict):
    """A function the model may call (OpenAI's ``RealtimeFunctionTool``)."""

    type: Literal["function"] = "function"
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)


class FunctionChoice(_Strict):
    """``tool_choice`` naming the one function the model must call."""

    type: Literal["function"] = "function"
    name: str


ToolChoiceSetting = Literal["auto", "none", "required"] | FunctionChoice


def check_tool_choice(tools: list[FunctionTool], choice: ToolChoiceSetting) -> None:
    """A named ``tool_choice`` must name one of the ``tools``."""
    if isinstance(choice, FunctionChoice) and choice.name not in {t.name for t in tools}:
        raise ValueError(f"tool_choice names '{choice.name}', which is not one of the tools")


class SessionConfig(_Strict):
    """What a session runs with. Every field has the value OpenAI's API documents as default."""

    type: Literal["realtime", "transcription"] = "realtime"
    """``transcription``: audio in, transcripts out, no replies (OpenAI's transcription
    sessions; only ``audio.input`` applies)."""
    object: Literal["realtime.session"] = "realtime.session"
    id: str = ""
    model: str = ""
    instructions: str = ""
    output_modalities: list[Literal["audio", "text"]] = Field(
        default_factory=lambda: ["audio"]  # type: ignore[arg-type]
    )
    audio: AudioConfig = Field(default_factory=AudioConfig)
    max_output_tokens: Annotated[int, Field(ge=1, le=32_768)] | Literal["inf"] = "inf"
    reasoning: Reasoning = Field(default_factory=Reasoning)
    tools: Annotated[list[FunctionTool], Field(max_length=128)] = Field(default_factory=list)
    tool_choice: ToolChoiceSetting = "auto"
    parallel_tool_calls: bool = True
    """False: a reply makes at most one function call (a further one gets an error)."""
    speaking: Speaking = Field(default_factory=Speaking)
    expires_at: int = 0

    @field_validator("output_modalities")
    @classmethod
    def _one_modality(cls, value: list[str]) -> list[str]:
        if len(value) != 1:
            raise ValueError("must be exactly one of ['audio'] or ['text']")
        return value

    @field_validator("tools")
    @classmethod
    def _distinct_names(cls, value: list[FunctionTool]) -> list[FunctionTool]:
        names = [tool.name for tool in value]
        if len(set(names)) != len(names):
            raise ValueError("tool names must be distinct")
        return value

    @model_validator(mode="after")
    def _choice_names_a_tool(self) -> SessionConfig:
        check_tool_choice(self.tools, self.tool_choice)
        return self

    @property
    def input_rate(self) -> int:
        return self.audio.input.format.rate

    @property
    def output_rate(self) -> int:
        return self.audio.output.format.rate

    @property
    def speaks(self) -> bool:
        return self.output_modalities == ["audio"]

    @property
    def transcribes_only(self) -> bool:
        return self.type == "transcription"

    def wire(self) -> dict[str, Any]:
        """The session object as sent in ``session.created`` / ``session.updated``."""
        body = self.model_dump(mode="json")
        if not self.transcribes_only:
            return body
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": body["id"],
            "audio": {"input": body["audio"]["input"]},
            "include": None,
            "expires_at": body["expires_at"],
        }


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``patch`` merged into ``base``; an object whose ``type`` changes (turn_detection going
    from server_vad to semantic_vad) is replaced, not merged."""
    merged = dict(base)
    for key, value in patch.items():
        current = merged.get(key)
        if (
            isinstance(value, dict)
            and isinstance(current, dict)
            and value.get("type", current.get("type")) == current.get("type")
        ):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged


_READ_ONLY = ("id", "object", "expires_at")


def apply_session_update(current: SessionConfig, patch: Any, event_id: str | None) -> SessionConfig:
    """Return ``current`` updated by ``patch`` (the ``session`` object of a session.update).

    Raises ``ProtocolError`` naming the offending parameter; ``current`` is never modified.
    """
    if not isinstance(patch, dict):
        raise ProtocolError("invalid_value", "'session' must be an object", "session", event_id)
    patch = dict(patch)
    if patch.get("type", current.type) not in ("realtime", "transcription"):
        raise ProtocolError(
            "invalid_value",
            "session.type must be 'realtime' or 'transcription'",
            "session.type",
            event_id,
        )
    for key in _IGNORED_OPENAI_FIELDS:
        patch.pop(key, None)
    for key in _READ_ONLY:
        if key in patch and patch[key] != getattr(current, key):
            raise ProtocolError(
                "invalid_value", f"session.{key} cannot be changed", f"session.{key}", event_id
            )
    if "model" in patch and patch["model"] not in ("", current.model):
        patch.pop("model")  # the engine is fixed per server; accept clients that name theirs
    try:
        merged = _deep_merge(current.model_dump(mode="python"), patch)
        return SessionConfig.model_validate(merged)
    except RecursionError:
        raise ProtocolError(
            "invalid_value", "'session' is nested too deeply", "session", event_id
        ) from None
    except Exception as exc:
        raise ProtocolError.from_validation(
            exc, prefix="session", event_id=event_id, union_tags=_UNION_TAGS
        ) from exc
