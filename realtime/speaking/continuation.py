"""Continuing an assistant message: the ``<think>`` prefix of a request, reply joining, usage sums.

Step-Audio-R1's generation prompt opens the assistant message with ``<think>\\n``; the
reasoning follows, then ``</think>`` and the reply. A request that continues the message
(``EngineRequest.assistant_prefix``) therefore carries ``<think>\\n`` + the reasoning so far
+ ``</think>`` + the reply so far, and the engine writes reply text after it.
"""

from __future__ import annotations

from realtime.engines.base import EngineUsage

THINK_OPEN = "<think>\n"
THINK_CLOSE = "</think>\n\n"


def articulation_prefix(reasoning: str, reply: str) -> str:
    """``<think>\\n`` + ``reasoning`` + ``</think>\\n\\n`` + ``reply``.

    A newline goes before ``</think>`` unless the reasoning is empty or already ends with
    one (reasoning cut mid-sentence still closes on a line of its own, as the model writes it).
    """
    newline = "" if not reasoning or reasoning.endswith("\n") else "\n"
    return f"{THINK_OPEN}{reasoning}{newline}{THINK_CLOSE}{reply}"


class ReplyJoiner:
    """The reply so far, built from the text of several streams, with word boundaries kept.

    What a continuation writes goes after exactly the text it was given, so pieces are
    concatenated as they are; only whitespace is tidied: the reply does not start with
    whitespace, and a piece that starts with whitespace after text that ends with
    whitespace loses its leading whitespace (no doubled spaces at a segment boundary).
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self.tokens = 0

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def add(self, piece: str, tokens: int = 1) -> str:
        """Append ``piece``; returns the text to speak (possibly empty)."""
        self.tokens += tokens
        text = self.text
        if not text or text[-1].isspace():
            piece = piece.lstrip()
        if piece:
            self._parts.append(piece)
        return piece


def add_usage(total: EngineUsage | None, usage: EngineUsage) -> EngineUsage:
    """Token counts of several requests of one turn, added up."""
    if total is None:
        return usage
    return EngineUsage(
        prompt_tokens=total.prompt_tokens + usage.prompt_tokens,
        completion_tokens=total.completion_tokens + usage.completion_tokens,
        reasoning_tokens=total.reasoning_tokens + usage.reasoning_tokens,
        cached_prompt_tokens=total.cached_prompt_tokens + usage.cached_prompt_tokens,
    )
