"""The prepared GPU check: its arguments, the model it writes, its report and sim profile."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from benchmarks.gpu_check import (
    STEP_AUDIO_R1,
    TINY,
    Measurements,
    inter_token_s,
    largest_tensor_parallel,
    main,
    model_config,
    parse_args,
    report_lines,
    write_model_dir,
    write_outputs,
)
from realtime.cli import build_parser, sim_params_of
from realtime.engines.sim import SimParams

REPO = Path(__file__).resolve().parents[2]

STANDIN_CONFIG = {
    "architectures": ["Qwen2AudioForConditionalGeneration"],
    "model_type": "qwen2_audio",
    "audio_token_index": 561,
    "audio_config": {"d_model": 128, "encoder_layers": 2, "encoder_attention_heads": 4,
                     "encoder_ffn_dim": 512, "num_mel_bins": 128, "max_source_positions": 1500},
    "text_config": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                    "num_key_value_heads": 2, "intermediate_size": 384, "vocab_size": 576,
                    "layer_types": ["full_attention"] * 2, "max_window_layers": 28,
                    "model_type": "qwen2"},
}  # fmt: skip

MEASURED = Measurements(
    tensor_parallel=4,
    audio_s_per_s=0.004,
    ttft_ms=28.0,
    itl_ms_1=10.0,
    decode_tps_1=100.0,
    itl_ms_n=13.1,
    decode_tps_n=2400.0,
    streams=32,
    prefix_hit_share=0.5,
    first_packet_p50_ms={"after-think": 2100.0, "mps": 900.0, "speak-first": 420.0},
)


def test_the_full_size_config_has_step_audio_r1s_shapes() -> None:
    config = model_config(STANDIN_CONFIG, STEP_AUDIO_R1)

    assert config["architectures"] == ["Qwen2AudioForConditionalGeneration"]
    text, audio = config["text_config"], config["audio_config"]
    assert (text["hidden_size"], text["num_hidden_layers"]) == (5120, 64)
    assert (text["num_attention_heads"], text["num_key_value_heads"]) == (40, 8)
    assert (text["intermediate_size"], text["vocab_size"]) == (27648, 152_064)
    assert len(text["layer_types"]) == 64
    assert (audio["d_model"], audio["encoder_layers"], audio["encoder_attention_heads"]) == (
        1280,
        32,
        20,
    )
    assert (audio["encoder_ffn_dim"], audio["num_mel_bins"]) == (5120, 128)
    assert config["audio_token_index"] == 561  # the stand-in tokenizer's, kept
    assert STANDIN_CONFIG["text_config"]["hidden_size"] == 128  # not changed in place


def test_the_dry_run_config_keeps_the_stand_ins_tokenizer_vocabulary() -> None:
    text = model_config(STANDIN_CONFIG, TINY)["text_config"]

    assert (text["hidden_size"], text["vocab_size"], text["num_hidden_layers"]) == (128, 576, 2)


def test_the_model_directory_has_no_weights(tmp_path: Path) -> None:
    standin = tmp_path / "standin"
    standin.mkdir()
    (standin / "config.json").write_text(json.dumps(STANDIN_CONFIG))
    (standin / "model.safetensors").write_bytes(b"weights")
    (standin / "tokenizer.json").write_text("{}")

    model_dir = write_model_dir(standin, tmp_path / "model", STEP_AUDIO_R1)

    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "tokenizer.json"]
    assert json.loads((model_dir / "config.json").read_text())["text_config"]["hidden_size"] == 5120


@pytest.mark.parametrize(("gpus", "tp"), [(0, 1), (1, 1), (2, 2), (3, 2), (4, 4), (6, 4), (8, 8)])
def test_tensor_parallel_is_the_most_gpus_that_split_the_kv_heads(gpus: int, tp: int) -> None:
    assert largest_tensor_parallel(gpus) == tp


def test_arguments(tmp_path: Path) -> None:
    args = parse_args(["--dry-run", "--out", str(tmp_path)])
    assert (args.tensor_parallel, args.streams, args.policy_turns) == (1, 32, 2)
    assert parse_args(["--policy-turns", "0"]).policy_turns == 0
    assert (args.profile, args.report) == (tmp_path / "sim-profile.json", tmp_path / "report.json")
    assert parse_args(["--tensor-parallel", "2"]).tensor_parallel == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dry-run", "--tensor-parallel", "4"], "tensor parallel 1"),
        (["--streams", "0"], "must be >= 1"),
        (["--policy-turns", "-1"], "must be >= 0"),
        (["--policy-turns", "two"], "not an integer"),
        (["--audio-seconds", "8", "2"], "SHORT < LONG"),
        (["--audio-seconds", "2", "40"], "LONG <= 30"),
    ],
)
def test_bad_arguments_are_argparse_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_without_a_gpu_the_gpu_run_stops_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("benchmarks.gpu_check.count_gpus", lambda: 0)

    assert main(["--out", str(tmp_path)]) == 2
    assert "no GPU found" in capsys.readouterr().err


def test_the_measured_timings_become_sim_figures() -> None:
    params = MEASURED.sim_params()

    assert params.prefill_tokens_per_s == pytest.approx(12.5 / 0.004, rel=0.01)
    assert (params.ttft_ms, params.itl_ms) == (28.0, 10.0)
    assert params.batch_slowdown == pytest.approx(0.01)


def test_an_audio_cost_below_the_noise_keeps_the_default_prefill_rate() -> None:
    unmeasurable = dataclasses.replace(MEASURED, audio_s_per_s=0.0)

    assert unmeasurable.sim_params().prefill_tokens_per_s == SimParams().prefill_tokens_per_s
    assert "below the timing noise" in "\n".join(report_lines(unmeasurable, dry_run=True))


def test_a_streams_inter_token_time_runs_from_its_own_first_token() -> None:
    # Prefilled in 0.5 s (slower than the 0.04 s median first token of other requests),
    # then 4 more tokens 10 ms apart: the decode figure must not see the slow prefill.
    assert inter_token_s([0.5, 0.51, 0.52, 0.53, 0.54], 5) == pytest.approx(0.01)
    assert inter_token_s([0.5], 1) is None
    assert inter_token_s([], 0) is None


def test_a_decode_below_the_timing_noise_still_makes_valid_sim_figures() -> None:
    instant = dataclasses.replace(MEASURED, itl_ms_1=0.0, itl_ms_n=0.0)

    params = instant.sim_params()

    assert (params.itl_ms, params.batch_slowdown) == (0.0, 0.0)


def test_a_policy_with_only_silent_turns_is_null_in_the_report(tmp_path: Path) -> None:
    silent = {**MEASURED.first_packet_p50_ms, "after-think": float("nan")}
    args = parse_args(["--out", str(tmp_path)])
    write_outputs(dataclasses.replace(MEASURED, first_packet_p50_ms=silent), args)

    report = json.loads(args.report.read_text(), parse_constant=pytest.fail)
    assert report["first_packet_p50_ms"]["after-think"] is None


def test_the_profile_round_trips_through_sim_profile(tmp_path: Path) -> None:
    args = parse_args(["--out", str(tmp_path)])
    write_outputs(MEASURED, args)

    serve = build_parser().parse_args(
        ["serve", "--engine", "sim", "--sim-profile", str(args.profile)]
    )
    assert sim_params_of(serve) == MEASURED.sim_params()
    report = json.loads(args.report.read_text())
    assert report["dry_run"] is False
    assert report["decode_tps_n"] == 2400.0
    assert report["first_packet_p50_ms"]["speak-first"] == 420.0


def test_the_report_says_what_kind_of_figures_it_holds() -> None:
    dry = "\n".join(report_lines(MEASURED, dry_run=True))
    real = "\n".join(report_lines(MEASURED, dry_run=False))

    assert "DRY RUN on CPU" in dry
    assert "MEASURED on GPU" in real
    assert "4.0 ms per second of audio" in real
    assert "32 streams: 2400.0 tokens/s" in real
    assert "50% of the final request" in real
    assert "gateway, mps: p50 900 ms" in real
    assert "TTS SIMULATED" in real


@pytest.mark.slow
@pytest.mark.vllm
def test_a_dry_run_serves_the_tiny_model_and_writes_the_report_and_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--dry-run", "--out", str(tmp_path), "--streams", "4", "--decode-tokens", "8"]
    assert main([*argv, "--repeats", "1", "--audio-seconds", "1", "3", "--policy-turns", "1"]) == 0

    printed = capsys.readouterr().out
    assert "DRY RUN on CPU" in printed
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["text_config"]["hidden_size"] == TINY.hidden_size
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["dry_run"] is True
    assert report["tensor_parallel"] == 1
    assert report["decode_tps_1"] > 0
    assert report["decode_tps_n"] > 0
    assert 0.0 <= report["prefix_hit_share"] <= 1.0
    first_packets = report["first_packet_p50_ms"]
    assert set(first_packets) == {"after-think", "mps", "speak-first"}
    assert any(ms is not None and ms > 0 for ms in first_packets.values())  # None: all silent
    assert "first packet through the gateway, speak-first" in printed
    serve = build_parser().parse_args(
        ["serve", "--sim-profile", str(tmp_path / "sim-profile.json")]
    )
    assert sim_params_of(serve).itl_ms == pytest.approx(report["itl_ms_1"], abs=0.001)
