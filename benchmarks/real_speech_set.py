"""The real-speech turn-taking set: people's recordings with every pause labelled by its text.

Turn-taking thresholds are chosen on this set, never on espeak-ng speech (Smart Turn judges
synthetic prosody close to chance). ``scripts/fetch-real-speech.sh`` (run by
``scripts/install.sh --test``) fetches the recordings from two registry packages into
``.cache/real-speech/``; this script turns them into a set that ``benchmarks/turn_taking.py``
says to the service and ``benchmarks/end_of_turn_scores.py`` scores offline:

- ``asterisk``: Debian's asterisk-core-sounds-en-wav, telephone prompts read by Allison Smith
  (CC-BY-SA-3.0; 8 kHz, resampled to 16 kHz here), each a turn: "Please leave your message
  after the tone. When done, hang up, or press the pound key." Words are aligned to the
  audio with pocketsphinx (its aligner and English model, from the pocketsphinx wheel).
- ``librivox``: LibriVox recordings of Sense and Sensibility (public domain) from the test
  data of pocketsphinx's source distribution, with its word alignments; a sentence split
  over two files is joined at its clause boundary. Punctuation is the novel's.

Prompts that are fragments ("is now in the conference.", "... will be exactly...") are left
out: their end is no turn end. Each turn's voiced parts are found from the audio's level
(10 ms frames within 40 dB of the turn's loudest, as the service and the SDK gate "voiced",
and 15 dB above the recording's noise floor); a gap of at least
``MIN_PAUSE_MS`` between parts is a pause, labelled by the text at the word before it:

- ``mid_clause``: no punctuation there (a hesitation, a breath inside a clause);
- ``clause_boundary``: ``,`` ``;`` ``:`` or a dash: the sentence goes on;
- ``sentence_end``: ``.`` ``?`` ``!`` with more to say in the same turn;
- ``in_word``: not at a word boundary (a stop, a breath), or where the alignment cannot say.

Together the first two are the *mid-sentence* pauses at which a reply is premature; the end
of each turn is a real turn end. The manifest has the fields ``turn_taking.py`` reads
(``segments``, ``true_end``, ``speech_start``, ``kind``) plus ``pause_labels``, ``source`` and
``licence``; the recording's own trailing audio is kept after the true end.

    python benchmarks/real_speech_set.py                 # results/real_speech_set/
    python benchmarks/real_speech_set.py --live-subset   # the turns said live (about 6 min)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

from tokenizer.pcm import read_wav, write_wav
from tokenizer.resample import resample

RATE = 16_000
DEFAULT_SOURCE = Path(".cache/real-speech")
DEFAULT_OUT = Path("results/real_speech_set")
MIN_PAUSE_MS = 100
"""Shorter gaps are not pauses silero can see (its chunks are 32 ms and it trails by two)."""
FRAME_MS = 10
VOICED_RANGE_DB = 40.0
NOISE_MARGIN_DB = 15.0
"""...and this far above the recording's noise floor (its quietest tenth of frames)."""
TRAILING_KEEP_MS = 300
LABEL_TOLERANCE_MS = 120
"""A pause belongs to the word boundary within this distance of its start."""

CLAUSE_MARKS = ",;:-—"
SENTENCE_MARKS = ".?!"
MID_SENTENCE = ("mid_clause", "clause_boundary")
DIGITS = "zero one two three four five six seven eight nine".split()

LICENCES = {
    "asterisk": "CC-BY-SA-3.0, Allison Smith (Debian asterisk-core-sounds-en-wav)",
    "librivox": "public domain, LibriVox (pocketsphinx 5.1.1 sdist test data, BSD-2-Clause)",
}

# The LibriVox files, punctuated as the novel is; a turn joins files said without a break in
# the text (the clips were cut at pauses).
AUSTEN = "sense_and_sensibility_01_austen_64kb-{}"
LIBRIVOX_TURNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("austen_dashwood", ("0870",),
     "And mister John Dashwood had then leisure to consider how much there might be "
     "prudently in his power to do for them."),
    ("austen_ill_disposed", ("0880", "0890"),
     "He was not an ill disposed young man, unless to be rather cold hearted and rather "
     "selfish is to be ill disposed."),
    ("austen_amiable", ("0920", "0930"),
     "Had he married a more a amiable woman, he might have been made still more respectable "
     "than he was; he might even have been made amiable himself."),
)  # fmt: skip


@dataclass
class RealTurn:
    name: str
    source: str
    text: str
    pcm: npt.NDArray[np.int16]
    segments: list[list[int]]
    pause_labels: list[str]
    words: list[tuple[str, float, float]]  # (word as written, start s, end s)

    @property
    def kind(self) -> str:
        return "paused" if self.pause_labels else "complete"


# -- voiced parts and labels --------------------------------------------------------------


def voiced_segments(pcm: npt.NDArray[np.int16], min_pause_ms: int = MIN_PAUSE_MS
                    ) -> list[list[int]]:  # fmt: skip
    """[start, end) of each voiced part: 10 ms frames within 40 dB of the loudest, parts
    closer than ``min_pause_ms`` merged."""
    frame = RATE * FRAME_MS // 1000
    count = len(pcm) // frame
    if count == 0:
        return []
    frames = pcm[: count * frame].astype(np.float64).reshape(count, frame)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-9)
    floor = max(level.max() - VOICED_RANGE_DB, np.percentile(level, 10) + NOISE_MARGIN_DB)
    voiced = level >= floor
    segments: list[list[int]] = []
    for index in np.flatnonzero(voiced):
        start, end = int(index) * frame, (int(index) + 1) * frame
        if segments and start - segments[-1][1] < min_pause_ms * RATE // 1000:
            segments[-1][1] = end
        else:
            segments.append([start, end])
    return segments


def tokens_of(text: str) -> list[tuple[str, str]]:
    """(word for the aligner, punctuation after it) for each word of ``text``."""
    out: list[tuple[str, str]] = []
    for raw in re.findall(r"[A-Za-z0-9']+[^A-Za-z0-9' ]*", text):
        word = re.match(r"[A-Za-z0-9']+", raw)
        assert word is not None
        spoken = word.group(0).lower()
        marks = raw[len(word.group(0)) :]
        if spoken.isdigit():
            for digit in spoken[:-1]:
                out.append((DIGITS[int(digit)], ""))
            out.append((DIGITS[int(spoken[-1])], marks))
        else:
            out.append((spoken, marks))
    return out


def label_of(marks: str) -> str:
    if any(m in SENTENCE_MARKS for m in marks):
        return "sentence_end"
    if any(m in CLAUSE_MARKS for m in marks):
        return "clause_boundary"
    return "mid_clause"


def label_pauses(segments: list[list[int]], words: list[tuple[str, float, float]],
                 marks: list[str]) -> list[str]:  # fmt: skip
    """The label of each gap between ``segments``: the punctuation at the word boundary the
    gap lies on (within ``LABEL_TOLERANCE_MS``), or ``in_word`` (a stop or a breath inside a
    word, or a gap the alignment cannot place)."""
    labels = []
    tolerance = LABEL_TOLERANCE_MS / 1000
    for (_, gap_start), (gap_end, _) in itertools.pairwise(segments):
        start_s, end_s = gap_start / RATE, gap_end / RATE
        best, best_distance = None, float("inf")
        for index in range(len(words) - 1):
            boundary = (words[index][2], words[index + 1][1])
            low, high = min(boundary), max(boundary)
            distance = max(0.0, low - end_s, start_s - high)  # 0: the gap meets the boundary
            if distance < best_distance:
                best, best_distance = index, distance
        if best is None or best_distance > tolerance:
            labels.append("in_word")
        else:
            labels.append(label_of(marks[best]))
    return labels


# -- the sources -----------------------------------------------------------------------------


def trim_to_voice(pcm: npt.NDArray[np.int16], segments: list[list[int]]
                  ) -> tuple[npt.NDArray[np.int16], list[list[int]], int]:  # fmt: skip
    """Keep 200 ms before the first voiced sample and ``TRAILING_KEEP_MS`` after the last."""
    start = max(0, segments[0][0] - RATE // 5)
    end = min(len(pcm), segments[-1][1] + TRAILING_KEEP_MS * RATE // 1000)
    return pcm[start:end].copy(), [[a - start, b - start] for a, b in segments], start


def asterisk_turns(folder: Path, min_words: int = 4) -> list[RealTurn]:
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=RATE, bestpath=False, loglevel="FATAL")
    dictionary = decoder.get_config()["dict"]
    known = {line.split()[0] for line in Path(dictionary).read_text().splitlines() if line}
    turns = []
    for line in (folder / "core-sounds-en.txt").read_text(errors="replace").splitlines():
        name, sep, text = line.partition(":")
        text = text.strip()
        wav = folder / f"{name.strip()}.wav"
        if not sep or line.startswith(";") or "[" in text or not wav.is_file():
            continue
        if (
            not text[:1].isupper()
            or not text.endswith(tuple(SENTENCE_MARKS))
            or text.endswith("..")
        ):
            continue  # a fragment meant to be joined to another prompt: no turn end
        tokens = tokens_of(text)
        if len(tokens) < min_words or any(word not in known for word, _ in tokens):
            continue
        pcm8k, rate = read_wav(wav)
        pcm = resample(pcm8k, rate, RATE)
        decoder.set_align_text(" ".join(word for word, _ in tokens))
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)
        decoder.end_utt()
        aligned = [
            (segment.word, segment.start_frame / 100, (segment.end_frame + 1) / 100)
            for segment in decoder.seg() or ()  # None: the aligner found no path
            if not segment.word.startswith(("<", "["))
        ]
        if len(aligned) != len(tokens):
            continue
        segments = voiced_segments(pcm)
        if not segments:
            continue
        pcm, segments, offset = trim_to_voice(pcm, segments)
        shift = offset / RATE
        words = [(tokens[i][0], start - shift, end - shift) for i, (_, start, end) in
                 enumerate(aligned)]  # fmt: skip
        labels = label_pauses(segments, words, [marks for _, marks in tokens])
        turns.append(RealTurn(f"asterisk_{name.strip()}", "asterisk", text, pcm, segments,
                              labels, words))  # fmt: skip
    return turns


def librivox_turns(folder: Path) -> list[RealTurn]:
    turns = []
    for name, parts, text in LIBRIVOX_TURNS:
        pieces, words = [], []
        offset = 0.0
        for part in parts:
            pcm, rate = read_wav(folder / f"{AUSTEN.format(part)}.wav")
            if rate != RATE:
                pcm = resample(pcm, rate, RATE)
            alignment = json.loads((folder / f"{AUSTEN.format(part)}.json").read_text())
            words += [(w["t"].split("(")[0], offset + w["b"], offset + w["b"] + w["d"])
                      for w in alignment["w"] if not w["t"].startswith("<")]  # fmt: skip
            pieces.append(pcm)
            offset += len(pcm) / RATE
        pcm = np.concatenate(pieces)
        tokens = tokens_of(text)
        if [w for w, _ in tokens] != [w for w, _, _ in words]:
            raise ValueError(f"{name}: the punctuated text does not match the alignment")
        segments = voiced_segments(pcm)
        pcm, segments, start = trim_to_voice(pcm, segments)
        shift = start / RATE
        words = [(w, a - shift, b - shift) for w, a, b in words]
        labels = label_pauses(segments, words, [marks for _, marks in tokens])
        turns.append(RealTurn(name, "librivox", text, pcm, segments, labels, words))
    return turns


def build(source: Path) -> list[RealTurn]:
    if not (source / "asterisk").is_dir() or not (source / "librivox").is_dir():
        raise SystemExit(f"no recordings in {source}: run scripts/fetch-real-speech.sh first")
    return librivox_turns(source / "librivox") + asterisk_turns(source / "asterisk")


def live_subset(turns: list[RealTurn], paused: int = 27, complete: int = 14) -> list[RealTurn]:
    """The turns said live (about 6 minutes a session): every LibriVox turn, ``paused``
    prompts with a mid-sentence pause and ``complete`` prompts with no pause (in the order of
    the prompts' index: a fixed choice)."""
    chosen = [t for t in turns if t.source == "librivox"]
    chosen += [t for t in turns if t.source == "asterisk"
               and any(label in MID_SENTENCE for label in t.pause_labels)][:paused]  # fmt: skip
    chosen += [t for t in turns if t.source == "asterisk" and t.kind == "complete"][:complete]
    return chosen


def write_set(turns: list[RealTurn], out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for turn in turns:
        file = f"{turn.name}.wav"
        write_wav(out / file, turn.pcm, RATE)
        entries.append({
            "name": turn.name, "kind": turn.kind, "text": turn.text, "file": file,
            "segments": turn.segments, "pause_labels": turn.pause_labels,
            "pauses_ms": [1000 * (b[0] - a[1]) / RATE
                          for a, b in zip(turn.segments, turn.segments[1:], strict=False)],
            "speech_start": turn.segments[0][0], "true_end": turn.segments[-1][1],
            "source": turn.source, "licence": LICENCES[turn.source],
            "words": [list(w) for w in turn.words],
        })  # fmt: skip
    labels = [label for turn in turns for label in turn.pause_labels]
    manifest = {
        "sample_rate": RATE,
        "real_speech": True,
        "sources": LICENCES,
        "counts": {
            "turns": len(turns),
            "paused": sum(t.kind == "paused" for t in turns),
            "complete": sum(t.kind == "complete" for t in turns),
            **{label: labels.count(label) for label in (*MID_SENTENCE, "sentence_end", "in_word")},
            "speech_s": round(sum((t.segments[-1][1] - t.segments[0][0]) / RATE for t in turns), 1),
        },
        "turns": entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def load_labels(directory: Path) -> dict[str, list[str]]:
    manifest = json.loads((directory / "manifest.json").read_text())
    return {entry["name"]: entry.get("pause_labels", []) for entry in manifest["turns"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=DEFAULT_SOURCE,
        help="where scripts/fetch-real-speech.sh put the recordings",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default {DEFAULT_OUT}, or {DEFAULT_OUT}_live with --live-subset)",
    )
    parser.add_argument(
        "--live-subset",
        action="store_true",
        help="only the turns benchmarks/turn_taking.py --real says live (~6 min)",
    )
    args = parser.parse_args(argv)  # fmt: skip
    turns = build(args.source)
    if args.live_subset:
        turns = live_subset(turns)
    out = args.out or (Path(f"{DEFAULT_OUT}_live") if args.live_subset else DEFAULT_OUT)
    manifest = write_set(turns, out)
    print(f"{out}: {json.dumps(manifest['counts'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
