"""``bench compare a.json b.json``: two runs side by side, with differences and ratios (b / a)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table
from rich.text import Text

from realtime.bench.metrics import CLIENT_METRICS, STATISTICS, Distribution
from realtime.bench.results import SIMULATED_BANNER, BenchResults, LevelResult


@dataclass(frozen=True)
class ComparedValue:
    """One statistic of one metric at one level, in both runs."""

    sessions: int
    metric: str
    stat: str
    a: float | None
    b: float | None

    @property
    def difference(self) -> float | None:
        if self.a is None or self.b is None:
            return None
        return self.b - self.a

    @property
    def ratio(self) -> float | None:
        if self.a is None or self.b is None or self.a == 0.0:
            return None
        return self.b / self.a


@dataclass
class Comparison:
    values: list[ComparedValue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    simulated: bool = False


def _context_notes(a: BenchResults, b: BenchResults) -> list[str]:
    notes = []
    pairs = {
        "engine": (a.context.engine_label, b.context.engine_label),
        "transport": (a.context.transport, b.context.transport),
        "URL": (a.context.url, b.context.url),
        "client host": (a.context.client.host, b.context.client.host),
        "git revision": (a.context.git_revision[:12], b.context.git_revision[:12]),
        "policies": (", ".join(a.context.policies), ", ".join(b.context.policies)),
        "barge-in": (str(a.context.barge_in), str(b.context.barge_in)),
    }
    for what, (left, right) in pairs.items():
        if left != right:
            notes.append(f"{what} differs: a {left!r}, b {right!r}")
    for name, results in (("a", a), ("b", b)):
        if results.simulated:
            notes.append(f"run {name}: {SIMULATED_BANNER}")
    return notes


def _level_pairs(
    a: BenchResults, b: BenchResults, notes: list[str]
) -> list[tuple[LevelResult, LevelResult]]:
    shared = [(level, b.level(level.sessions)) for level in a.levels]
    pairs = [(left, right) for left, right in shared if right is not None]
    only_a = [level.sessions for level in a.levels if b.level(level.sessions) is None]
    only_b = [level.sessions for level in b.levels if a.level(level.sessions) is None]
    if not pairs and len(a.levels) == 1 and len(b.levels) == 1:
        notes.append(
            f"no common concurrency level: comparing a's {a.levels[0].sessions} sessions "
            f"with b's {b.levels[0].sessions}"
        )
        return [(a.levels[0], b.levels[0])]
    if only_a:
        notes.append(f"levels only in a (not compared): {only_a}")
    if only_b:
        notes.append(f"levels only in b (not compared): {only_b}")
    return pairs


def _metrics_of(level: LevelResult) -> dict[str, Distribution]:
    return {**level.summary.metrics, **level.summary.stages}


def compare_results(a: BenchResults, b: BenchResults) -> Comparison:
    """Every statistic of every metric and stage that both runs measured at a shared level."""
    comparison = Comparison(notes=_context_notes(a, b), simulated=a.simulated or b.simulated)
    for left, right in _level_pairs(a, b, comparison.notes):
        left_metrics, right_metrics = _metrics_of(left), _metrics_of(right)
        for name, left_dist in left_metrics.items():
            right_dist = right_metrics.get(name)
            if right_dist is None or (left_dist.count == 0 and right_dist.count == 0):
                continue
            for stat in STATISTICS:
                comparison.values.append(
                    ComparedValue(
                        sessions=left.sessions,
                        metric=name,
                        stat=stat,
                        a=getattr(left_dist, stat),
                        b=getattr(right_dist, stat),
                    )
                )
    return comparison


def _number(value: float | None, suffix: str = "", signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.0f}{suffix}" if signed else f"{value:.0f}{suffix}"


def print_comparison(comparison: Comparison, a_name: str, b_name: str, console: Console) -> None:
    title = f"a = {a_name}, b = {b_name}"
    if comparison.simulated:
        title += f" [{SIMULATED_BANNER}]"
    table = Table(title=title, title_justify="left")
    for column in ("sessions", "metric", "stat"):
        table.add_column(column)
    for column in ("a ms", "b ms", "b - a ms", "b / a"):
        table.add_column(column, justify="right")
    labels = {metric.name: metric.label for metric in CLIENT_METRICS}
    previous: tuple[int, str] | None = None
    for value in comparison.values:
        key = (value.sessions, value.metric)
        if previous is not None and key != previous and value.stat == STATISTICS[0]:
            table.add_section()
        previous = key
        ratio = value.ratio
        style = (
            "" if ratio is None else ("green" if ratio < 0.95 else "red" if ratio > 1.05 else "")
        )
        table.add_row(
            str(value.sessions),
            labels.get(value.metric, value.metric),
            value.stat,
            _number(value.a),
            _number(value.b),
            _number(value.difference, signed=True),
            Text("-" if ratio is None else f"{ratio:.2f}x", style=style),
        )
    for note in comparison.notes:
        console.print(Text(note, style="red" if "SIMULATED" in note else "yellow"))
    console.print(table)
