"""The whole suite: one OpenBLAS thread, as the service runs (see ``realtime.cli``): the
in-process tests fork subprocesses (espeak-ng) while worker threads may be inside a BLAS
call, which deadlocks OpenBLAS's own thread pool. Set before any test module loads numpy."""

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"
