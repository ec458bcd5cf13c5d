"""Percentiles of measured samples, as the benchmarks print them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``; NaN when there are none."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")
