"""What the benchmark shows: a live progress display while it runs, summary tables after."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from realtime.bench.metrics import (
    CLIENT_METRICS,
    DERIVED_STAGES,
    STATISTICS,
    Distribution,
    TurnSample,
    distribution,
)
from realtime.bench.results import SIMULATED_BANNER, BenchResults, LevelResult

_TOP_ERRORS = 5


def _sessions(count: int) -> str:
    return f"{count} session{'s' if count != 1 else ''}"


def _load(load: tuple[float, float, float] | None) -> str:
    return "/".join(f"{value:.1f}" for value in load) if load else "unknown"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


class LiveProgress:
    """A rich progress bar per level: turns done, problems, running first-packet p50.

    Implements ``LoadObserver``. When ``live`` is false (not a terminal), it prints one line
    per finished level instead.
    """

    def __init__(self, console: Console, *, live: bool, simulated: bool) -> None:
        self._console = console
        self._live = live
        self._simulated = simulated
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            disable=not live,
        )
        self._task: TaskID | None = None
        self._first_packets: list[float] = []
        self._problems = 0

    def __enter__(self) -> LiveProgress:
        if self._simulated:
            self._console.print(Text(SIMULATED_BANNER, style="bold red"))
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def level_started(self, sessions: int, expected_turns: int | None) -> None:
        self._first_packets = []
        self._problems = 0
        self._task = self._progress.add_task(
            _sessions(sessions),
            total=expected_turns,
            status="connecting",
        )

    def turn_recorded(self, sample: TurnSample) -> None:
        if sample.first_packet_ms is not None:
            self._first_packets.append(sample.first_packet_ms)
        if sample.status in ("timeout", "error", "connect_error", "failed", "incomplete"):
            self._problems += 1
        if self._task is None:
            return
        p50 = distribution(self._first_packets).p50
        status = f"first packet p50 {_ms(p50)} ms, problems {self._problems}"
        advance = 0 if sample.kind == "connect" else 1
        self._progress.update(self._task, advance=advance, status=status)

    def level_finished(self, result: LevelResult) -> None:
        if self._task is not None:
            task = self._task
            self._progress.update(task, total=self._progress.tasks[-1].completed)
            self._task = None
        if not self._live:
            counts = result.summary.counts
            first_packet = result.summary.metrics["first_packet_ms"]
            self._console.print(
                f"{_sessions(result.sessions)}: {counts.turns} turns in {result.wall_s:.1f} s, "
                f"{counts.problems} problems, first packet p50 {_ms(first_packet.p50)} ms "
                f"p99 {_ms(first_packet.p99)} ms"
            )


def _add_distribution_row(table: Table, label: str, dist: Distribution) -> None:
    table.add_row(label, str(dist.count), *(_ms(getattr(dist, stat)) for stat in STATISTICS))


def _new_table(title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("n", justify="right")
    for stat in STATISTICS:
        table.add_column(f"{stat} ms", justify="right")
    return table


def level_table(level: LevelResult, simulated: bool) -> Table:
    """Client metrics, then the server's stages (ms from speech_stopped) and derived spans."""
    counts = level.summary.counts
    title = f"{level.sessions} concurrent session{'s' if level.sessions != 1 else ''}"
    if simulated:
        title += f" [{SIMULATED_BANNER}]"
    outcome = (
        f"{counts.turns} turns: {counts.completed} completed, {counts.cancelled} cancelled, "
        f"{counts.failed} failed, {counts.timeouts} timed out, {counts.errors} errors; "
        f"{counts.connect_errors} sessions could not connect"
    )
    if counts.barge_ins:
        outcome += (
            f"; {counts.barge_ins} barge-ins, {counts.barge_ins_missed} missed "
            "(the reply completed although the user spoke over it)"
        )
    if level.deadline_hit:
        outcome += "; THE LEVEL'S DEADLINE WAS HIT"
    table = _new_table(title)
    table.caption = outcome
    table.caption_justify = "left"
    for metric in CLIENT_METRICS:
        _add_distribution_row(table, metric.label, level.summary.metrics[metric.name])
    table.add_section()
    for stage, dist in level.summary.stages.items():
        if stage in DERIVED_STAGES:
            label = f"{stage} ({DERIVED_STAGES[stage]})"
        else:
            label = f"server: {stage}"
        _add_distribution_row(table, label, dist)
    return table


def sweep_table(results: BenchResults) -> Table:
    """One row per level: first-packet latency and gateway overhead against concurrency."""
    title = "latency against concurrency"
    if results.simulated:
        title += f" [{SIMULATED_BANNER}]"
    table = Table(title=title, title_justify="left")
    for column in ("sessions", "turns", "problems"):
        table.add_column(column, justify="right")
    for stat in ("p50", "p99"):
        table.add_column(f"first packet {stat} ms", justify="right")
    for stat in ("p50", "p99"):
        table.add_column(f"gateway overhead {stat} ms", justify="right")
    for level in results.levels:
        metrics = level.summary.metrics
        first_packet, overhead = metrics["first_packet_ms"], metrics["gateway_overhead_ms"]
        table.add_row(
            str(level.sessions),
            str(level.summary.counts.turns),
            str(level.summary.counts.problems),
            _ms(first_packet.p50),
            _ms(first_packet.p99),
            _ms(overhead.p50),
            _ms(overhead.p99),
        )
    return table


def print_summary(results: BenchResults, console: Console) -> None:
    context = results.context
    console.print(Text(results.title(), style="bold"))
    if results.simulated:
        console.print(Text(SIMULATED_BANNER, style="bold red"))
    details = [
        f"transport {context.transport}",
        f"policies {', '.join(context.policies) or 'unknown'}",
        f"client {context.client.host} ({context.client.cpus} CPUs, load average "
        f"{_load(context.client.load_average)} at the start, "
        f"{_load(context.load_average_at_end)} at the end)",
        f"git {context.git_revision[:12]}",
    ]
    console.print(Text("; ".join(details), style="dim"))
    for level in results.levels:
        console.print(level_table(level, results.simulated))
        messages = list(level.summary.error_messages.items())[:_TOP_ERRORS]
        for message, count in messages:
            console.print(Text(f"  {count}x {message}", style="red"))
    if len(results.levels) > 1:
        console.print(sweep_table(results))
