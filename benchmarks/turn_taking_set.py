"""The turn-taking evaluation set: espeak-ng turns with mid-turn pauses, and complete turns.

Writes one mono int16 WAV per turn and a ``manifest.json`` to the output folder (default
``results/turn_taking_set/``, not committed: the set is rebuilt from this script, seeded).

Two kinds of turn, from the same 40 sentences written with clause boundaries (``|``):

- *paused*: the sentence said in 2-3 parts split at clause boundaries, each part synthesized
  on its own (the non-final ones ending in a comma, so espeak-ng gives them continuation
  intonation), with 300-1500 ms of silence between parts: the speaker pauses mid-sentence;
- *complete*: the whole sentence said in one go.

Each part's voiced span is found from its level (10 ms frames within 40 dB of the turn's
loudest frame, the gate the service and the SDK use for "voiced"): espeak-ng's leading and
trailing silence is cut away, so the manifest's sample positions are where the voice is.
The *true end* of a turn is the end of its last voiced span; everything after it in the file
is digital silence. Voices, speaking rates, splits and pause lengths are drawn from a seeded
generator: the same seed gives the same set.

    python benchmarks/turn_taking_set.py                # 40 turns, a few minutes of speech
    python benchmarks/turn_taking_set.py --small --out /tmp/tt-small
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tokenizer.pcm import read_wav, write_wav
from tokenizer.resample import resample
from tts.espeak import espeak_environment

# Clause boundaries are marked with "|". Questions and statements, 2 or 3 clauses each.
SENTENCES: tuple[str, ...] = (
    "I was thinking that maybe | we could go to the park | after lunch tomorrow.",
    "Could you check whether | the train to Boston | leaves before noon?",
    "When I got home last night | the kitchen was full of smoke.",
    "My sister said that | she would call me back | as soon as she lands.",
    "Do you know if | the pharmacy on Main Street | is open on Sundays?",
    "If it rains this weekend | we should probably | stay inside and watch a film.",
    "The thing I keep forgetting is | where I put the spare keys.",
    "Can you tell me how long | it takes to boil an egg?",
    "I would like to order | a large pizza with mushrooms | and extra cheese.",
    "Before we start the meeting | could you share | the slides from last week?",
    "What I really want to know is | why the sky looks red at sunset.",
    "Because the printer is broken | I had to send the report | by email instead.",
    "Is it true that | octopuses have three hearts?",
    "Last summer we drove | all the way to the coast | in my old van.",
    "How much would it cost | to fly from London to Madrid | in early March?",
    "I am not sure whether | I locked the front door | this morning.",
    "Remind me in an hour | to take the bread | out of the oven.",
    "Which of these two jackets | looks better | with my blue jeans?",
    "After the concert ended | we walked along the river | until midnight.",
    "Could you explain again | how the new heating system works?",
    "The doctor told me that | I should drink more water | and go to bed earlier.",
    "What time does the museum | close on Fridays?",
    "When my grandmother was young | she worked as a nurse | in a small village.",
    "Would it be possible | to move our appointment | to Thursday afternoon?",
    "I think the best way to learn | a new language | is to speak it every day.",
    "Where did you say | the nearest post office is?",
    "Since the shop was closed | we bought the bread | at the petrol station.",
    "Can you help me write | a short note | for my neighbour?",
    "Every morning before work | I go for a run | around the lake.",
    "How do I know if | the chicken is fully cooked?",
    "My favourite part of the film | was when the dog | found its way home.",
    "Do you think we need | to bring umbrellas | for the trip on Saturday?",
    "Although the hotel was expensive | the view from our room | was worth it.",
    "Tell me what happens | if I miss the last bus.",
    "We could either take the car | or ride our bikes | to the beach.",
    "Is there anything I should know | before I plant tomatoes?",
    "The reason I called is that | my internet stopped working | an hour ago.",
    "What would you recommend | for a rainy afternoon | with two small kids?",
    "Once you finish the dishes | could you take out | the rubbish as well?",
    "I wonder how many people | live in Tokyo | right now.",
)
VOICES = ("en-us", "en-gb", "en-gb-x-rp", "en-us+f3", "en-gb+f2", "en-us+m3", "en-gb-scotland")
RATES_WPM = (140, 175, 200)
PAUSE_MS = (300, 1500)
PAUSED_TURNS = 20  # the other sentences are said as complete turns
SMALL_TURNS_PER_KIND = 2
LEAD_MS = 250  # silence before the first voiced sample of a file
TAIL_MS = 300  # silence after the true end, in the file
VOICED_RANGE_DB = 40.0
LEVEL_FRAME_MS = 10
FADE_MS = 2  # ramps just outside the voiced spans, so that the cuts do not click
DEFAULT_OUT = Path("results/turn_taking_set")
DEFAULT_SEED = 20_250
ESPEAK_TIMEOUT_S = 60.0
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class TurnPlan:
    """What one turn says and how, before synthesis."""

    index: int
    kind: str  # "paused" | "complete"
    parts: tuple[str, ...]  # the clauses said with pauses between them (one for complete)
    pauses_ms: tuple[int, ...]  # len(parts) - 1
    voice: str
    rate_wpm: int

    @property
    def text(self) -> str:
        return " ".join(self.parts)

    @property
    def name(self) -> str:
        return f"turn_{self.index:02d}_{self.kind}"


@dataclass
class TurnRecord:
    """One turn of the manifest. Sample positions are at ``sample_rate`` in ``file``."""

    name: str
    file: str
    kind: str
    text: str
    parts: list[str]
    voice: str
    rate_wpm: int
    sample_rate: int
    num_samples: int
    segments: list[list[int]]  # [start, end) of each voiced part, in order
    pauses_ms: list[float]  # silence between consecutive segments
    speech_start: int  # first voiced sample
    true_end: int  # just past the last voiced sample


def clauses(sentence: str) -> list[str]:
    return [part.strip() for part in sentence.split("|")]


def plan_turns(seed: int = DEFAULT_SEED) -> list[TurnPlan]:
    """The whole set, deterministic for a seed: which sentences pause where, voices, rates."""
    rng = random.Random(seed)
    order = list(range(len(SENTENCES)))
    rng.shuffle(order)
    paused = set(order[:PAUSED_TURNS])
    rng.shuffle(order)  # the kinds interleave in the set
    plans = []
    for index, sentence_index in enumerate(order):
        parts = clauses(SENTENCES[sentence_index])
        kind = "paused" if sentence_index in paused else "complete"
        voice = rng.choice(VOICES)
        rate = rng.choice(RATES_WPM)
        if kind == "complete":
            said: tuple[str, ...] = (" ".join(parts),)
        elif len(parts) == 3 and rng.random() < 0.35:
            # Pause at only one of the two boundaries.
            cut = rng.choice((1, 2))
            said = (" ".join(parts[:cut]), " ".join(parts[cut:]))
        else:
            said = tuple(parts)
        low, high = (ms // LEVEL_FRAME_MS for ms in PAUSE_MS)  # whole frames
        pauses = tuple(LEVEL_FRAME_MS * rng.randint(low, high) for _ in range(len(said) - 1))
        plans.append(TurnPlan(index, kind, said, pauses, voice, rate))
    return plans


def small_subset(plans: list[TurnPlan]) -> list[TurnPlan]:
    """The first few turns of each kind (``--small``)."""
    chosen: list[TurnPlan] = []
    for kind in ("paused", "complete"):
        chosen += [plan for plan in plans if plan.kind == kind][:SMALL_TURNS_PER_KIND]
    return sorted(chosen, key=lambda plan: plan.index)


def espeak(text: str, voice: str, rate_wpm: int) -> tuple[npt.NDArray[np.int16], int]:
    """espeak-ng saying ``text``: mono int16 samples and their rate (22050 Hz)."""
    completed = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(rate_wpm), "--stdout", text],
        capture_output=True, check=False, timeout=ESPEAK_TIMEOUT_S, env=espeak_environment(),
    )  # fmt: skip
    if completed.returncode != 0 or not completed.stdout:
        message = completed.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"espeak-ng -v {voice} failed on {text!r}: {message}")
    return read_wav(completed.stdout)


def frame_rms(pcm: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.float64]:
    """RMS of consecutive 10 ms frames (the last one zero-padded)."""
    frame = rate * LEVEL_FRAME_MS // 1000
    n_frames = math.ceil(len(pcm) / frame)
    padded = np.zeros(n_frames * frame, dtype=np.float64)
    padded[: len(pcm)] = pcm
    rms: npt.NDArray[np.float64] = np.sqrt(np.mean(np.square(padded.reshape(n_frames, frame)), 1))
    return rms


def voiced_span(pcm: npt.NDArray[np.int16], rate: int, reference_rms: float) -> tuple[int, int]:
    """[start, end) of the 10 ms frames within ``VOICED_RANGE_DB`` of ``reference_rms``."""
    frame = rate * LEVEL_FRAME_MS // 1000
    voiced = np.flatnonzero(frame_rms(pcm, rate) >= reference_rms * 10 ** (-VOICED_RANGE_DB / 20))
    if len(voiced) == 0:
        raise RuntimeError("espeak-ng produced no voiced audio")
    return int(voiced[0]) * frame, min(len(pcm), int(voiced[-1] + 1) * frame)


def with_ramps(
    pcm: npt.NDArray[np.int16], start: int, end: int, rate: int
) -> npt.NDArray[np.int16]:
    """``pcm[start:end]`` with ``FADE_MS`` of the audio on either side faded in and out.

    The ramps lie outside the voiced span, in frames already below the voiced gate (and
    made quieter still), so the span stays exactly where the voice is; they keep the cuts
    from clicking.
    """
    n = rate * FADE_MS // 1000
    before = pcm[max(0, start - n) : start].astype(np.float64)
    after = pcm[end : end + n].astype(np.float64)
    before = np.concatenate([np.zeros(n - len(before)), before]) * np.linspace(0, 1, n + 1)[1:]
    after = np.concatenate([after, np.zeros(n - len(after))]) * np.linspace(1, 0, n + 1)[:-1]
    out = np.concatenate([before, pcm[start:end].astype(np.float64), after])
    return np.round(out).astype(np.int16)


def synthesize_turn(plan: TurnPlan, rate: int) -> tuple[npt.NDArray[np.int16], TurnRecord]:
    """The turn's audio and its manifest record (``file`` relative to the output folder)."""
    voiced_parts = []
    for position, part in enumerate(plan.parts):
        last = position == len(plan.parts) - 1
        # A trailing comma gives a non-final part espeak-ng's continuation intonation.
        text = part if last or part[-1] in ",.?!" else f"{part},"
        pcm, espeak_rate = espeak(text, plan.voice, plan.rate_wpm)
        voiced_parts.append(np.asarray(resample(pcm, espeak_rate, rate), dtype=np.int16))
    reference = max(float(frame_rms(pcm, rate).max()) for pcm in voiced_parts)
    # Every length is a whole number of 10 ms frames, so the parts' level frames are the
    # file's: the spans found in the parts are the voiced frames of the file.
    ramp = rate * FADE_MS // 1000
    gaps = [rate * LEAD_MS // 1000] + [rate * ms // 1000 for ms in plan.pauses_ms]
    audio = np.zeros(sum(gaps) + rate * TAIL_MS // 1000 + sum(len(p) for p in voiced_parts),
                     dtype=np.int16)  # fmt: skip
    cursor = 0
    segments: list[list[int]] = []
    for gap, pcm in zip(gaps, voiced_parts, strict=True):
        cursor += gap
        start, end = voiced_span(pcm, rate, reference)
        audio[cursor - ramp : cursor + end - start + ramp] = with_ramps(pcm, start, end, rate)
        segments.append([cursor, cursor + end - start])
        cursor += end - start
    audio = audio[: cursor + rate * TAIL_MS // 1000]
    pauses = [1000.0 * (b[0] - a[1]) / rate for a, b in itertools.pairwise(segments)]
    record = TurnRecord(
        name=plan.name,
        file=f"{plan.name}.wav",
        kind=plan.kind,
        text=plan.text,
        parts=list(plan.parts),
        voice=plan.voice,
        rate_wpm=plan.rate_wpm,
        sample_rate=rate,
        num_samples=len(audio),
        segments=segments,
        pauses_ms=pauses,
        speech_start=segments[0][0],
        true_end=segments[-1][1],
    )
    return audio, record


def espeak_version() -> str:
    completed = subprocess.run(
        ["espeak-ng", "--version"], capture_output=True, check=False, timeout=10
    )
    return completed.stdout.decode(errors="replace").strip()


def build_set(out: Path, *, seed: int, rate: int, small: bool) -> dict[str, Any]:
    """Synthesize the set into ``out`` (its old WAVs and manifest replaced); the manifest."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (Debian package espeak-ng)")
    plans = plan_turns(seed)
    if small:
        plans = small_subset(plans)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("turn_*.wav"):
        stale.unlink()
    records = []
    for plan in plans:
        audio, record = synthesize_turn(plan, rate)
        write_wav(out / record.file, audio, rate)
        records.append(record)
    speech_s = sum((r.true_end - r.speech_start) / rate for r in records)
    manifest: dict[str, Any] = {
        "version": MANIFEST_VERSION,
        "generator": "benchmarks/turn_taking_set.py",
        "espeak_ng": espeak_version(),
        "seed": seed,
        "small": small,
        "sample_rate": rate,
        "voiced_range_db": VOICED_RANGE_DB,
        "turns": [asdict(r) for r in records],
        "totals": {
            "turns": len(records),
            "paused": sum(r.kind == "paused" for r in records),
            "complete": sum(r.kind == "complete" for r in records),
            "mid_turn_pauses": sum(len(r.pauses_ms) for r in records),
            "speech_s": round(speech_s, 3),  # first voiced sample to true end, summed
            "audio_s": round(sum(r.num_samples for r in records) / rate, 3),
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--rate", type=int, choices=(16_000, 24_000), default=16_000,
                        help="sample rate of the WAV files (default: %(default)s)")  # fmt: skip
    parser.add_argument("--small", action="store_true",
                        help=f"{SMALL_TURNS_PER_KIND} turns of each kind, for a quick run",
                        )  # fmt: skip
    args = parser.parse_args(argv)
    manifest = build_set(args.out, seed=args.seed, rate=args.rate, small=args.small)
    totals = manifest["totals"]
    print(
        f"{totals['turns']} turns ({totals['paused']} paused with {totals['mid_turn_pauses']} "
        f"mid-turn pauses, {totals['complete']} complete): {totals['speech_s']:.1f} s of speech, "
        f"{totals['audio_s']:.1f} s of audio -> {args.out / 'manifest.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
