"""How loaded a vLLM replica is, from its Prometheus ``/metrics``: requests running and
waiting, and the share of its KV cache in use."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

# vLLM's names; ``gpu_cache_usage_perc`` is what versions before 0.10 called the KV usage.
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


class MetricsFormatError(ValueError):
    """A /metrics body that is not Prometheus text, or lacks vLLM's gauges."""


@dataclass(frozen=True)
class ReplicaLoad:
    running: float = 0.0
    waiting: float = 0.0
    kv_usage: float = 0.0
    """0..1"""


@dataclass(frozen=True)
class LoadLimits:
    """Past either limit a replica is overloaded: no new sessions, and pinned ones move.

    A request that waits for a batch slot waits until a running one ends (seconds: a whole
    reasoning and reply), all of it added to someone's first packet: so a couple waiting is
    already too many for voice."""

    max_waiting: float = 2.0
    max_kv_usage: float = 0.95
    max_sessions: int | None = None
    """Sessions this gateway pins to one server at most: a capacity known ahead (from a
    benchmark of the deployment), which acts before the server's own gauges show the load
    (sessions are long and their turns come later)."""

    def overloaded(self, load: ReplicaLoad) -> bool:
        return load.waiting >= self.max_waiting or load.kv_usage >= self.max_kv_usage

    def full(self, sessions: int) -> bool:
        """No room for another session (its pinned ones stay: they are the capacity)."""
        return self.max_sessions is not None and sessions >= self.max_sessions


def parse_vllm_metrics(text: str) -> ReplicaLoad:
    """Requests summed over every label set (a data-parallel server reports one per engine),
    KV usage averaged over them."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in (RUNNING, WAITING, *KV_USAGE):
                    sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
                    counts[sample.name] = counts.get(sample.name, 0) + 1
    except ValueError as exc:
        raise MetricsFormatError(f"unreadable /metrics: {exc}") from None
    if RUNNING not in sums or WAITING not in sums:
        raise MetricsFormatError(f"/metrics has no {RUNNING} or {WAITING}")
    kv = next((sums[name] / counts[name] for name in KV_USAGE if name in sums), 0.0)
    return ReplicaLoad(running=sums[RUNNING], waiting=sums[WAITING], kv_usage=kv)
