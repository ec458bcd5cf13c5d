"""Request bodies for vLLM: roles, audio parts, the 25 s limit, history, continuation, prefill."""

from __future__ import annotations

import base64
import io
import json
import wave
from typing import Any

import numpy as np
import pytest

from realtime.conversation import (
    AssistantItem,
    Conversation,
    FunctionCallItem,
    FunctionCallOutputItem,
    SystemTextItem,
    UserAudioItem,
    UserTextItem,
)
from realtime.engines.base import Continuation, EngineRequest, ToolChoice, ToolSpec
from realtime.engines.vllm.options import VllmOptions
from realtime.engines.vllm.prompt import AudioPartCache, chat_body, encode_body

RATE = 16_000
OPTIONS = VllmOptions(urls=("http://127.0.0.1:1/v1",), stop_token_ids=(559,), temperature=1.0)


def tone(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(round(seconds * RATE)) * 2000).astype(np.int16)


def decode_part(part: dict[str, Any]) -> tuple[int, int, np.ndarray]:
    """(sample rate, channels, samples) of an input_audio part's WAV."""
    assert part["type"] == "input_audio"
    payload = part["input_audio"]
    assert isinstance(payload, dict) and payload["format"] == "wav"
    with wave.open(io.BytesIO(base64.b64decode(payload["data"]))) as reader:
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
        return reader.getframerate(), reader.getnchannels(), samples


def body_for(conversation: Conversation, **request: Any) -> dict[str, Any]:
    return chat_body(EngineRequest(conversation, **request), OPTIONS, AudioPartCache())


def test_a_spoken_turn_is_one_user_message_with_each_chunk_its_own_audio_part() -> None:
    chunks = [tone(2.0, 1), tone(2.0, 2), tone(0.7, 3)]
    body = body_for(Conversation("Be brief.", (UserAudioItem("u1", chunks),)))

    messages = body["messages"]
    assert isinstance(messages, list)
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1]["role"] == "user" and len(messages) == 2
    decoded = [decode_part(part) for part in messages[1]["content"]]
    assert [(rate, channels) for rate, channels, _ in decoded] == [(RATE, 1)] * 3
    for (_, _, samples), chunk in zip(decoded, chunks, strict=True):
        np.testing.assert_array_equal(samples, chunk)


def test_audio_over_25_seconds_is_split_into_parts_of_at_most_25_seconds() -> None:
    long_chunk = tone(61.0)
    body = body_for(Conversation("", (UserAudioItem("u1", [long_chunk]),)))

    parts = body["messages"][0]["content"]
    lengths = [len(decode_part(part)[2]) / RATE for part in parts]
    assert len(parts) == 3 and max(lengths) <= 25.0
    joined = np.concatenate([decode_part(part)[2] for part in parts])
    np.testing.assert_array_equal(joined, long_chunk)


def test_a_chunk_of_a_few_milliseconds_is_padded_with_silence_to_a_tenth_of_a_second() -> None:
    tail = tone(0.004)
    body = body_for(Conversation("", (UserAudioItem("u1", [tone(2.0), tail]),)))

    _, _, samples = decode_part(body["messages"][0]["content"][1])
    assert len(samples) == RATE // 10
    np.testing.assert_array_equal(samples[: len(tail)], tail)
    assert not samples[len(tail) :].any()


def test_history_keeps_roles_and_the_assistant_reply_text_without_its_reasoning() -> None:
    items = (
        SystemTextItem("s1", "Speak English."),
        UserAudioItem("u1", [tone(1.0)]),
        AssistantItem("a1", "Cut off after these words", reasoning="hidden", status="incomplete"),
        UserTextItem("u2", "and now?"),
        AssistantItem("a2", "", reasoning="nothing was played", status="incomplete"),
        UserAudioItem("u3", [tone(1.0, 5)]),
    )
    messages = body_for(Conversation("", items))["messages"]

    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "user"]
    assert messages[2] == {"role": "assistant", "content": "Cut off after these words"}
    assert messages[3] == {"role": "user", "content": "and now?"}
    assert "hidden" not in json.dumps(messages) and "</think>" not in json.dumps(messages)


def test_a_streaming_request_asks_for_special_tokens_the_stop_id_and_usage() -> None:
    body = body_for(Conversation("", (UserTextItem("u1", "hi"),)), max_tokens=64)

    assert body["model"] == "Step-Audio-R1"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert body["skip_special_tokens"] is False
    assert body["stop_token_ids"] == [559]
    assert body["max_tokens"] == 64 and body["temperature"] == 1.0
    assert "continue_final_message" not in body and "add_generation_prompt" not in body


def test_a_continuation_becomes_a_final_assistant_message_that_vllm_continues() -> None:
    closed = Continuation("They want food.", "Try rice", reasoning_closed=True)
    body = body_for(Conversation("", (UserTextItem("u1", "dinner?"),)), continuation=closed)

    prefix = "<think>\nThey want food.\n</think>\n\nTry rice"
    assert body["messages"][-1] == {"role": "assistant", "content": prefix}
    assert body["continue_final_message"] is True
    assert body["add_generation_prompt"] is False


def test_a_prefill_asks_for_one_token_without_streaming_or_stream_options() -> None:
    conversation = Conversation("", (UserAudioItem("u1", [tone(2.0)], complete=False),))
    options = VllmOptions(urls=OPTIONS.urls, extra_body={"min_tokens": 30, "top_p": 0.9})
    body = chat_body(
        EngineRequest(conversation, max_tokens=500), options, AudioPartCache(), prefill=True
    )

    assert body["stream"] is False and body["max_tokens"] == 1
    assert "stream_options" not in body and "min_tokens" not in body


def test_extra_body_fields_go_into_generation_requests() -> None:
    options = VllmOptions(urls=OPTIONS.urls, extra_body={"top_p": 0.9, "repetition_penalty": 1.05})
    body = chat_body(EngineRequest(Conversation("", ())), options, AudioPartCache())

    assert body["top_p"] == 0.9 and body["repetition_penalty"] == 1.05


def test_extra_body_may_not_override_what_the_engine_sets() -> None:
    with pytest.raises(ValueError, match="stream"):
        VllmOptions(urls=OPTIONS.urls, extra_body={"stream": False})


def test_a_prefill_and_the_final_request_share_their_audio_bytes_as_a_prefix() -> None:
    cache = AudioPartCache()
    chunks = [tone(2.0, 1), tone(2.0, 2)]
    ongoing = UserAudioItem("u1", list(chunks), complete=False)
    prefill = chat_body(EngineRequest(Conversation("", (ongoing,))), OPTIONS, cache, prefill=True)
    final_item = UserAudioItem("u1", [*chunks, tone(0.8, 3)])
    final = chat_body(EngineRequest(Conversation("", (final_item,))), OPTIONS, cache)

    prefill_parts = prefill["messages"][0]["content"]
    final_parts = final["messages"][0]["content"]
    assert final_parts[: len(prefill_parts)] == prefill_parts
    assert len(final_parts) == len(prefill_parts) + 1


def test_each_chunk_is_encoded_once_and_forgotten_when_it_leaves_the_conversation() -> None:
    cache = AudioPartCache()
    first = UserAudioItem("u1", [tone(1.0, 1)])
    second = UserAudioItem("u2", [tone(1.0, 2)])
    chat_body(EngineRequest(Conversation("", (first, second))), OPTIONS, cache)
    data = cache.encoded(first.chunks[0], 25.0)

    assert cache.encoded(first.chunks[0], 25.0) is data
    cache.retain(Conversation("", (second,)))
    assert len(cache) == 1


def test_an_encoded_body_is_compact_json() -> None:
    body = body_for(Conversation("", (UserTextItem("u1", "hi"),)))

    assert json.loads(encode_body(body)) == body


def test_tools_go_in_the_body_for_the_template_and_vllm_parses_nothing() -> None:
    tool = ToolSpec("get_weather", "The weather in a city", {"type": "object", "properties": {}})
    body = body_for(Conversation("", (UserTextItem("u1", "weather?"),)), tools=(tool,))

    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    assert body["tool_choice"] == "none"


def test_tool_choice_none_shows_the_model_no_tools() -> None:
    tool = ToolSpec("get_weather")
    conversation = Conversation("", (UserTextItem("u1", "weather?"),))
    body = body_for(conversation, tools=(tool,), tool_choice=ToolChoice("none"))
    assert "tools" not in body and "tool_choice" not in body


def test_a_call_and_its_result_go_back_in_the_models_own_format() -> None:
    items = (
        UserTextItem("u1", "weather in Paris?"),
        AssistantItem("a1", "Let me check.", status="completed"),
        FunctionCallItem("f1", "call_1", "get_weather", '{"city": "Paris"}'),
        FunctionCallOutputItem("o1", "call_1", '{"sky": "clear"}'),
    )
    messages = body_for(Conversation("", items))["messages"]

    assert messages[1] == {
        "role": "assistant",
        "content": 'Let me check.<tool_call>function\nget_weather\n{"city": "Paris"}</tool_call>',
    }
    assert messages[2] == {"role": "tool", "content": '{"sky": "clear"}', "tool_call_id": "call_1"}
    assert len(messages) == 3
