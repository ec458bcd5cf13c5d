"""A session's unexpected exceptions: reported to the client and logged, never a silent end."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest

from realtime.session.services import SessionServices, SessionSettings
from realtime.transports.client_input import hand_over
from tests.realtime.session.support import RecordingSink, running_session, session_services, until


@pytest.fixture(scope="module")
async def services() -> AsyncIterator[SessionServices]:
    async with session_services(SessionSettings()) as s:
        yield s


def errors(sink: RecordingSink) -> list[dict]:
    return [e["error"] for e in sink.events if e["type"] == "error"]


async def test_a_handler_that_raises_gets_a_server_error_and_the_session_goes_on(
    services: SessionServices, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_session(services) as (session, sink):

        def broken(event: object) -> None:
            raise RuntimeError("a bug in a handler")

        monkeypatch.setattr(session, "_dispatch", broken)
        with caplog.at_level(logging.ERROR):
            hand_over(session, json.dumps({"type": "input_audio_buffer.clear",
                                           "event_id": "evt_1"}))  # fmt: skip
            await until(lambda: bool(errors(sink)), timeout_s=5)
        monkeypatch.undo()
        (error,) = errors(sink)
        assert error["type"] == "server_error" and error["event_id"] == "evt_1"
        assert session.config.id in error["message"]
        assert any(session.config.id in r.getMessage() and r.exc_info for r in caplog.records)
        hand_over(session, json.dumps({"type": "input_audio_buffer.clear"}))
        await until(lambda: any(e["type"] == "input_audio_buffer.cleared" for e in sink.events))
        assert sink.closed_with is None


async def test_deeply_nested_json_is_an_error_event_not_a_dead_session(
    services: SessionServices,
) -> None:
    async with running_session(services) as (session, sink):
        hand_over(session, "[" * 5000 + "]" * 5000)
        nested: object = 1
        for _ in range(900):
            nested = {"a": nested}
        hand_over(session, json.dumps({"type": "session.update", "session": nested}))
        await until(lambda: len(errors(sink)) == 2, timeout_s=5)
        assert all(e["type"] == "invalid_request_error" for e in errors(sink))
        hand_over(session, json.dumps({"type": "input_audio_buffer.clear"}))
        await until(lambda: any(e["type"] == "input_audio_buffer.cleared" for e in sink.events))


class BrokenVadStream:
    position = 0

    async def process(self, pcm: object) -> list[object]:
        raise RuntimeError("the VAD broke")

    def close(self) -> None:
        pass


class BrokenVad:
    def open_stream(self) -> BrokenVadStream:
        return BrokenVadStream()


async def test_a_dead_vad_loop_ends_the_session_with_an_error_and_a_close(
    services: SessionServices,
) -> None:
    broken = SessionServices(**{**services.__dict__, "vad": BrokenVad()})
    async with running_session(broken) as (session, sink):
        hand_over(session, json.dumps({"type": "input_audio_buffer.append",
                                       "audio": "AAAA" * 400}))  # fmt: skip
        await until(lambda: sink.closed_with is not None, timeout_s=5)
        assert sink.closed_with is not None and sink.closed_with[0] == 1011
        assert [e["type"] for e in errors(sink)] == ["server_error"]
        assert session.finished


async def test_an_expired_session_is_told_and_closed(services: SessionServices) -> None:
    settings = SessionSettings(max_session_s=0.3)
    short = SessionServices(**{**services.__dict__, "settings": settings})
    async with running_session(short) as (_, sink):
        await until(lambda: sink.closed_with is not None, timeout_s=5)
        assert [e["code"] for e in errors(sink)] == ["session_expired"]
        assert sink.closed_with == (1000, "session expired")


async def test_a_response_that_fails_to_end_is_reported_and_the_next_one_runs(
    services: SessionServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_session(services) as (session, sink):
        finish = session.responses._finish
        failures = iter([RuntimeError("a bug while ending a response")])

        def finish_once_broken(active: object) -> None:
            failure = next(failures, None)
            if failure is not None:
                raise failure
            finish(active)  # type: ignore[arg-type]

        monkeypatch.setattr(session.responses, "_finish", finish_once_broken)

        def done() -> list[dict]:
            return [e["response"] for e in sink.events if e["type"] == "response.done"]

        hand_over(session, json.dumps({"type": "response.create"}))
        await until(lambda: len(done()) == 1, timeout_s=10)
        hand_over(session, json.dumps({"type": "response.create"}))
        await until(lambda: len(done()) == 2, timeout_s=10)
        assert [r["status"] for r in done()] == ["cancelled", "completed"]
        assert done()[0]["status_details"]["error"]["code"] == "internal_error"
        assert [e["type"] for e in errors(sink)] == ["server_error"]
        assert "running a response" in errors(sink)[0]["message"]
        assert session.responses.active is None
        assert sink.closed_with is None
