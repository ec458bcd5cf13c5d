"""PNG charts of a run (matplotlib, Agg): latency CDFs, the median turn's stages, concurrency.

Figures are drawn on their own Agg canvas, without pyplot: no global figure registry, no
backend switch, nothing left open.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from realtime.bench.metrics import CLIENT_METRICS, METRICS_BY_NAME, TurnSample
from realtime.bench.results import SIMULATED_BANNER, BenchResults, LevelResult
from realtime.telemetry.timings import STAGES

_DPI = 110
_FINAL_STAGE = "response_done"
_MARKED_POINTS = 40
_TOP = 0.88  # of the figure height, above which the titles go


def _title(figure: Figure, heading: str, results: BenchResults) -> None:
    figure.suptitle(heading, fontsize=12, fontweight="bold")
    subtitle = results.title()
    if results.simulated:
        subtitle = subtitle.replace(f" [{SIMULATED_BANNER}]", "")
        figure.text(
            0.5, 0.5, "SIMULATED", fontsize=60, color="red", alpha=0.12,
            ha="center", va="center", rotation=25, transform=figure.transFigure,
        )  # fmt: skip
        subtitle += f"\n{SIMULATED_BANNER}"
    figure.text(0.5, 0.935, subtitle, ha="center", va="top", fontsize=8,
                color="red" if results.simulated else "dimgray")  # fmt: skip


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _level_label(level: LevelResult) -> str:
    return f"{level.sessions} session{'s' if level.sessions != 1 else ''}"


def latency_cdfs(results: BenchResults) -> dict[str, Figure]:
    """One chart per latency metric with data: its CDF, one line per level."""
    charts = {}
    for metric in CLIENT_METRICS:
        if not metric.latency:
            continue
        series = [
            (level, np.sort([v for s in level.samples if (v := s.value(metric.name)) is not None]))
            for level in results.levels
        ]
        if not any(len(values) for _, values in series):
            continue
        figure = _figure(8, 5.5)
        axes = figure.subplots()
        for level, values in series:
            if len(values):
                # The empirical CDF, starting from 0 at the smallest value.
                xs = np.concatenate([values[:1], values])
                ys = np.concatenate([[0.0], np.arange(1, len(values) + 1) / len(values)])
                marker = "." if len(values) <= _MARKED_POINTS else None
                axes.step(xs, ys, where="post", marker=marker, label=_level_label(level))
        axes.set_xlabel(f"{metric.label} (ms): {metric.meaning}")
        axes.set_ylabel("fraction of turns")
        axes.set_ylim(0.0, 1.02)
        axes.grid(True, alpha=0.3)
        axes.legend(loc="lower right")
        _title(figure, f"{metric.label}: CDF", results)
        figure.tight_layout(rect=(0, 0, 1, _TOP))
        charts[f"cdf_{metric.name}.png"] = figure
    return charts


def median_turn(samples: list[TurnSample]) -> TurnSample | None:
    """The turn with the median first-packet latency among those with server stages."""
    candidates = sorted(
        (s for s in samples if s.first_packet_ms is not None and s.stages_ms),
        key=lambda sample: sample.first_packet_ms or 0.0,
    )
    return candidates[(len(candidates) - 1) // 2] if candidates else None


def _waterfall_bars(turn: TurnSample) -> list[tuple[str, float, float]]:
    """(label, start ms, end ms) from the last voiced sample sent, in the turn's order.

    The server's stages are placed after the client's end-of-turn time (when speech_stopped
    arrived), so the two clocks meet at speech_stopped.
    """
    assert turn.first_packet_ms is not None
    bars: list[tuple[str, float, float]] = []
    endpoint = turn.endpoint_ms
    if endpoint is not None:
        window = turn.silence_window_ms or 0.0
        bars.append(("VAD silence window", 0.0, min(window, endpoint)))
        bars.append(("end-of-turn detection beyond it", min(window, endpoint), endpoint))
        stages = [s for s in STAGES if s in turn.stages_ms and s != _FINAL_STAGE]
        stages += [s for s in turn.stages_ms if s not in STAGES and s != _FINAL_STAGE]
        previous = 0.0
        for stage in stages:
            at = turn.stages_ms[stage]
            if stage != "speech_stopped":
                bars.append((f"server: {stage}", endpoint + previous, endpoint + at))
            previous = at
        bars.append(("delivery to the client", endpoint + previous, turn.first_packet_ms))
    else:
        bars.append(("first-packet latency", 0.0, turn.first_packet_ms))
    return bars


def stage_waterfall(results: BenchResults, level: LevelResult) -> Figure | None:
    """The median turn of a level, as bars from the last voiced sample to the first audio."""
    turn = median_turn(level.samples)
    if turn is None or turn.first_packet_ms is None:
        return None
    bars = _waterfall_bars(turn)
    figure = _figure(9, 0.45 * len(bars) + 2.4)
    axes = figure.subplots()
    for row, (_, start, end) in enumerate(bars):
        width = max(end - start, 0.0)
        axes.barh(row, width, left=start, color=f"C{row % 10}")
        axes.text(end, row, f" {width:.0f} ms", va="center", fontsize=8)
    axes.axvline(turn.first_packet_ms, color="black", linestyle="--", linewidth=1)
    axes.set_xlim(0.0, 1.15 * max(end for _, _, end in bars))  # room for the labels
    axes.set_yticks(range(len(bars)), [label for label, _, _ in bars], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel(
        f"ms after the last voiced sample was sent (first packet at {turn.first_packet_ms:.0f} ms)"
    )
    axes.grid(True, axis="x", alpha=0.3)
    heading = f"median turn, {_level_label(level)}: where the first-packet latency goes"
    _title(figure, heading, results)
    figure.tight_layout(rect=(0, 0, 1, _TOP))
    return figure


def latency_against_concurrency(results: BenchResults) -> Figure | None:
    """p50 and p99 per level (several levels): first-packet latency above, gateway overhead
    below (their scales differ), each level marked with how many of its turns failed,
    since the percentiles cover only the turns that got a reply."""
    if len(results.levels) < 2:
        return None
    sessions = [level.sessions for level in results.levels]
    figure = _figure(8, 7.5)
    panels = figure.subplots(2, 1, sharex=True)
    for axes, name, color in zip(
        panels, ("first_packet_ms", "gateway_overhead_ms"), ("C0", "C1"), strict=True
    ):
        label = METRICS_BY_NAME[name].label
        for stat, style in (("p50", "-"), ("p99", "--")):
            values = [getattr(level.summary.metrics[name], stat) for level in results.levels]
            points = [(n, v) for n, v in zip(sessions, values, strict=True) if v is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                axes.plot(xs, ys, style, marker="o", color=color, label=f"{stat}")
        axes.set_ylabel(f"{label} (ms)")
        axes.set_ylim(bottom=0.0)
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper left")
    for level in results.levels:
        counts = level.summary.counts
        if counts.problems:
            panels[0].annotate(
                f"{counts.problems}/{counts.attempts} failed",
                (level.sessions, 0.0), xycoords=("data", "axes fraction"),
                textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8, color="red",
            )  # fmt: skip
    panels[1].set_xlabel("concurrent sessions")
    panels[1].set_xticks(sessions)
    _title(figure, "latency against concurrency", results)
    figure.tight_layout(rect=(0, 0, 1, _TOP + 0.03))
    return figure


def charts(results: BenchResults) -> dict[str, Figure]:
    """Every chart the results support, by file name."""
    figures = latency_cdfs(results)
    for level in results.levels:
        if (figure := stage_waterfall(results, level)) is not None:
            figures[f"waterfall_{level.sessions}_sessions.png"] = figure
    if (figure := latency_against_concurrency(results)) is not None:
        figures["latency_vs_concurrency.png"] = figure
    return figures


def write_plots(results: BenchResults, directory: Path) -> list[Path]:
    """Every chart the results support, as PNG files in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in charts(results).items():
        path = directory / name
        figure.savefig(path, dpi=_DPI)
        paths.append(path)
    return paths
