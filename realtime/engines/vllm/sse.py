"""The JSON that vLLM's chat completions endpoint sends: stream chunks, usage, error bodies."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, ValidationError

STREAM_END = "[DONE]"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Delta(_Model):
    content: str | None = None
    # Servers started with a reasoning parser send the reasoning apart from the content
    # (``reasoning_content`` in older vLLM releases, ``reasoning`` in newer ones).
    reasoning_content: str | None = None
    reasoning: str | None = None


class _Choice(_Model):
    delta: _Delta | None = None
    finish_reason: str | None = None
    token_ids: list[int] | None = None


class _PromptDetails(_Model):
    cached_tokens: int | None = None


class _Usage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _PromptDetails | None = None


class _ErrorBody(_Model):
    message: str = ""
    type: str | None = None
    code: int | str | None = None


class _Chunk(_Model):
    choices: list[_Choice] = []
    usage: _Usage | None = None
    error: _ErrorBody | None = None


class _ErrorEnvelope(_Model):
    """``{"error": {...}}`` (newer vLLM) or the error's fields at the top level (older)."""

    error: _ErrorBody | None = None
    message: str | None = None


class _Completion(_Model):
    usage: _Usage | None = None


class ChunkFormatError(ValueError):
    """The server sent something that is not a chat completions chunk."""


class StreamedError(RuntimeError):
    """The server reported an error inside the stream (``data: {"error": ...}``)."""

    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ChatUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0


@dataclass(frozen=True)
class ChatChunk:
    """One stream chunk: text deltas, how many tokens they took, and the end markers."""

    content: str = ""
    reasoning: str = ""
    tokens: int = 0
    finish_reason: str | None = None
    usage: ChatUsage | None = None

    @property
    def has_tokens(self) -> bool:
        """Generated text (not the role chunk or a usage report that open a stream)."""
        return bool(self.content or self.reasoning or self.tokens)


def _usage(usage: _Usage | None) -> ChatUsage | None:
    if usage is None:
        return None
    details = usage.prompt_tokens_details
    return ChatUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_prompt_tokens=(details.cached_tokens or 0) if details else 0,
    )


def _error_code(code: int | str | None) -> int | None:
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.isdigit():
        return int(code)
    return None


def parse_chunk(data: str) -> ChatChunk:
    """One SSE ``data`` payload (not ``[DONE]``) as a chunk; raises ``StreamedError`` for an
    error payload and ``ChunkFormatError`` for anything unreadable."""
    try:
        chunk = _Chunk.model_validate_json(data)
    except ValidationError as exc:
        raise ChunkFormatError(f"unreadable stream chunk: {data[:200]!r}") from exc
    if chunk.error is not None:
        raise StreamedError(chunk.error.message or "error", _error_code(chunk.error.code))
    content: list[str] = []
    reasoning: list[str] = []
    tokens = 0
    finish_reason = None
    for choice in chunk.choices:
        delta = choice.delta or _Delta()
        text = delta.content or ""
        thought = delta.reasoning_content or delta.reasoning or ""
        content.append(text)
        reasoning.append(thought)
        if choice.token_ids is not None:
            tokens += len(choice.token_ids)
        elif text or thought:
            tokens += 1
        finish_reason = choice.finish_reason or finish_reason
    return ChatChunk(
        content="".join(content),
        reasoning="".join(reasoning),
        tokens=tokens,
        finish_reason=finish_reason,
        usage=_usage(chunk.usage),
    )


def parse_completion_usage(data: bytes) -> ChatUsage:
    """The usage of a non-streaming completion (a prefill)."""
    try:
        completion = _Completion.model_validate_json(data)
    except ValidationError as exc:
        raise ChunkFormatError(f"unreadable completion: {data[:200]!r}") from exc
    return _usage(completion.usage) or ChatUsage()


def error_message(body: bytes) -> str:
    """The message of an OpenAI-style error body, or the body itself."""
    try:
        parsed = _ErrorEnvelope.model_validate_json(body)
    except ValidationError:
        parsed = None
    if parsed is not None:
        if parsed.error is not None and parsed.error.message:
            return parsed.error.message
        if parsed.message:
            return parsed.message
    text = body.decode(errors="replace").strip()
    return text[:500] or "no error message"
