"""Settings of the ``vllm`` engine: where the servers are, what to ask them, how long to wait."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from realtime.engines.vllm.breaker import BreakerSettings
from realtime.engines.vllm.load import LoadLimits
from tokenizer.chunking import ENGINE_ITEM_LIMIT_S, MAX_ENGINE_CHUNK_S

DEFAULT_MODEL = "Step-Audio-R1"
STEP_AUDIO_EOT_TOKEN_ID = 151665
"""``<|EOT|>`` in Step-Audio-R1's vocabulary: the end of an assistant turn."""
DEFAULT_TEMPERATURE = 0.7
"""StepFun's examples sample Step-Audio-R1 at temperature 0.7."""
RESERVED_BODY_FIELDS = frozenset(
    {
        "model", "messages", "stream", "stream_options", "continue_final_message",
        "add_generation_prompt", "skip_special_tokens", "stop_token_ids", "max_tokens",
    }
)  # fmt: skip
"""Request fields the engine sets itself; ``extra_body`` may not override them."""


@dataclass(frozen=True)
class VllmOptions:
    """How the service talks to its vLLM replicas.

    ``urls`` are OpenAI API roots (``http://HOST:PORT/v1``); their health endpoint is
    ``GET /health`` at the server root. ``timeout_s`` bounds the wait for a stream's first
    token and any later gap between two chunks; ``connect_timeout_s`` opening a connection.
    ``max_prompt_tokens`` bounds the estimated prompt: older turns are dropped to stay under
    it (12288 leaves 4096 tokens to generate with ``--max-model-len 16384``; None keeps all).
    ``extra_body`` holds more sampling parameters for every generation request (not for
    prefills), e.g. ``{"top_p": 0.9, "repetition_penalty": 1.05}``. ``session_header`` names
    the header carrying each session's stable id on every request ("" sends none): vLLM's
    production-stack router (``--routing-logic session --session-key x-session-id``) keeps
    a session on one server by it. ``breaker`` takes a replica out after repeated failures;
    ``load_limits`` say when a replica is overloaded (no new sessions, pinned ones move).
    """

    urls: tuple[str, ...]
    model: str = DEFAULT_MODEL
    stop_token_ids: tuple[int, ...] = (STEP_AUDIO_EOT_TOKEN_ID,)
    timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    health_interval_s: float = 5.0
    health_timeout_s: float = 3.0
    temperature: float | None = DEFAULT_TEMPERATURE
    seed: int | None = None
    max_audio_item_s: float = MAX_ENGINE_CHUNK_S
    max_prompt_tokens: int | None = 12_288
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    session_header: str = "x-session-id"
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    load_limits: LoadLimits = field(default_factory=LoadLimits)

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("the vllm engine needs at least one --engine-url")
        for url in self.urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"engine URL {url!r} must start with http:// or https://")
        if len(set(self.urls)) != len(self.urls):
            raise ValueError("engine URLs must be distinct")
        if min(self.timeout_s, self.connect_timeout_s, self.health_timeout_s) <= 0:
            raise ValueError("timeouts must be > 0")
        if self.health_interval_s <= 0:
            raise ValueError("health_interval_s must be > 0")
        if not 0 < self.max_audio_item_s <= ENGINE_ITEM_LIMIT_S:
            raise ValueError(f"max_audio_item_s must be in (0, {ENGINE_ITEM_LIMIT_S}]")
        if self.max_prompt_tokens is not None and self.max_prompt_tokens < 256:
            raise ValueError("max_prompt_tokens must be at least 256")
        if self.breaker.failures < 1 or self.breaker.window_s <= 0:
            raise ValueError("the breaker needs at least 1 failure in a positive window")
        limits = self.load_limits
        if limits.max_waiting <= 0 or not 0 < limits.max_kv_usage <= 1:
            raise ValueError("server limits: max waiting > 0, max KV usage in (0, 1]")
        if limits.max_sessions is not None and limits.max_sessions < 1:
            raise ValueError("server limits: max sessions >= 1")
        if reserved := sorted(RESERVED_BODY_FIELDS & set(self.extra_body)):
            raise ValueError(f"extra_body may not set {', '.join(reserved)}: the engine sets them")
