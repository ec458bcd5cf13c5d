"""Find a model file shipped inside an installed wheel without importing the wheel's package
(silero-vad's would import torch, pipecat's its many dependencies)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def packaged_file(package: str, relative: tuple[str, ...], not_installed: str) -> Path:
    """Path of ``relative`` inside the installed ``package``; ``FileNotFoundError`` with the
    ``not_installed`` hint when it is not there."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location).joinpath(*relative)
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(not_installed)
