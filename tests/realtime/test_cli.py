"""The command line's process-wide setup."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import contextlib, os, sys
os.environ.pop("OPENBLAS_NUM_THREADS", None)
import realtime.cli as cli
assert "numpy" not in sys.modules, "realtime.cli loads numpy at import"
with contextlib.suppress(SystemExit):
    cli.main(["serve", "--help"])
import numpy
print(os.environ["OPENBLAS_NUM_THREADS"], len(os.listdir("/proc/self/task")))
"""


def test_the_command_limits_openblas_to_one_thread_before_numpy_loads() -> None:
    # OpenBLAS reads OPENBLAS_NUM_THREADS once, when numpy loads: nothing imported by
    # realtime.cli may load numpy first, and main() sets it before anything else.
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    blas_threads, process_threads = result.stdout.split()[-2:]
    assert (blas_threads, process_threads) == ("1", "1")
