"""The outbox paces reply audio and is the one place where stale chunks are dropped."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from realtime import events as ev
from realtime.session.outbox import AudioFrame, EventMessage, Outbox, OutboxClosed

RATE = 1000  # 20 samples = one 20 ms frame


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def frame(response_id: str, segment: int = 0, value: int = 1) -> AudioFrame:
    return AudioFrame(response_id, "item_" + response_id, np.full(20, value, np.int16), segment)


async def get_soon(outbox: Outbox, within_s: float = 0.05) -> object:
    return await asyncio.wait_for(outbox.get(), within_s)


async def test_control_events_overtake_queued_audio() -> None:
    outbox = Outbox(RATE, lead_ms=0, clock=FakeClock())
    for _ in range(3):
        assert await outbox.enqueue_audio(frame("r1"), max_buffered_ms=10_000)
    outbox.send_now(ev.SpeechStarted(0, "item_u"))
    first = await get_soon(outbox)
    assert isinstance(first, EventMessage)
    assert isinstance(first.event, ev.SpeechStarted)


async def test_audio_is_released_at_playback_pace_plus_the_lead() -> None:
    clock = FakeClock()
    outbox = Outbox(RATE, lead_ms=40, clock=clock)
    for _ in range(5):
        await outbox.enqueue_audio(frame("r1"), max_buffered_ms=10_000)
    # With a 40 ms lead, the first three 20 ms frames may leave at once ...
    for _ in range(3):
        assert isinstance(await get_soon(outbox), AudioFrame)
    # ... the fourth only once playback has advanced.
    with pytest.raises(TimeoutError):
        await get_soon(outbox, 0.03)
    clock.now += 0.020
    assert isinstance(await get_soon(outbox), AudioFrame)
    assert outbox.delivery("r1").frames_sent == 4


async def test_ordered_events_leave_after_the_audio_before_them() -> None:
    clock = FakeClock()
    outbox = Outbox(RATE, lead_ms=20, clock=clock)
    await outbox.enqueue_audio(frame("r1"), max_buffered_ms=10_000)
    await outbox.enqueue_audio(frame("r1"), max_buffered_ms=10_000)
    outbox.enqueue("r1", ev.AudioDone("r1", "item_r1"))
    kinds = []
    for _ in range(3):
        clock.now += 0.020
        item = await get_soon(outbox)
        kinds.append(type(item.event).__name__ if isinstance(item, EventMessage) else "audio")
    assert kinds == ["audio", "audio", "AudioDone"]


async def test_cancel_drops_every_queued_item_of_that_response_only() -> None:
    outbox = Outbox(RATE, lead_ms=10_000, clock=FakeClock())
    for _ in range(10):
        await outbox.enqueue_audio(frame("old"), max_buffered_ms=10_000)
    outbox.enqueue("old", ev.AudioDone("old", "item_old"))
    outbox.send_now(ev.ReasoningDelta("old", "item_old", "hm"), response_id="old")
    assert isinstance(await get_soon(outbox), EventMessage)  # the control event went first
    assert isinstance(await get_soon(outbox), AudioFrame)
    delivery = outbox.cancel("old")
    await outbox.enqueue_audio(frame("new", value=7), max_buffered_ms=10_000)
    assert not await outbox.enqueue_audio(frame("old"), max_buffered_ms=10_000)
    outbox.send_now(ev.TextDelta("old", "item_old", "late"), response_id="old")
    outbox.enqueue("old", ev.TextDelta("old", "item_old", "late"))
    item = await get_soon(outbox)
    assert isinstance(item, AudioFrame) and item.response_id == "new"
    with pytest.raises(TimeoutError):
        await get_soon(outbox, 0.02)
    assert delivery.frames_sent == 1 and delivery.frames_dropped == 9
    assert delivery.queued_ms == 0


async def test_enqueue_waits_while_too_much_audio_is_buffered() -> None:
    clock = FakeClock()
    outbox = Outbox(RATE, lead_ms=0, clock=clock)
    for _ in range(3):
        await outbox.enqueue_audio(frame("r1"), max_buffered_ms=60)
    blocked = asyncio.create_task(outbox.enqueue_audio(frame("r1"), max_buffered_ms=60))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    await get_soon(outbox)
    assert await asyncio.wait_for(blocked, 0.5) is True


async def test_cancel_releases_a_producer_waiting_for_room() -> None:
    outbox = Outbox(RATE, lead_ms=0, clock=FakeClock())
    await outbox.enqueue_audio(frame("r1"), max_buffered_ms=20)
    blocked = asyncio.create_task(outbox.enqueue_audio(frame("r1"), max_buffered_ms=20))
    await asyncio.sleep(0.01)
    outbox.cancel("r1")
    assert await asyncio.wait_for(blocked, 0.5) is False


async def test_events_built_on_send_see_state_at_send_time() -> None:
    outbox = Outbox(RATE, lead_ms=1000, clock=FakeClock())
    await outbox.enqueue_audio(frame("r1"), max_buffered_ms=10_000)
    outbox.enqueue_built_on_send(
        "r1", lambda: ev.TextDelta("r1", "item_r1", str(outbox.delivery("r1").frames_sent))
    )
    await get_soon(outbox)
    done = await get_soon(outbox)
    assert isinstance(done, EventMessage) and done.event == ev.TextDelta("r1", "item_r1", "1")


async def test_closed_outbox_ends_the_sender() -> None:
    outbox = Outbox(RATE)
    waiter = asyncio.create_task(outbox.get())
    await asyncio.sleep(0)
    outbox.close()
    with pytest.raises(OutboxClosed):
        await asyncio.wait_for(waiter, 0.5)


async def test_a_held_response_sends_nothing_until_released_then_everything_in_order() -> None:
    outbox = Outbox(RATE, lead_ms=1_000, clock=FakeClock())
    outbox.hold("r1")
    outbox.send_now(ev.ReasoningDelta("r1", "item_r1", "first"), "r1")
    for value in (1, 2):
        await outbox.enqueue_audio(frame("r1", value=value), max_buffered_ms=10_000)
    outbox.enqueue("r1", ev.AudioDone("r1", "item_r1"))
    outbox.send_now(ev.SpeechStopped(0, "item_u"))
    first = await get_soon(outbox)
    assert isinstance(first, EventMessage)
    assert isinstance(first.event, ev.SpeechStopped)
    with pytest.raises(TimeoutError):
        await get_soon(outbox, 0.03)
    assert outbox.buffered_ms("r1") == 40.0  # held audio counts against the reply's budget

    outbox.release("r1")

    created, one, two, done = [await get_soon(outbox) for _ in range(4)]
    assert isinstance(created, EventMessage) and isinstance(created.event, ev.ReasoningDelta)
    assert isinstance(one, AudioFrame) and isinstance(two, AudioFrame)
    assert (one.pcm[0], two.pcm[0]) == (1, 2)
    assert isinstance(done, EventMessage) and not outbox.is_held("r1")


async def test_cancelling_a_held_response_drops_it_without_a_trace() -> None:
    outbox = Outbox(RATE, lead_ms=1_000, clock=FakeClock())
    outbox.hold("r1")
    outbox.send_now(ev.ReasoningDelta("r1", "item_r1", "first"), "r1")
    await outbox.enqueue_audio(frame("r1"), max_buffered_ms=10_000)

    outbox.cancel("r1")
    outbox.send_now(ev.SpeechStarted(0, "item_u"))

    only = await get_soon(outbox)
    assert isinstance(only, EventMessage)
    assert isinstance(only.event, ev.SpeechStarted)
    with pytest.raises(TimeoutError):
        await get_soon(outbox, 0.03)
    assert outbox.buffered_ms("r1") == 0.0


async def test_a_paused_reply_holds_its_audio_and_resumes_at_the_same_frame() -> None:
    clock = FakeClock()
    outbox = Outbox(RATE, lead_ms=20, clock=clock)
    for value in range(1, 5):
        await outbox.enqueue_audio(frame("r1", value=value), max_buffered_ms=10_000)
    played = [await get_soon(outbox), await get_soon(outbox)]

    outbox.pause("r1")
    clock.now += 1.0
    outbox.send_now(ev.SpeechStarted(0, "item_u"))
    control = await get_soon(outbox)
    assert isinstance(control, EventMessage)  # control still flows while audio is paused
    with pytest.raises(TimeoutError):
        await get_soon(outbox, 0.03)

    outbox.resume("r1")
    played += [await get_soon(outbox), await get_soon(outbox)]
    assert [f.pcm[0] for f in played if isinstance(f, AudioFrame)] == [1, 2, 3, 4]
    assert outbox.delivery("r1").frames_sent == 4 and outbox.delivery("r1").frames_dropped == 0


async def test_what_the_transport_reports_played_is_what_was_heard_until_the_cut() -> None:
    clock = FakeClock()
    outbox = Outbox(RATE, lead_ms=10_000, clock=clock)
    for segment in (0, 0, 1, 1, 1):
        await outbox.enqueue_audio(frame("r1", segment), max_buffered_ms=10_000)
    for _ in range(5):
        await get_soon(outbox)
    delivery = outbox.delivery("r1")
    assert delivery.heard_ms == 100 and delivery.heard_ms_by_segment() == {0: 40, 1: 60}
    outbox.played("r1", 30)  # e.g. a Twilio mark came back
    assert delivery.heard_ms == 30 and delivery.heard_ms_by_segment() == {0: 30, 1: 0}
    outbox.played("r1", 50)
    assert delivery.heard_ms_by_segment() == {0: 40, 1: 10}
    clock.now += 0.020  # playback goes on after the last report; the cut comes 20 ms later
    outbox.cancel("r1")
    assert delivery.heard_ms == pytest.approx(70)
    outbox.played("r1", 100)  # echoed after the cut: dropped audio, not played
    assert delivery.heard_ms == pytest.approx(70)
    outbox.played("r2", 10)  # a response the outbox does not know of: nothing to record
    assert "r2" not in outbox._deliveries


async def test_the_cut_never_counts_more_played_than_was_sent() -> None:
    clock = FakeClock()
    outbox = Outbox(RATE, lead_ms=10_000, clock=clock)
    await outbox.enqueue_audio(frame("r1"), max_buffered_ms=10_000)
    await get_soon(outbox)
    outbox.played("r1", 20)
    clock.now += 5.0
    outbox.cancel("r1")
    assert outbox.delivery("r1").heard_ms == 20
