"""Split a streamed completion into reasoning and answer deltas at ``</think>``.

Step-Audio-R1's generation prompt ends with ``<think>\\n``, so a stream starts inside the
reasoning block; everything before ``</think>`` is reasoning, everything after it is the
answer. Deltas may cut the marker anywhere (``"</thi"`` + ``"nk>"``), so text that could be
the start of the marker is held back until the next delta decides it. A stream that opens
the block itself (a stray ``<think>`` first, as with a template whose generation prompt
lacks it) has that opener dropped. The result does not depend on where the deltas were cut.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime.engines.base import AnswerDelta, ReasoningDelta
from realtime.engines.step_audio import THINK_CLOSE, THINK_OPEN, partial_marker_suffix


@dataclass
class _Held:
    text: str = ""
    tokens: int = 0


class ThinkSplitter:
    """Streaming ``</think>`` splitter; ``feed`` each delta, then ``finish``.

    ``reasoning``: the stream starts inside the reasoning block. ``fresh_reasoning``: the
    block has no text yet, so leading whitespace and a stray ``<think>`` are dropped.
    ``fresh_answer`` (when the stream starts in the answer): the answer has no text yet, so
    its leading whitespace is dropped (the answer after ``</think>`` always starts fresh).

    Token counts: every token fed is counted once, as reasoning while the splitter is
    before the marker (the marker's own token included) and as answer after it; a delta
    that holds the marker and answer text gives one token to the reasoning side.
    """

    def __init__(
        self, *, reasoning: bool = True, fresh_reasoning: bool = True, fresh_answer: bool = True
    ) -> None:
        self.in_reasoning = reasoning
        self._fresh_reasoning = reasoning and fresh_reasoning
        self._fresh_answer = fresh_answer
        self._held = _Held()
        self.reasoning_tokens = 0
        self.answer_tokens = 0

    def feed(self, text: str, tokens: int = 1) -> list[ReasoningDelta | AnswerDelta]:
        if not self.in_reasoning:
            return self._answer(text, tokens)
        held = self._held
        held.text += text
        held.tokens += tokens
        if self._fresh_reasoning:
            start = held.text.lstrip()
            if not start or (THINK_OPEN.startswith(start) and start != THINK_OPEN):
                return []  # only whitespace so far, or maybe a stray `<think>` coming
            if start.startswith(THINK_OPEN):
                start = start[len(THINK_OPEN) :].lstrip()
                if not start:
                    held.text = ""
                    return []
            held.text = start
            self._fresh_reasoning = False
        close = held.text.find(THINK_CLOSE)
        if close >= 0:
            return self._close_reasoning(close, tokens)
        keep = partial_marker_suffix(held.text, THINK_CLOSE)
        emit = held.text[: len(held.text) - keep]
        if not emit:
            return []
        delta = ReasoningDelta(emit, held.tokens)
        self.reasoning_tokens += held.tokens
        self._held = _Held(held.text[len(emit) :])
        return [delta]

    def _close_reasoning(self, close: int, last_tokens: int) -> list[ReasoningDelta | AnswerDelta]:
        held = self._held
        before, after = held.text[:close], held.text[close + len(THINK_CLOSE) :]
        after_tokens = max(0, last_tokens - 1) if after else 0
        before_tokens = held.tokens - after_tokens
        self.reasoning_tokens += before_tokens
        self._held = _Held()
        self.in_reasoning = False
        self._fresh_answer = True
        events: list[ReasoningDelta | AnswerDelta] = []
        if before:
            events.append(ReasoningDelta(before, before_tokens))
        events.extend(self._answer(after, after_tokens))
        return events

    def _answer(self, text: str, tokens: int) -> list[ReasoningDelta | AnswerDelta]:
        self.answer_tokens += tokens
        if self._fresh_answer:
            text = text.lstrip()
            if not text:
                return []
            self._fresh_answer = False
        return [AnswerDelta(text, tokens)] if text else []

    def finish(self) -> list[ReasoningDelta | AnswerDelta]:
        """The stream ended: text held back as a possible marker is reasoning after all."""
        held, self._held = self._held, _Held()
        if not self.in_reasoning:
            return []
        self.reasoning_tokens += held.tokens
        text = held.text.lstrip() if self._fresh_reasoning else held.text
        return [ReasoningDelta(text, held.tokens)] if text else []
