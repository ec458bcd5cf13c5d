"""``serve``'s vllm options: what the command line gives the engine, and what it refuses."""

from __future__ import annotations

import argparse

import pytest

from realtime.cli import build_parser
from realtime.engines.factory import EngineOptions, build_engine
from realtime.engines.vllm.cli_args import vllm_options_from
from realtime.engines.vllm.engine import VllmEngine


def parse(*args: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", "--engine", "vllm", *args])


def test_the_defaults_are_step_audio_r1s() -> None:
    options = vllm_options_from(parse("--engine-url", "http://vllm:9999/v1"))

    assert options.urls == ("http://vllm:9999/v1",)
    assert options.model == "Step-Audio-R1"
    assert options.stop_token_ids == (151665,)
    assert options.temperature == 0.7 and options.seed is None


def test_several_urls_stop_ids_and_sampling_fields_are_taken() -> None:
    args = parse(
        "--engine-url", "http://a:9999/v1", "--engine-url", "http://b:9999/v1",
        "--stop-token-id", "559", "--model", "R1.1", "--engine-timeout-s", "5",
        "--engine-seed", "3", "--engine-extra-body", '{"top_p": 0.9}',
    )  # fmt: skip
    options = vllm_options_from(args)

    assert options.urls == ("http://a:9999/v1", "http://b:9999/v1")
    assert options.stop_token_ids == (559,) and options.model == "R1.1"
    assert options.timeout_s == 5.0 and options.seed == 3
    assert dict(options.extra_body) == {"top_p": 0.9}


def test_no_url_is_an_error() -> None:
    with pytest.raises(ValueError, match="--engine-url"):
        vllm_options_from(parse())


def test_extra_body_must_be_a_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--engine-url", "http://a/v1", "--engine-extra-body", "[1, 2]")
    assert "must be a JSON object" in capsys.readouterr().err


def test_the_factory_builds_the_vllm_engine() -> None:
    options = vllm_options_from(parse("--engine-url", "http://a:1/v1"))
    engine = build_engine(EngineOptions(name="vllm", vllm=options))

    assert isinstance(engine, VllmEngine)
    assert (engine.info.name, engine.info.model, engine.info.simulated) == (
        "vllm",
        "Step-Audio-R1",
        False,
    )
