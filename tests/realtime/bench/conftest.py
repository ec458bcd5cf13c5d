"""The real service (echo engine, espeak-ng) for the bench tests, and the bench run in-process."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.harness.service import ServiceProcess
from realtime.bench import main_bench
from realtime.cli import build_parser

# About 4 s of speech: long enough that a barge-in 200 ms into the reply lands while the
# reply is still being synthesized (the service stops honouring barge-in once synthesis has
# finished, up to --max-buffered-ms before the end of the reply).
LONG_REPLY = "You said: {transcript}. That is what I heard; now interrupt me."
PHRASES = ("Hello there.", "Good morning to you.")


@pytest.fixture(scope="session")
def bench_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("bench-service") / "serve.log"
    serve_args = ("--echo-reply", LONG_REPLY, "--webrtc-allow-loopback")
    with ServiceProcess(*serve_args, log_path=log) as service:
        yield service


@pytest.fixture(scope="session")
def audio_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-audio")


@dataclass(frozen=True)
class BenchRun:
    exit_code: int
    stdout: str
    stderr: str


def bench_args(*argv: str) -> argparse.Namespace:
    """``step-realtime bench ARGV`` parsed by the real command-line parser."""
    return build_parser().parse_args(["bench", *argv])


def short_audio_args(audio_cache: Path) -> list[str]:
    args = ["--audio-cache", str(audio_cache), "--no-progress", "--ramp-up", "0"]
    for phrase in PHRASES:
        args += ["--phrase", phrase]
    return args


def run_bench(*argv: str) -> BenchRun:
    """Run ``step-realtime bench ARGV`` in this process, capturing what it prints."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        pytest.MonkeyPatch.context() as patch,
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        patch.setenv("COLUMNS", "200")  # wide tables: no wrapped or truncated cells
        exit_code = main_bench(bench_args(*argv))
    return BenchRun(exit_code, stdout.getvalue(), stderr.getvalue())
