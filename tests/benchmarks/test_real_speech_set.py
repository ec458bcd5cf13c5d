"""The real-speech set that turn-taking defaults are chosen on: built from the recordings
``scripts/install.sh --test`` fetched, with pauses labelled by their text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import real_speech_set
from benchmarks.turn_taking import Turn, stretch_pauses

SOURCE = Path(__file__).resolve().parents[2] / ".cache" / "real-speech"


@pytest.fixture(scope="module")
def turns() -> list[real_speech_set.RealTurn]:
    if not (SOURCE / "asterisk").is_dir():
        pytest.fail(f"no recordings in {SOURCE}: run scripts/fetch-real-speech.sh")
    return real_speech_set.build(SOURCE)


def by_name(turns: list[real_speech_set.RealTurn], name: str) -> real_speech_set.RealTurn:
    return next(t for t in turns if t.name == name)


def test_pauses_are_labelled_by_the_punctuation_where_the_speaker_paused(
    turns: list[real_speech_set.RealTurn],
) -> None:
    # "Login incorrect.  Please enter ..." pauses at the full stop;
    # "Please enter a new extension, followed by pound." at the comma.
    assert by_name(turns, "asterisk_agent-incorrect").pause_labels == ["sentence_end"]
    assert by_name(turns, "asterisk_agent-newlocation").pause_labels == ["clause_boundary"]
    # The LibriVox sentence split over two files pauses at "young man, | unless".
    austen = by_name(turns, "austen_ill_disposed")
    assert "clause_boundary" in austen.pause_labels
    for turn in turns:
        assert len(turn.pause_labels) == len(turn.segments) - 1
        assert set(turn.pause_labels) <= {*real_speech_set.MID_SENTENCE, "sentence_end", "in_word"}


def test_the_set_is_real_speech_of_both_sources_with_their_licences(
    turns: list[real_speech_set.RealTurn], tmp_path: Path
) -> None:
    assert {t.source for t in turns} == {"asterisk", "librivox"}
    assert len(turns) >= 100
    manifest = real_speech_set.write_set(real_speech_set.live_subset(turns), tmp_path)
    assert manifest["real_speech"] is True
    assert all(entry["licence"] for entry in manifest["turns"])
    assert manifest["counts"]["clause_boundary"] > 0 and manifest["counts"]["complete"] > 0
    # Fragments ("is now in the conference.") have no turn end and are left out.
    assert all(t.text[:1].isupper() for t in turns)


def test_stretching_holds_mid_sentence_pauses_and_keeps_the_words() -> None:
    rate = 16_000
    voice = np.full(1_600, 1_000, dtype=np.int16)
    gap = np.zeros(3_200, dtype=np.int16)  # 200 ms
    pcm = np.concatenate([voice, gap, voice, gap, voice])
    segments = [[0, 1_600], [4_800, 6_400], [9_600, 11_200]]
    turn = Turn("t", "paused", "", pcm, segments, 11_200, 0, ["clause_boundary", "sentence_end"])

    stretched = stretch_pauses(turn, rate, 800)

    (_, b), (c, d), (e, f) = stretched.segments
    assert (c - b) == 800 * 16 and (e - d) == 200 * 16  # only the mid-sentence pause grows
    assert stretched.true_end == f == len(stretched.pcm)
    assert np.count_nonzero(stretched.pcm) == np.count_nonzero(pcm)
