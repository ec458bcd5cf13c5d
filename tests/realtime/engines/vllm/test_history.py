"""Long conversations are cut to the model's context, oldest turns first, rarely."""

from __future__ import annotations

import itertools

import numpy as np

from realtime.conversation import (
    AssistantItem,
    Conversation,
    SystemTextItem,
    UserAudioItem,
    UserTextItem,
)
from realtime.engines.vllm.history import HistoryWindow, estimated_tokens


def audio_turn(index: int, seconds: float = 10.0) -> UserAudioItem:
    return UserAudioItem(f"u{index}", [np.zeros(int(seconds * 16_000), np.int16)])


def conversation(turns: int) -> Conversation:
    items: list = [SystemTextItem("sys", "Answer in English.")]
    for index in range(turns):
        items.append(audio_turn(index))
        items.append(AssistantItem(f"a{index}", "A short reply. " * 5, status="completed"))
    items.append(audio_turn(turns))
    return Conversation("You are a helpful voice assistant.", tuple(items))


def ids(convo: Conversation) -> list[str]:
    return [item.id for item in convo.items]


def test_ten_seconds_of_audio_costs_127_prompt_tokens_plus_the_turn_overhead() -> None:
    assert estimated_tokens(audio_turn(0)) == 127 + 4


def test_a_conversation_within_the_budget_is_sent_whole() -> None:
    window = HistoryWindow(max_prompt_tokens=4096)
    convo = conversation(5)
    assert window.fit(convo) is convo


def test_over_the_budget_the_oldest_turns_go_and_system_items_and_the_last_turn_stay() -> None:
    window = HistoryWindow(max_prompt_tokens=1000)
    fitted = window.fit(conversation(20))
    kept = ids(fitted)
    assert kept[0] == "sys" and kept[-1] == "u20"
    assert "u0" not in kept and "a0" not in kept
    assert sum(estimated_tokens(item) for item in fitted.items) <= 750 + 20
    assert window.dropped_items > 0


def test_the_cut_moves_rarely_so_the_cached_prefix_survives_several_turns() -> None:
    window = HistoryWindow(max_prompt_tokens=1000)
    firsts = []
    for turns in range(20, 30):
        fitted = window.fit(conversation(turns))
        firsts.append(ids(fitted)[1])
    changes = sum(1 for a, b in itertools.pairwise(firsts) if a != b)
    assert changes <= 4


def test_no_budget_keeps_everything() -> None:
    convo = conversation(50)
    assert HistoryWindow(None).fit(convo) is convo


def test_text_turns_count_by_their_bytes() -> None:
    assert estimated_tokens(UserTextItem("t", "x" * 300)) == 100 + 1 + 4
