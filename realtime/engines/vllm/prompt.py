"""A conversation as a vLLM chat completions request body for Step-Audio-R1.

Messages use the OpenAI roles; Step-Audio-R1's chat template renders ``user`` as ``human``.
The session's instructions and system items are ``system`` messages; a user audio item is
one ``user`` message whose chunks are each an ``input_audio`` part (16 kHz mono WAV, never
longer than ``max_audio_item_s``: longer chunks are split at quiet points); a user text
item is a ``user`` message; an assistant item is its reply text only, cut to what was
played when a barge-in stopped it (reasoning never goes back into the history: the model
would see a closed reasoning block and not reason again). Function calls go back the way
the model wrote them, ``<tool_call>function\n{name}\n{arguments}</tool_call>`` after the
reply text of the same assistant message; a call's result is a ``tool`` message, which
Step-Audio-R1's template renders ``<|BOT|>tool\n{output}<|EOT|>``. A ``Continuation`` is a
final ``assistant`` message that vLLM continues (``continue_final_message``). Tools go in
the body's ``tools`` for the template to render (``<|BOT|>tool_json_schemas\n...``) with
``tool_choice: none``: vLLM parses nothing, the engine reads calls from the raw text.

Audio parts are identical bytes from one request to the next (the prefix cache keys audio
by its content), and each chunk is encoded once per session (``AudioPartCache``). A chunk
shorter than ``MIN_AUDIO_ITEM_S`` (the few milliseconds left after the last chunk a turn
closed early) is padded with silence: vLLM rejects an audio item too short to give one
audio embedding, and the whole request with it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from realtime.conversation import (
    AssistantItem,
    Conversation,
    FunctionCallItem,
    FunctionCallOutputItem,
    SystemTextItem,
    UserAudioItem,
    UserTextItem,
)
from realtime.engines.base import Continuation, EngineRequest, ToolSpec
from realtime.engines.step_audio import assistant_text, tool_call_text
from realtime.engines.vllm.options import VllmOptions
from tokenizer import ENGINE_SAMPLE_RATE
from tokenizer.chunking import split_for_engine
from tokenizer.pcm import wav_bytes

Message = dict[str, Any]
MIN_AUDIO_ITEM_S = 0.1


def padded(pcm16k: np.ndarray, min_seconds: float = MIN_AUDIO_ITEM_S) -> np.ndarray:
    """``pcm16k`` with silence appended up to ``min_seconds``."""
    short = round(min_seconds * ENGINE_SAMPLE_RATE) - len(pcm16k)
    if short <= 0:
        return pcm16k
    return np.concatenate([pcm16k, np.zeros(short, dtype=pcm16k.dtype)])


class AudioPartCache:
    """Base64 WAV of each audio chunk of one session, encoded once.

    Keyed by the chunk array's identity (the session hands the same arrays to every
    request of a turn and keeps them in its history); ``retain`` forgets chunks that left
    the conversation. Used from worker threads: a lost update only means encoding again.
    """

    def __init__(self) -> None:
        self._encoded: dict[int, tuple[np.ndarray, tuple[str, ...]]] = {}

    def encoded(self, chunk: np.ndarray, max_seconds: float) -> tuple[str, ...]:
        entry = self._encoded.get(id(chunk))
        if entry is not None and entry[0] is chunk:
            return entry[1]
        pieces = split_for_engine(chunk, max_seconds=max_seconds) if len(chunk) else []
        encoded = tuple(
            base64.b64encode(wav_bytes(padded(piece), ENGINE_SAMPLE_RATE)).decode("ascii")
            for piece in pieces
        )
        self._encoded[id(chunk)] = (chunk, encoded)
        return encoded

    def retain(self, conversation: Conversation) -> None:
        live = {
            id(chunk)
            for item in conversation.items
            if isinstance(item, UserAudioItem)
            for chunk in item.chunks
        }
        self._encoded = {key: entry for key, entry in self._encoded.items() if key in live}

    def __len__(self) -> int:
        return len(self._encoded)


def audio_parts(item: UserAudioItem, cache: AudioPartCache, max_seconds: float) -> list[Message]:
    """One ``input_audio`` part per chunk (more for a chunk over ``max_seconds``)."""
    return [
        {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}
        for chunk in item.chunks
        for data in cache.encoded(chunk, max_seconds)
    ]


def chat_messages(
    conversation: Conversation,
    continuation: Continuation | None,
    cache: AudioPartCache,
    max_audio_item_s: float,
    reply_suffix: str = "",
) -> list[Message]:
    """The request's messages; ``reply_suffix`` is text the engine itself puts after the
    continuation's reply (the opening of a call it makes the model write)."""
    messages: list[Message] = []
    if conversation.instructions.strip():
        messages.append({"role": "system", "content": conversation.instructions})
    assistant: list[str] = []  # the text of the assistant message being gathered

    def close_assistant() -> None:
        if assistant:
            messages.append({"role": "assistant", "content": "".join(assistant)})
            assistant.clear()

    for item in conversation.items:
        if isinstance(item, AssistantItem):
            if item.text.strip():
                assistant.append(item.text)
            continue
        if isinstance(item, FunctionCallItem):
            assistant.append(tool_call_text(item.name, item.arguments))
            continue
        close_assistant()
        if isinstance(item, SystemTextItem):
            messages.append({"role": "system", "content": item.text})
        elif isinstance(item, UserTextItem):
            messages.append({"role": "user", "content": item.text})
        elif isinstance(item, UserAudioItem):
            parts = audio_parts(item, cache, max_audio_item_s)
            if parts:
                messages.append({"role": "user", "content": parts})
        elif isinstance(item, FunctionCallOutputItem):
            messages.append({"role": "tool", "content": item.output, "tool_call_id": item.call_id})
    close_assistant()
    if continuation is not None:
        text = assistant_text(continuation) + reply_suffix
        messages.append({"role": "assistant", "content": text})
    return messages


def tool_schemas(tools: tuple[ToolSpec, ...]) -> list[Message]:
    """Tools in the chat completions shape, which the template writes out as JSON."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters or {"type": "object", "properties": {}},
            },
        }
        for tool in tools
    ]


def chat_body(
    request: EngineRequest,
    options: VllmOptions,
    cache: AudioPartCache,
    *,
    prefill: bool = False,
    reply_suffix: str = "",
) -> dict[str, Any]:
    """The JSON body of a ``/chat/completions`` request.

    A prefill asks for one token without streaming (vLLM rejects ``stream_options`` on a
    request that does not stream): its point is the prompt's KV in the prefix cache.
    """
    body: dict[str, Any] = {
        "model": options.model,
        "messages": chat_messages(
            request.conversation,
            request.continuation,
            cache,
            options.max_audio_item_s,
            reply_suffix,
        ),
        "skip_special_tokens": False,
        "stop_token_ids": list(options.stop_token_ids),
    }
    if tools := request.offered_tools:
        body["tools"] = tool_schemas(tools)
        body["tool_choice"] = "none"
    if request.continuation is not None:
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    temperature = request.temperature if request.temperature is not None else options.temperature
    if temperature is not None:
        body["temperature"] = temperature
    if options.seed is not None:
        body["seed"] = options.seed
    if prefill:
        body["stream"] = False
        body["max_tokens"] = 1
        return body
    body.update(options.extra_body)
    body["stream"] = True
    # Usage on every chunk: a stream closed early (reasoning budget) still has its counts.
    body["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
    # Per-chunk token ids give exact token counts (servers that do not know it ignore it).
    body["return_token_ids"] = True
    if request.max_tokens is not None:
        body["max_tokens"] = max(1, request.max_tokens)
    return body


def encode_body(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
