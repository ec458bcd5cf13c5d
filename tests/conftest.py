"""The whole suite: one OpenBLAS thread, as the service runs (see ``realtime.cli``): the
in-process tests fork subprocesses (espeak-ng) while worker threads may be inside a BLAS
call, which deadlocks OpenBLAS's own thread pool. Set before any test module loads numpy.

Also how the suite runs in parallel (pytest-xdist, ``-n auto --dist loadscope`` in
pyproject.toml): most of its time is spent waiting on audio streamed at real-time pace, not
on the CPU, so it runs two workers per core; each module stays on one worker, in order, so
its module-scoped fixtures (the vLLM CPU server, the services) are started once. Every test
under ``tests/integration/`` is ``slow``."""

import os
from pathlib import Path

import pytest

os.environ["OPENBLAS_NUM_THREADS"] = "1"

_INTEGRATION = Path(__file__).parent / "integration"
WORKERS_PER_CORE = 2
MAX_WORKERS = 8


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_WORKERS, WORKERS_PER_CORE * (cores or 1)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(_INTEGRATION):
            item.add_marker(pytest.mark.slow)
