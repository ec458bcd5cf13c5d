"""Split a streamed reply into spoken text and Step-Audio function calls.

The reply (the text after ``</think>``) may hold ``<tool_call>function\\n{name}\\n{JSON
arguments}</tool_call>`` blocks (``realtime/engines/step_audio.py``). Text outside them is
reply text; a block becomes a ``ToolCall``, or an ``InvalidToolCall`` when it cannot be read
(not ``function``, no name, arguments that are not a JSON object). Deltas may cut a marker
anywhere, so text that could be the start of ``<tool_call>`` is held back until the next
delta decides it; the text of a call is never released as reply text. The result does not
depend on where the deltas were cut.
"""

from __future__ import annotations

import json

from realtime.engines.base import AnswerDelta, InvalidToolCall, ToolCall
from realtime.engines.step_audio import (
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    TOOL_CALL_TYPE,
    partial_marker_suffix,
)

ReplyEvent = AnswerDelta | ToolCall | InvalidToolCall


def parse_tool_call(body: str) -> ToolCall | InvalidToolCall:
    """The text between ``<tool_call>`` and ``</tool_call>`` as a call."""
    parts = body.strip().split("\n", 2)
    if len(parts) < 2 or parts[0].strip() != TOOL_CALL_TYPE or not parts[1].strip():
        return InvalidToolCall(
            "", body, f"expected '{TOOL_CALL_TYPE}', a function name and its arguments, each on "
            "a line of its own",
        )  # fmt: skip
    name = parts[1].strip()
    arguments = parts[2].strip() if len(parts) == 3 else ""
    if not arguments:
        return ToolCall(name, "{}")
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError as exc:
        return InvalidToolCall(name, arguments, f"its arguments are not valid JSON ({exc})")
    if not isinstance(parsed, dict):
        return InvalidToolCall(name, arguments, "its arguments are not a JSON object")
    return ToolCall(name, arguments)


class ToolCallSplitter:
    """Streaming splitter; ``feed`` each reply delta, then ``finish``.

    Token counts: each reply delta carries the tokens fed since the last one released;
    tokens inside a call are not counted as reply tokens.
    """

    def __init__(self) -> None:
        self._held = ""
        self._tokens = 0
        self._call: str | None = None  # the body of an open call, so far

    @property
    def in_call(self) -> bool:
        return self._call is not None

    def feed(self, text: str, tokens: int = 1) -> list[ReplyEvent]:
        events: list[ReplyEvent] = []
        self._tokens += tokens
        pending = self._held + text
        self._held = ""
        while pending:
            if self._call is not None:
                body = self._call + pending
                end = body.find(TOOL_CALL_CLOSE)
                if end < 0:
                    self._call = body
                    break
                events.append(parse_tool_call(body[:end]))
                self._call = None
                self._tokens = 0
                pending = body[end + len(TOOL_CALL_CLOSE) :]
                continue
            start = pending.find(TOOL_CALL_OPEN)
            if start >= 0:
                events.extend(self._reply(pending[:start]))
                self._call = ""
                pending = pending[start + len(TOOL_CALL_OPEN) :]
                continue
            keep = partial_marker_suffix(pending, TOOL_CALL_OPEN)
            events.extend(self._reply(pending[: len(pending) - keep]))
            self._held = pending[len(pending) - keep :]
            break
        return events

    def _reply(self, text: str) -> list[ReplyEvent]:
        if not text:
            return []
        tokens, self._tokens = max(1, self._tokens), 0
        return [AnswerDelta(text, tokens)]

    def finish(self, *, cut_short: bool = False) -> list[ReplyEvent]:
        """The stream ended. Held text that was not a marker after all is reply text. A call
        left open is invalid, unless the stream was ``cut_short`` (``max_tokens``): its
        continuation writes the call again."""
        held, self._held = self._held, ""
        call, self._call = self._call, None
        if call is not None:
            if cut_short:
                return []
            return [InvalidToolCall("", call, f"the call has no closing {TOOL_CALL_CLOSE}")]
        return self._reply(held)
