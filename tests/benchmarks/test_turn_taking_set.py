"""The turn-taking evaluation set generator (benchmarks/turn_taking_set.py), its --small set."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import turn_taking_set
from benchmarks.turn_taking_set import frame_rms
from realtime.client.turn import voiced_end
from tokenizer.pcm import read_wav

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs Debian's espeak-ng"
)
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "turn_taking_set.py"


def generate(out: Path) -> dict[str, Any]:
    subprocess.run(
        [sys.executable, str(SCRIPT), "--small", "--out", str(out)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    return manifest


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("turn-taking-set")
    return out, generate(out)


def test_small_set_has_both_kinds(small_set: tuple[Path, dict[str, Any]]) -> None:
    _, manifest = small_set
    kinds = [turn["kind"] for turn in manifest["turns"]]
    assert kinds.count("paused") == turn_taking_set.SMALL_TURNS_PER_KIND
    assert kinds.count("complete") == turn_taking_set.SMALL_TURNS_PER_KIND
    assert manifest["totals"]["turns"] == len(kinds)
    assert len({turn["text"] for turn in manifest["turns"]}) == len(kinds)


def test_segments_pauses_and_true_end(small_set: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = small_set
    low, high = turn_taking_set.PAUSE_MS
    for turn in manifest["turns"]:
        pcm, rate = read_wav(out / turn["file"])
        ramp = rate * turn_taking_set.FADE_MS // 1000
        frame = rate // 100
        # The voiced gate: 40 dB under the turn's loudest 10 ms frame.
        gate = max(frame_rms(pcm, rate)) * 10 ** (-turn_taking_set.VOICED_RANGE_DB / 20)
        assert rate == manifest["sample_rate"] == turn["sample_rate"]
        assert len(pcm) == turn["num_samples"]
        segments = turn["segments"]
        assert len(segments) == (len(turn["parts"]))
        assert (len(segments) >= 2) == (turn["kind"] == "paused")
        for start, end in segments:
            assert 0 <= start < end <= len(pcm)
        for (_, end), (start, _) in itertools.pairwise(segments):
            pause_ms = 1000.0 * (start - end) / rate
            assert low <= pause_ms <= high, turn["name"]
            assert not np.any(pcm[end + ramp : start - ramp]), "a mid-turn pause is silent"
            assert max(frame_rms(pcm[end:start], rate)) < gate
        assert turn["pauses_ms"] == pytest.approx(
            [1000.0 * (b[0] - a[1]) / rate for a, b in itertools.pairwise(segments)]
        )
        true_end = turn["true_end"]
        assert true_end == segments[-1][1]
        assert turn["speech_start"] == segments[0][0] > 0
        assert 0 < true_end < len(pcm), "the true end lies inside the audio"
        # After the true end: a ramp of a few ms below the voiced gate, then digital silence.
        assert max(frame_rms(pcm[true_end:], rate)) < gate
        assert not np.any(pcm[true_end + ramp :])
        # The true end is where the voice ends by the SDK's own level gate (10 ms frames)...
        assert voiced_end(pcm, rate) == true_end
        # ...so the 10 ms before it are voiced, not espeak-ng's trailing silence.
        assert frame_rms(pcm[true_end - frame : true_end], rate)[0] >= gate


def test_generator_is_deterministic(small_set: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, manifest = small_set
    again = generate(tmp_path)
    assert again == manifest
    for turn in manifest["turns"]:
        assert (tmp_path / turn["file"]).read_bytes() == (out / turn["file"]).read_bytes()


def test_full_plan_shape() -> None:
    plans = turn_taking_set.plan_turns()
    assert len(plans) == len(turn_taking_set.SENTENCES) == 40
    paused = [plan for plan in plans if plan.kind == "paused"]
    assert len(paused) == turn_taking_set.PAUSED_TURNS
    assert all(2 <= len(plan.parts) <= 3 for plan in paused)
    assert len({plan.voice for plan in plans}) >= 4
    assert len({plan.rate_wpm for plan in plans}) == len(turn_taking_set.RATES_WPM)
    assert plans == turn_taking_set.plan_turns()
