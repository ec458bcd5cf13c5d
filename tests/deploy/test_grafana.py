"""The Grafana dashboard (deploy/grafana/step-realtime.json): valid JSON in Grafana's shape,
and every PromQL expression names only metrics, and labels, that the service exports (read
from the service's own registry, rendered as /metrics renders it)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from realtime.telemetry.metrics import STAGE_SPANS, ServiceMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "step-realtime.json"

# Labels Prometheus adds to every series it scrapes, and a histogram bucket's bound.
_SCRAPE_LABELS = {"instance", "job"}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
             "or", "unless", "offset", "inf", "nan"}  # fmt: skip
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "unknown": ("",),
}


def exported() -> dict[str, set[str]]:
    """Every series name the service's /metrics may carry, with its label names."""
    metrics = ServiceMetrics("echo", simulated=False)
    metrics.watch_engine(lambda: {"http://127.0.0.1:8000": {"up": 1.0, "running": 0.0}})
    text = metrics.render().decode()
    series: dict[str, set[str]] = {}
    labels_of = _declared_labels(metrics)
    for family in text_string_to_metric_families(text):
        labels = labels_of.get(family.name, set())
        for sample in family.samples:
            labels |= set(sample.labels)
        for suffix in _SUFFIXES[family.type]:
            extra = {"le"} if suffix == "_bucket" else set()
            series[family.name + suffix] = labels | extra
    return series


def _declared_labels(metrics: ServiceMetrics) -> dict[str, set[str]]:
    """Label names of the metric families with no series yet (a labelled counter before its
    first increment renders its HELP and TYPE only)."""
    found: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        names = getattr(value, "_labelnames", None)
        name = getattr(value, "_name", None)
        if names is not None and name is not None:
            found[name] = set(names)
    return found


def expressions(dashboard: dict[str, Any]) -> list[str]:
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            found.append(query["query"])
    return found


def _unquoted(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def names_used(expr: str) -> dict[str, set[str]]:
    """The series names an expression selects, with the label names it matches or groups
    by next to them (a small reading of PromQL, enough for this dashboard's expressions)."""
    text = _unquoted(expr)
    lv = re.fullmatch(r"\s*label_values\((\w+),\s*(\w+)\)\s*", text)
    if lv:
        return {lv.group(1): {lv.group(2)}}
    grouped = {
        label.strip()
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", text)
        for label in group.split(",")
        if label.strip()
    }
    text = re.sub(r"\b(?:by|without)\s*\([^)]*\)", " ", text)  # the groupings, read above
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors: [5m], [$__rate_interval]
    used: dict[str, set[str]] = {}
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?", text):
        name, matchers = match.group(1), match.group(2)
        following = text[match.end() :].lstrip()
        if name.lower() in _KEYWORDS or (following.startswith("(") and not matchers):
            continue  # a function or a keyword
        labels = set(re.findall(r"(\w+)\s*[=!~]", matchers or ""))
        used.setdefault(name, set()).update(labels)
    for name in used:
        used[name] |= grouped
    return used


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def test_the_dashboard_is_grafana_json_with_unique_panels_and_a_prometheus_source(
    dashboard: dict[str, Any],
) -> None:
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"], panel["title"]


def test_every_expression_names_only_what_the_service_exports(
    dashboard: dict[str, Any],
) -> None:
    series = exported()
    checked = set()
    for expr in expressions(dashboard):
        used = names_used(expr)
        assert used, f"no metric found in {expr!r}"
        for name, labels in used.items():
            assert name in series, f"{name} (in {expr!r}) is not exported"
            unknown = labels - series[name] - _SCRAPE_LABELS
            assert not unknown, f"{name} has no label {unknown} (in {expr!r})"
            checked.add(name)
    for wanted in ("step_realtime_stage_seconds_bucket", "step_realtime_input_lag_seconds_bucket",
                   "step_realtime_sessions_active", "step_realtime_sessions_refused_total",
                   "step_realtime_engine_server"):  # fmt: skip
        assert wanted in checked, f"the dashboard shows no {wanted}"


def test_stage_and_measure_values_are_ones_the_service_uses(dashboard: dict[str, Any]) -> None:
    stages = {name for name, _, _ in STAGE_SPANS}
    measures = {"up", "breaker_open", "overloaded", "full", "sessions", "running", "waiting",
                "kv_cache_usage"}  # fmt: skip
    for expr in expressions(dashboard):
        for stage in re.findall(r'stage="([^"]*)"', expr):
            assert stage in stages, expr
        for measure in re.findall(r'measure="([^"]*)"', expr):
            assert measure in measures, expr


def test_the_reader_catches_a_misspelt_metric_or_label() -> None:
    series = exported()
    assert "step_realtime_first_packet_seconds_bucket" not in series
    used = names_used('sum by (stagee) (rate(step_realtime_stage_seconds_bucket{x="1"}[5m]))')
    assert used == {"step_realtime_stage_seconds_bucket": {"stagee", "x"}}
    used = names_used("histogram_quantile(0.5, step_realtime_input_lag_seconds_bucket) / 2")
    assert used == {"step_realtime_input_lag_seconds_bucket": set()}
