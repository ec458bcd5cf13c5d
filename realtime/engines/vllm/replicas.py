"""The vLLM replicas a service spreads its sessions over, and their health.

Each replica's ``GET /health`` is probed every ``health_interval_s``. A session is pinned to
one healthy replica (so the prefix cache that its listen-while-thinking prefills filled is
the one its final request reads), chosen as the one with the fewest pinned sessions, ties
going round-robin. A replica that fails a request is taken out of rotation at once and
comes back when its health check passes; when no replica is healthy, a request probes them
all on the spot before giving up, so a restarted server is used as soon as it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from realtime.engines.base import EngineError
from realtime.engines.vllm.client import probe_health

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Replica:
    """One vLLM server: its API root, whether it takes work, and how many sessions use it."""

    url: str
    index: int
    healthy: bool = False
    problem: str | None = "not checked yet"
    sessions: int = 0


class NoHealthyReplica(EngineError):
    """Every replica is down (the message lists each one and why)."""


class ReplicaSet:
    def __init__(
        self,
        urls: Sequence[str],
        http: httpx.AsyncClient,
        *,
        health_interval_s: float,
        health_timeout_s: float,
    ) -> None:
        if not urls:
            raise ValueError("a replica set needs at least one URL")
        self.replicas = tuple(Replica(url.rstrip("/"), index) for index, url in enumerate(urls))
        self._http = http
        self._interval_s = health_interval_s
        self._timeout_s = health_timeout_s
        self._next = 0
        self._checking: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Probe every replica once, then keep probing in the background."""
        await self.check_all()
        self._loop_task = asyncio.create_task(self._health_loop(), name="vllm-health")

    async def aclose(self) -> None:
        for task in (self._loop_task, self._checking):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._loop_task = self._checking = None

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.check_all()
            except Exception:  # a probe that crashes must not end the loop
                log.exception("vLLM health check failed")

    async def check_all(self) -> None:
        """Probe every replica now; concurrent callers share one round of probes."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.create_task(self._probe_all())
        await asyncio.shield(self._checking)

    async def _probe_all(self) -> None:
        problems = await asyncio.gather(
            *(probe_health(self._http, replica.url, self._timeout_s) for replica in self.replicas)
        )
        for replica, problem in zip(self.replicas, problems, strict=True):
            self._set_health(replica, problem)

    def _set_health(self, replica: Replica, problem: str | None) -> None:
        healthy = problem is None
        if healthy and not replica.healthy:
            log.info("vLLM replica %s is healthy", replica.url)
        elif not healthy and (replica.healthy or replica.problem != problem):
            log.warning("vLLM replica %s is down: %s", replica.url, problem)
        replica.healthy = healthy
        replica.problem = problem

    def mark_down(self, replica: Replica, problem: str) -> None:
        """Take a replica out of rotation until its health check passes again."""
        self._set_health(replica, problem)

    def healthy(self) -> list[Replica]:
        return [replica for replica in self.replicas if replica.healthy]

    def _pick(self, exclude: Sequence[Replica]) -> Replica | None:
        candidates = [r for r in self.replicas if r.healthy and r not in exclude]
        if not candidates:
            return None
        fewest = min(replica.sessions for replica in candidates)
        least_loaded = [replica for replica in candidates if replica.sessions == fewest]
        count = len(self.replicas)
        chosen = min(least_loaded, key=lambda replica: (replica.index - self._next) % count)
        self._next = (chosen.index + 1) % count
        return chosen

    async def acquire(self, exclude: Sequence[Replica] = ()) -> Replica:
        """A healthy replica for a session (not one of ``exclude``), counted as its user
        until ``release``. Probes every replica first if none is healthy."""
        chosen = self._pick(exclude)
        if chosen is None:
            await self.check_all()
            chosen = self._pick(exclude)
        if chosen is None:
            raise NoHealthyReplica(self.describe_down(exclude))
        chosen.sessions += 1
        return chosen

    def release(self, replica: Replica) -> None:
        replica.sessions = max(0, replica.sessions - 1)

    def describe_down(self, exclude: Sequence[Replica] = ()) -> str:
        states = []
        for replica in self.replicas:
            failed_here = replica.healthy and replica in exclude
            why = "failed this request" if failed_here else replica.problem
            states.append(f"{replica.url} ({why})")
        return "no vLLM replica is available: " + "; ".join(states)
