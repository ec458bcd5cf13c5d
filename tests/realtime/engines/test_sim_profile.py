"""--sim-profile: a JSON object of SimParams fields, overridden by explicit --sim-* flags."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from realtime.cli import build_parser, sim_params_of
from realtime.engines.sim import SimParams
from realtime.engines.sim_profile import read_sim_profile, write_sim_profile


def serve_args(*flags: str) -> SimParams:
    return sim_params_of(build_parser().parse_args(["serve", "--engine", "sim", *flags]))


def test_without_a_profile_the_defaults_and_flags_hold() -> None:
    assert serve_args() == SimParams()
    assert serve_args("--sim-itl-ms", "7.5") == replace(SimParams(), itl_ms=7.5)


def test_a_written_profile_round_trips_into_the_sim_params(tmp_path: Path) -> None:
    measured = SimParams(
        prefill_tokens_per_s=31_000.0, ttft_ms=41.5, itl_ms=9.25, batch_slowdown=0.004
    )
    path = tmp_path / "profile.json"
    write_sim_profile(path, measured)

    assert read_sim_profile(path) == asdict(measured)
    assert serve_args("--sim-profile", str(path)) == measured


def test_explicit_flags_override_the_profile(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"itl_ms": 9, "ttft_ms": 50.0}))

    params = serve_args("--sim-profile", str(path), "--sim-itl-ms", "12")

    assert (params.itl_ms, params.ttft_ms) == (12.0, 50.0)
    assert params.prefill_tokens_per_s == SimParams().prefill_tokens_per_s


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"itl": 9}', "unknown sim profile keys itl"),
        ('{"itl_ms": "fast"}', "itl_ms must be a float"),
        ('{"answer_tokens": 2.5}', "answer_tokens must be a int"),
        ('{"seed": true}', "seed must be a int"),
        ('{"itl_ms": -1}', "must be >= 0"),
        ('{"tool_calls": "always"}', "tool_calls must be one of"),
        ("[1, 2]", "must hold a JSON object"),
        ("{not json", "is not JSON"),
    ],
)
def test_a_bad_profile_is_a_clear_argparse_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "profile.json"
    path.write_text(content)

    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", "--sim-profile", str(path)])

    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "--sim-profile" in error
    assert message in error


def test_a_missing_profile_is_a_clear_argparse_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--sim-profile", str(tmp_path / "none.json")])

    assert "cannot read sim profile" in capsys.readouterr().err
