"""Step-Audio's text format, spelled once: the reasoning block and the function-call markers.

Step-Audio-R1's generation prompt opens the assistant message with ``<think>\\n``; the model
reasons, closes the block with ``</think>`` and writes its reply. A function call is written
in the reply as ``<tool_call>function\\n{name}\\n{JSON arguments}</tool_call>`` (the format of
the ``step_audio_2`` tool parser in StepFun's vLLM fork,
``vllm/entrypoints/openai/tool_parsers/step_audio_2_tool_parser.py``); a reply may hold text
before a call, and several calls.
"""

from __future__ import annotations

from realtime.engines.base import Continuation

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
GENERATION_PROMPT = f"{THINK_OPEN}\n"
"""What the template's generation prompt puts after ``<|BOT|>assistant\\n``."""
REASONING_END = f"{THINK_CLOSE}\n\n"
"""How the model closes its reasoning block before the reply."""

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
TOOL_CALL_TYPE = "function"


def assistant_text(continuation: Continuation) -> str:
    """The assistant message so far: ``<think>\\n`` + reasoning [+ ``</think>\\n\\n`` + reply].

    A newline goes before ``</think>`` unless the reasoning is empty or already ends with
    one (reasoning cut mid-sentence still closes on a line of its own, as the model writes it).
    """
    text = GENERATION_PROMPT + continuation.reasoning
    if not continuation.reasoning_closed:
        return text
    reasoning = continuation.reasoning
    newline = "" if not reasoning or reasoning.endswith("\n") else "\n"
    return f"{text}{newline}{REASONING_END}{continuation.reply}"


def tool_call_text(name: str, arguments: str) -> str:
    """A function call as the model writes it."""
    return f"{TOOL_CALL_OPEN}{TOOL_CALL_TYPE}\n{name}\n{arguments}{TOOL_CALL_CLOSE}"


def call_opening(function: str | None = None) -> str:
    """The start of a call, up to where the model writes the rest: the function's name
    (``function`` None) or, with the name given, its arguments."""
    opening = f"{TOOL_CALL_OPEN}{TOOL_CALL_TYPE}\n"
    return opening if function is None else f"{opening}{function}\n"


def partial_marker_suffix(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``marker``: text a
    streaming splitter must hold back, since the next delta may complete the marker."""
    for length in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-length:]):
            return length
    return 0
