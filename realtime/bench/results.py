"""A benchmark's results as one JSON document: the run's context, and per level every sample."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ValidationError

from realtime.bench.context import RunContext
from realtime.bench.metrics import LevelSummary, TurnSample

SCHEMA = "step-realtime-bench/1"
SIMULATED_BANNER = "SIMULATED ENGINE: timings are modelled, not measured"


class ResultsError(Exception):
    """A results file could not be read."""


class LevelResult(BaseModel):
    """One concurrency level: its raw samples and their summary."""

    sessions: int
    wall_s: float
    deadline_hit: bool = False
    summary: LevelSummary
    samples: list[TurnSample]


class BenchResults(BaseModel):
    schema_version: str = SCHEMA
    context: RunContext
    levels: list[LevelResult]

    @property
    def simulated(self) -> bool:
        return self.context.simulated or any(
            sample.simulated for level in self.levels for sample in level.samples
        )

    def level(self, sessions: int) -> LevelResult | None:
        return next((level for level in self.levels if level.sessions == sessions), None)

    def title(self) -> str:
        """A one-line description for tables and charts; says so when the engine is simulated."""
        context = self.context
        title = f"{context.engine_label} via {context.transport} at {context.url}"
        return f"{title} [{SIMULATED_BANNER}]" if self.simulated else title


def write_results(results: BenchResults, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(results.model_dump_json(indent=2) + "\n")


def read_results(path: Path) -> BenchResults:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return BenchResults.model_validate_json(text)
    except ValidationError as exc:
        raise ResultsError(
            f"{path} is not a step-realtime bench results file "
            f"({exc.error_count()} problems, first: {exc.errors()[0]['msg']})"
        ) from exc
