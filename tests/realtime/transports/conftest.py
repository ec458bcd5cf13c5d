"""Fixtures for the transport tests: the real service with loopback WebRTC, speech, metrics."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import numpy as np
import pytest

from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import silence, synthesize

UTTERANCE = "Hello there, how are you doing today?"


@pytest.fixture(scope="module")
def webrtc_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("webrtc-service") / "serve.log"
    with ServiceProcess("--webrtc-allow-loopback", log_path=log) as service:
        yield service


@pytest.fixture(scope="session")
def utterance_16k() -> np.ndarray:
    """A short silence then espeak-ng speaking UTTERANCE, 16 kHz int16."""
    return np.concatenate([silence(0.3), synthesize(UTTERANCE)])


def active_sessions(metrics_text: str, transport: str) -> float:
    """The value of ``step_realtime_sessions_active{transport=...}`` (0 when absent)."""
    pattern = rf'^step_realtime_sessions_active\{{transport="{transport}"\}} (\S+)$'
    match = re.search(pattern, metrics_text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def wait_for_active_sessions(
    service: ServiceProcess, transport: str, expected: float, timeout_s: float = 15.0
) -> float:
    """Polls /metrics until the transport's active sessions equal ``expected`` (or time
    runs out); returns the last value seen."""
    deadline = time.monotonic() + timeout_s
    value = active_sessions(await asyncio.to_thread(service.metrics), transport)
    while value != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        value = active_sessions(await asyncio.to_thread(service.metrics), transport)
    return value
