"""The real service on 127.0.0.1 (echo engine, silero VAD, espeak-ng), once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import synthesize

RATE = 24_000


@pytest.fixture(scope="session")
def echo_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("service") / "serve.log"
    with ServiceProcess(log_path=log) as service:
        yield service


@pytest.fixture(scope="session")
def speech_cache() -> dict[tuple[str, int], np.ndarray]:
    return {}


@pytest.fixture(scope="session")
def say(speech_cache: dict[tuple[str, int], np.ndarray]):  # type: ignore[no-untyped-def]
    """``say(text, rate=24000)``: espeak-ng speech, synthesized once per test session."""

    def synthesize_cached(text: str, rate: int = RATE) -> np.ndarray:
        key = (text, rate)
        if key not in speech_cache:
            speech_cache[key] = synthesize(text, rate)
        return speech_cache[key]

    return synthesize_cached


def log_of(service: ServiceProcess) -> Path:
    return service.log_path


@pytest.fixture(autouse=True)
def every_server_event_is_openais(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every event the SDK clients receive in these tests is checked against the ``openai``
    package's models of the GA protocol (this service's extension events aside)."""
    import realtime.client.session_client as sdk_clients
    from realtime.client.events import parse_server_event
    from tests.support.openai_events import validate_server_event

    problems: list[str] = []

    def checked(data: Any, received_at: float) -> Any:
        try:
            validate_server_event(data)
        except Exception as exc:
            problems.append(f"{data.get('type') if isinstance(data, dict) else data!r}: {exc}")
        return parse_server_event(data, received_at)

    # Both SDK clients (WebSocket and WebRTC) parse what they receive there.
    monkeypatch.setattr(sdk_clients, "parse_server_event", checked)
    yield
    assert not problems, "server events not in OpenAI's GA shape:\n" + "\n".join(problems[:5])
