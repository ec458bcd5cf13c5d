"""EchoEngine: the loopback engine replies with pocketsphinx's transcript of the turn."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from benchmarks.harness.speech import silence, synthesize
from realtime.conversation import Conversation, UserAudioItem
from realtime.engines.base import AnswerDelta, EngineRequest, InputTranscription
from realtime.engines.echo import EchoEngine, EchoSession
from realtime.engines.pocketsphinx_asr import PocketsphinxTranscriber

COUNTING = "One two three four five six seven."
GREETING = "Hello there, how are you doing today?"


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[EchoEngine]:
    echo = EchoEngine(PocketsphinxTranscriber())
    await echo.start()
    yield echo
    await echo.aclose()


async def reply_to(session: EchoSession, item: UserAudioItem) -> tuple[str, str]:
    """The transcript the engine reports for ``item`` and the reply it streams."""
    request = EngineRequest(Conversation("", (item,)))
    heard, reply = "", ""
    async for event in session.stream(request):
        if isinstance(event, InputTranscription):
            heard = event.text
        elif isinstance(event, AnswerDelta):
            reply += event.text
    return heard, reply


async def test_a_turn_that_went_on_after_a_speculative_reply_is_decoded_whole(
    engine: EchoEngine,
) -> None:
    # A speculative reply at a pause sees the turn so far under the id the whole turn keeps;
    # when the user goes on, the turn's reply must hear all of it, not the snapshot's words.
    first = np.concatenate([synthesize(COUNTING), silence(0.3)])
    second = synthesize(GREETING)
    session = engine.open_session()
    try:
        snapshot = UserAudioItem(id="item_1", chunks=[first], complete=False)
        await session.prefill(EngineRequest(Conversation("", (snapshot,))))
        early, _ = await reply_to(session, snapshot)
        whole, reply = await reply_to(
            session, UserAudioItem(id="item_1", chunks=[first, second], complete=True)
        )
    finally:
        await session.aclose()
    assert "three" in early.split() and "doing" not in early.split()
    assert {"three", "doing"} <= set(whole.split())
    assert reply.startswith("You said: ") and "doing" in reply
