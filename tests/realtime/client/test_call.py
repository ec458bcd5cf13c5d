"""The ``call`` command: one spoken turn from a WAV file, the reply saved as WAV, exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from benchmarks.harness.ports import free_port
from realtime.call import add_call_arguments, main_call, run_call
from tests.realtime.client.fake_server import FakeRealtimeServer, FakeScript
from tests.realtime.client.support import utterance
from tokenizer.pcm import read_wav, write_wav


def call_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="step-realtime call")
    add_call_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def input_wav(tmp_path: Path) -> Path:
    path = tmp_path / "in.wav"
    write_wav(path, utterance(300, 100, rate=16_000), 16_000)
    return path


async def test_main_call_writes_the_reply_wav_and_prints_the_turn(
    fake_server: FakeRealtimeServer,
    input_wav: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "reply.wav"
    args = call_args(
        str(input_wav), "--out", str(out), "--url", fake_server.url, "--no-realtime",
        "--silence-ms", "1000", "--timeout", "5",
    )  # fmt: skip
    assert await main_call(args) == 0

    reply, rate = read_wav(out)
    assert rate == 24_000
    assert np.array_equal(reply, fake_server.recording.reply)
    update = fake_server.recording.events[0]
    assert update["type"] == "session.update"
    assert update["session"]["audio"]["input"]["format"]["rate"] == 16_000  # sent as recorded
    printed = capsys.readouterr().out
    for expected in (
        "hi there",
        "Hello there.",
        "The user greeted me.",
        "first-packet latency",
        "faster than real time",  # --no-realtime: the figure is not a latency
        "fake / scripted",
        "SIMULATED",
        "response_created",
        "first_audio_sent",
        "VAD silence window 200 ms",
    ):
        assert expected in printed, expected


async def test_run_call_resamples_a_rate_the_service_does_not_take(
    fake_server: FakeRealtimeServer, tmp_path: Path
) -> None:
    wav = tmp_path / "in.wav"
    write_wav(wav, utterance(400, 0, rate=22_050), 22_050)
    report = await run_call(
        fake_server.url, wav, tmp_path / "out.wav", realtime=False, silence_ms=600, timeout=5
    )
    assert "session.update" not in fake_server.recording.event_types()
    voiced = sum(append.samples for append in fake_server.recording.appends if append.voiced)
    assert voiced == pytest.approx(9_600, abs=480)  # 400 ms at the session's 24 kHz
    assert report.ok and report.wav_rate == 22_050
    assert report.input_ms == pytest.approx(400.0, abs=0.1)
    assert report.turn.first_packet_latency_ms is not None


async def test_main_call_exits_2_with_one_line_when_the_server_is_unreachable(
    input_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"ws://127.0.0.1:{free_port()}/v1/realtime"
    args = call_args(str(input_wav), "--out", str(tmp_path / "r.wav"), "--url", url)
    assert await main_call(args) == 2
    captured = capsys.readouterr()
    assert captured.err == f"step-realtime call: could not connect to {url}: connection refused\n"
    assert not (tmp_path / "r.wav").exists()


async def test_main_call_exits_1_on_a_server_error(
    input_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeRealtimeServer(FakeScript(error_on_append=True)) as server:
        args = call_args(str(input_wav), "--out", str(tmp_path / "r.wav"), "--url", server.url)
        assert await main_call(args) == 1
    assert "this fake server rejects audio" in capsys.readouterr().err


async def test_main_call_exits_1_for_a_failed_response_after_printing_it(
    input_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeRealtimeServer(FakeScript(fail_response=True)) as server:
        args = call_args(
            str(input_wav), "--out", str(tmp_path / "r.wav"), "--url", server.url, "--no-realtime"
        )
        assert await main_call(args) == 1
    printed = capsys.readouterr().out
    assert "failed" in printed and "the fake engine failed" in printed


async def test_main_call_exits_1_when_no_reply_comes_in_time(
    input_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeRealtimeServer(FakeScript(answer=False)) as server:
        args = call_args(
            str(input_wav), "--out", str(tmp_path / "r.wav"), "--url", server.url,
            "--no-realtime", "--timeout", "0.3",
        )  # fmt: skip
        assert await main_call(args) == 1
    assert "no response.done within 0.3 s" in capsys.readouterr().err


async def test_main_call_exits_1_for_an_unreadable_input_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav file")
    args = call_args(str(bad), "--url", "ws://127.0.0.1:9/v1/realtime")
    assert await main_call(args) == 1
    assert "not a readable PCM WAV file" in capsys.readouterr().err


def test_call_arguments_default_to_a_local_server_in_real_time() -> None:
    args = call_args("in.wav")
    assert args.wav == Path("in.wav")
    assert args.out == Path("reply.wav")
    assert args.url == "ws://127.0.0.1:8080/v1/realtime"
    assert args.realtime is True
