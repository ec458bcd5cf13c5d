"""``step-realtime bench``: load a deployment with spoken turns and measure its latency."""

from realtime.bench.cli import add_bench_arguments, main_bench

__all__ = ["add_bench_arguments", "main_bench"]
