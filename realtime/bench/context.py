"""The context a benchmark ran in: the target and what it reports about itself, and the client."""

from __future__ import annotations

import datetime
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field

_GIT_TIMEOUT_S = 5.0


class ServiceUnreachable(Exception):
    """The service's health endpoint could not be reached at all."""


class ServerInfo(BaseModel):
    """What the service's ``GET /healthz`` says it runs (None where it did not say)."""

    healthz_url: str
    reachable: bool = True
    status_code: int | None = None
    engine: str | None = None
    model: str | None = None
    simulated: bool = False
    tts: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


async def probe_server(healthz_url: str, timeout: float) -> ServerInfo:  # noqa: ASYNC109
    """Ask ``healthz_url`` what the service runs.

    Raises ``ServiceUnreachable`` when nothing answers (refused, no route, timeout). An HTTP
    answer that is not step-realtime's health JSON (e.g. a proxy that only passes the
    WebSocket) gives a ``ServerInfo`` without engine details.
    """
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.get(healthz_url)
    except httpx.TimeoutException as exc:
        raise ServiceUnreachable(
            f"cannot reach the service: no answer from {healthz_url} within {timeout:g} s"
        ) from exc
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise ServiceUnreachable(f"cannot reach the service at {healthz_url}: {reason}") from exc
    info = ServerInfo(healthz_url=healthz_url, status_code=response.status_code)
    try:
        body = response.json()
    except ValueError:
        return info
    if response.status_code != 200 or not isinstance(body, dict):
        return info
    return ServerInfo(
        healthz_url=healthz_url,
        status_code=response.status_code,
        engine=_str_or_none(body.get("engine")),
        model=_str_or_none(body.get("model")),
        simulated=bool(body.get("simulated", False)),
        tts=_str_or_none(body.get("tts")),
        raw=body,
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def git_revision(directory: Path | None = None) -> str:
    """``git rev-parse HEAD`` of the checkout this code runs from, or "unknown"."""
    where = directory or Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    revision = done.stdout.strip()
    return revision if done.returncode == 0 and revision else "unknown"


class ClientInfo(BaseModel):
    """The machine the benchmark ran on (its load matters: client and server may share it)."""

    host: str
    platform: str
    python: str
    cpus: int | None
    load_average: tuple[float, float, float] | None


def client_info() -> ClientInfo:
    try:
        load: tuple[float, float, float] | None = os.getloadavg()
    except OSError:
        load = None
    return ClientInfo(
        host=socket.gethostname(),
        platform=platform.platform(),
        python=platform.python_version(),
        cpus=os.cpu_count(),
        load_average=load,
    )


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class RunContext(BaseModel):
    """Everything needed to read a run's numbers later."""

    url: str
    transport: str
    server: ServerInfo
    policies: list[str] = Field(default_factory=list, description="as x_turn reported them")
    simulated: bool = Field(description="the server reported a simulated engine")
    client: ClientInfo
    git_revision: str
    started_at: str
    finished_at: str | None = None
    load_average_at_end: tuple[float, float, float] | None = None
    session_levels: list[int]
    turns_per_session: int | None
    duration_s: float | None
    ramp_up_s: float
    barge_in: bool
    audio: str = Field(description="where the utterances came from")
    utterances: list[str]
    options: dict[str, Any] = Field(description="the bench command's options")

    @property
    def engine_label(self) -> str:
        """``engine / model`` as the server reported them."""
        parts = [part for part in (self.server.engine, self.server.model) if part]
        return " / ".join(parts) if parts else "unknown engine"
