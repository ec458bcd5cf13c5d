"""Sim engine profiles: a JSON object of ``SimParams`` fields, such as the GPU check writes.

A profile replaces the simulator's default figures with measured ones
(``benchmarks/gpu_check.py`` writes one); ``--sim-*`` flags given on the command line still
override it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from realtime.engines.sim import SimParams

SIM_FIELDS = tuple(f.name for f in fields(SimParams))


def _check_type(name: str, value: object, default: object) -> None:
    if isinstance(value, bool) or isinstance(default, bool):
        ok = isinstance(value, bool) and isinstance(default, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(f"{name} must be a {type(default).__name__}, not {value!r}")


def sim_params_from(profile: Mapping[str, Any], overrides: Mapping[str, Any]) -> SimParams:
    """Defaults, then the profile's fields, then ``overrides`` (None values are skipped)."""
    defaults = asdict(SimParams())
    unknown = sorted(set(profile) - set(SIM_FIELDS))
    if unknown:
        raise ValueError(
            f"unknown sim profile keys {', '.join(unknown)} (known: {', '.join(SIM_FIELDS)})"
        )
    for name, value in profile.items():
        _check_type(name, value, defaults[name])
    values = {**defaults, **profile}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SimParams(**values)


def read_sim_profile(path: Path) -> dict[str, Any]:
    """The profile in ``path``, checked (unknown keys, wrong types, out-of-range values)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read sim profile {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"sim profile {path} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"sim profile {path} must hold a JSON object of SimParams fields")
    sim_params_from(data, {})
    return data


def write_sim_profile(path: Path, params: SimParams) -> None:
    path.write_text(json.dumps(asdict(params), indent=2) + "\n", encoding="utf-8")
