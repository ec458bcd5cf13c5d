"""Synthetic test signals and measurements for the tokenizer tests."""

from __future__ import annotations

import numpy as np


def tone(freq_hz: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    """An int16 sine of `amplitude` (fraction of full scale)."""
    t = np.arange(round(seconds * rate)) / rate
    return np.rint(amplitude * 32767 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def fit_sine(samples: np.ndarray, freq_hz: float, rate: int) -> tuple[float, float]:
    """Least-squares fit of a sine of `freq_hz`: returns (amplitude, residual RMS), both in the
    units of `samples`. A wrong frequency or rate leaves a residual near the signal's RMS."""
    x = samples.astype(np.float64)
    t = np.arange(x.size) / rate
    basis = np.stack([np.sin(2 * np.pi * freq_hz * t), np.cos(2 * np.pi * freq_hz * t)], axis=1)
    coefficients, *_ = np.linalg.lstsq(basis, x, rcond=None)
    residual = x - basis @ coefficients
    return float(np.hypot(*coefficients)), float(np.sqrt(np.mean(residual**2)))


def zero_crossing_frequency(samples: np.ndarray, rate: int) -> float:
    """Frequency estimated from rising zero crossings (accurate to about 1 / duration Hz)."""
    x = samples.astype(np.float64)
    rising = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    if rising.size < 2:
        return 0.0
    return float((rising.size - 1) * rate / (rising[-1] - rising[0]))
