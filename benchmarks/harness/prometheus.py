"""A service's ``GET /metrics`` (Prometheus text): parsed samples, counter deltas over a window,
histogram buckets and their quantiles (bucket upper bounds)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class MetricSample:
    """One Prometheus sample, e.g. `vllm:prefix_cache_hits_total{model_name="..."} 42`."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class MetricsSnapshot:
    """The server's `/metrics` at one moment."""

    samples: tuple[MetricSample, ...]

    @classmethod
    def parse(cls, text: str) -> MetricsSnapshot:
        return cls(
            tuple(
                MetricSample(sample.name, dict(sample.labels), float(sample.value))
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            )
        )

    def names(self) -> set[str]:
        return {sample.name for sample in self.samples}

    def value(self, name: str, default: float | None = None, **labels: str) -> float:
        """Sum of the samples called `name` whose labels include `labels`; `default` if none
        (KeyError without one)."""
        matching = [
            sample.value
            for sample in self.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        ]
        if not matching:
            if default is None:
                raise KeyError(name)
            return default
        return sum(matching)


def parse_metrics(text: str) -> dict[str, float]:
    """``name{labels}`` -> value for every sample line."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            out[key] = float(value)
    return out


def metric_delta(
    before: dict[str, float], after: dict[str, float], prefix: str
) -> dict[str, float]:
    return {
        k: after[k] - before.get(k, 0.0)
        for k in after
        if k.startswith(prefix) and not k.endswith("_created")
    }


def histogram(delta: dict[str, float], name: str) -> tuple[list[tuple[float, float]], float, float]:
    """Cumulative buckets [(le, count)], count and sum of histogram ``name`` (no labels)."""
    buckets = []
    for key, value in delta.items():
        m = re.fullmatch(rf'{name}_bucket\{{le="([^"]+)"\}}', key)
        if m:
            buckets.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), value))
    buckets.sort()
    return buckets, delta.get(f"{name}_count", 0.0), delta.get(f"{name}_sum", 0.0)


def bucket_quantile(buckets: list[tuple[float, float]], count: float, q: float) -> float:
    """Upper bound of the bucket holding quantile ``q`` (inf: above the largest bound)."""
    if count <= 0:
        return float("nan")
    for bound, cumulative in buckets:
        if cumulative >= q * count:
            return bound
    return float("inf")


def labelled(delta: dict[str, float], name: str, label: str) -> dict[str, float]:
    out = {}
    for key, value in delta.items():
        m = re.fullmatch(rf'{name}\{{{label}="([^"]+)"\}}', key)
        if m and value:
            out[m.group(1)] = value
    return out
