"""Honesty: when the server reports a simulated engine, every table and chart says so."""

from __future__ import annotations

from matplotlib.figure import Figure
from rich.console import Console

from realtime.bench.compare import compare_results, print_comparison
from realtime.bench.plots import charts
from realtime.bench.report import print_summary
from realtime.bench.results import SIMULATED_BANNER
from tests.realtime.bench.samples import bench_results


def _texts(figure: Figure) -> str:
    texts = [text.get_text() for text in figure.texts]
    return "\n".join(texts)


def _printed(print_to: object) -> str:
    console = Console(record=True, width=240)
    print_to(console)  # type: ignore[operator]
    return console.export_text()


def test_every_table_of_a_simulated_run_says_so() -> None:
    results = bench_results(simulated=True)

    text = _printed(lambda console: print_summary(results, console))

    # the run's heading and banner, each level's table and the sweep table
    assert text.count(SIMULATED_BANNER) >= 2 + len(results.levels) + 1
    for level in results.levels:
        title = next(line for line in text.splitlines() if f"{level.sessions} concurrent" in line)
        assert SIMULATED_BANNER in title


def test_every_chart_of_a_simulated_run_says_so() -> None:
    figures = charts(bench_results(simulated=True))

    assert {"cdf_first_packet_ms.png", "latency_vs_concurrency.png"} <= set(figures)
    for name, figure in figures.items():
        assert SIMULATED_BANNER in _texts(figure), name


def test_a_measured_run_is_not_labelled_simulated() -> None:
    results = bench_results(simulated=False)

    assert "SIMULATED" not in _printed(lambda console: print_summary(results, console))
    for figure in charts(results).values():
        assert "SIMULATED" not in _texts(figure)


def test_comparing_with_a_simulated_run_says_which_one_is_simulated() -> None:
    comparison = compare_results(bench_results(simulated=False), bench_results(simulated=True))

    text = _printed(lambda console: print_comparison(comparison, "real.json", "sim.json", console))

    assert f"run b: {SIMULATED_BANNER}" in text
    assert "run a:" not in text
