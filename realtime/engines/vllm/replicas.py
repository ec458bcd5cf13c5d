"""The vLLM replicas a service spreads its sessions over: their health, their load, and which
one a session goes to.

Every ``health_interval_s`` each replica's ``GET /health`` is probed and its ``/metrics``
read (requests running and waiting, KV cache usage). Each replica has a circuit breaker
(``breaker.py``): a failed request is remembered, several in a short window (or a failing
health check) take the replica out, and a passing health check lets a trial request back in.

A new session goes to the least-loaded usable replica: fewest requests running and waiting
(plus the sessions pinned to it since its metrics were read), then lowest KV usage, then
fewest sessions pinned from here, ties round-robin. It stays pinned there, so the prefix
cache its listen-while-thinking prefills filled is the one its final request reads, and
moves only when its replica is unusable or overloaded (``LoadLimits``) while another is not:
one cold prefill. When every replica is overloaded or down, ``admission_problem`` says so and
the service refuses new sessions instead of slowing every conversation down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from realtime.engines.base import EngineError
from realtime.engines.vllm.breaker import BreakerSettings, CircuitBreaker
from realtime.engines.vllm.client import ReplicaRequestError, probe_health, probe_load
from realtime.engines.vllm.load import LoadLimits, ReplicaLoad

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Replica:
    """One vLLM server: its API root, its health, its load, and its sessions from here."""

    url: str
    index: int
    breaker: CircuitBreaker
    health_ok: bool = False
    problem: str | None = "not checked yet"
    load: ReplicaLoad | None = None
    """From its last /metrics (None: not read, or not readable)."""
    sessions: int = 0
    sessions_since_load: int = 0

    @property
    def healthy(self) -> bool:
        """Takes work: its health check passes and its breaker is not open."""
        return self.health_ok and self.breaker.allows_requests


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
        breaker: BreakerSettings | None = None,
        limits: LoadLimits | None = None,
    ) -> None:
        if not urls:
            raise ValueError("a replica set needs at least one URL")
        settings = breaker or BreakerSettings()
        self.replicas = tuple(
            Replica(url.rstrip("/"), index, CircuitBreaker(settings))
            for index, url in enumerate(urls)
        )
        self.limits = limits or LoadLimits()
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
        await asyncio.gather(*(self._probe(replica) for replica in self.replicas))

    async def _probe(self, replica: Replica) -> None:
        problem, load = await asyncio.gather(
            probe_health(self._http, replica.url, self._timeout_s),
            probe_load(self._http, replica.url, self._timeout_s),
        )
        self._set_health(replica, problem)
        replica.load = load
        replica.sessions_since_load = 0

    def _set_health(self, replica: Replica, problem: str | None) -> None:
        was = replica.healthy
        replica.health_ok = problem is None
        if problem is None:
            replica.breaker.health_passed()
            replica.problem = None
            if not was:
                log.info("vLLM replica %s is healthy (%s)", replica.url, replica.breaker.state)
        else:
            replica.breaker.health_failed()
            if was or replica.problem != problem:
                log.warning("vLLM replica %s is down: %s", replica.url, problem)
            replica.problem = problem

    # -- what requests tell ------------------------------------------------------------------

    def record_failure(self, replica: Replica, error: ReplicaRequestError) -> None:
        """A request failed on ``replica``; only the replica's own faults count."""
        if not error.replica_down:
            return
        if replica.breaker.failure():
            replica.problem = f"{replica.breaker.settings.failures} failures in a row: {error}"
            log.warning("vLLM replica %s taken out: %s", replica.url, replica.problem)

    def record_success(self, replica: Replica) -> None:
        if replica.breaker.state != "closed":
            log.info("vLLM replica %s passed its trial request", replica.url)
        replica.breaker.success()

    def mark_down(self, replica: Replica, problem: str) -> None:
        """Take a replica out until its health check passes again."""
        replica.breaker.health_failed()
        replica.problem = problem

    # -- choosing ----------------------------------------------------------------------------

    def healthy(self) -> list[Replica]:
        return [replica for replica in self.replicas if replica.healthy]

    def overloaded(self, replica: Replica) -> bool:
        return replica.load is not None and self.limits.overloaded(replica.load)

    def takes_new_sessions(self, replica: Replica) -> bool:
        return (
            replica.healthy
            and not self.overloaded(replica)
            and not self.limits.full(replica.sessions)
        )

    def _pending(self, replica: Replica) -> float:
        load = replica.load
        if load is None:
            return float(replica.sessions)
        return load.running + load.waiting + replica.sessions_since_load

    def _pick(self, avoid: Sequence[Replica]) -> Replica | None:
        usable = self.healthy()
        for candidates in (
            [r for r in usable if r not in avoid and self.takes_new_sessions(r)],
            [r for r in usable if r not in avoid],
            usable,  # a retry goes back to the only replica there is
        ):
            if candidates:
                return self._least_loaded(candidates)
        return None

    def _least_loaded(self, candidates: list[Replica]) -> Replica:
        count = len(self.replicas)

        def rank(replica: Replica) -> tuple[float, float, int, int]:
            kv = replica.load.kv_usage if replica.load is not None else 0.0
            rotation = (replica.index - self._next) % count
            return (self._pending(replica), kv, replica.sessions, rotation)

        chosen = min(candidates, key=rank)
        self._next = (chosen.index + 1) % count
        return chosen

    async def acquire(self, avoid: Sequence[Replica] = ()) -> Replica:
        """A replica for a session, counted as its user until ``release``: the least loaded
        usable one, preferably not one of ``avoid`` (that just failed) and not overloaded.
        Probes every replica first if none is usable."""
        chosen = self._pick(avoid)
        if chosen is None:
            await self.check_all()
            chosen = self._pick(avoid)
        if chosen is None:
            raise NoHealthyReplica(self.describe_down())
        chosen.sessions += 1
        chosen.sessions_since_load += 1
        return chosen

    def release(self, replica: Replica) -> None:
        replica.sessions = max(0, replica.sessions - 1)

    def should_move(self, replica: Replica) -> bool:
        """A pinned session should leave ``replica``: it is unusable, or overloaded while
        another usable replica is not."""
        if not replica.healthy:
            return True
        return self.overloaded(replica) and any(
            not self.overloaded(other) for other in self.healthy() if other is not replica
        )

    # -- capacity ----------------------------------------------------------------------------

    def admission_problem(self) -> str | None:
        """Why a new session should be refused now: every replica is down or overloaded."""
        if any(self.takes_new_sessions(replica) for replica in self.replicas):
            return None
        return "every vLLM replica is down or overloaded: " + "; ".join(
            f"{replica.url} ({self._state(replica)})" for replica in self.replicas
        )

    def load_report(self) -> Mapping[str, Mapping[str, float]]:
        """Per replica: up, breaker_open, overloaded, sessions, and its last load."""
        report: dict[str, dict[str, float]] = {}
        for replica in self.replicas:
            load = replica.load or ReplicaLoad()
            report[replica.url] = {
                "up": float(replica.healthy),
                "breaker_open": float(replica.breaker.state == "open"),
                "overloaded": float(self.overloaded(replica)),
                "full": float(self.limits.full(replica.sessions)),
                "sessions": float(replica.sessions),
                "running": load.running,
                "waiting": load.waiting,
                "kv_cache_usage": load.kv_usage,
            }
        return report

    def _state(self, replica: Replica) -> str:
        if not replica.healthy:
            return replica.problem or f"breaker {replica.breaker.state}"
        load = replica.load or ReplicaLoad()
        return (
            f"overloaded: {load.waiting:g} waiting, KV {100 * load.kv_usage:.0f} %, "
            f"{replica.sessions} sessions from here"
        )

    def describe_down(self) -> str:
        states = [f"{replica.url} ({self._state(replica)})" for replica in self.replicas]
        return "no vLLM replica is available: " + "; ".join(states)
