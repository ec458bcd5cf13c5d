"""Smart Turn on real speech, offline: how its score separates mid-sentence pauses from turn
ends as the silence grows, and what each end-of-turn rule would do with those scores.

For every labelled point of the real-speech set (``benchmarks/real_speech_set.py``: pauses
labelled ``mid_clause``, ``clause_boundary``, ``sentence_end`` by their text, and each turn's
end), the model is asked about the turn's audio up to that point followed by ``S`` ms of
silence, for each ``S`` in ``--silences-ms``, exactly as the service asks (the turn from its
start with 300 ms of prefix, at most the last 8 s). A mid-sentence pause is scored at
silences longer than the speaker really held it too: the words before it are the person's,
only the pause is stretched, which is how a slower, hesitant caller would say them. Silence
is digital zero, and again with ±1 LSB of noise (``--dither-seeds``): the int8 model's score
moves with it, and a rule that decides on one noisy score pays for that.

The scores are cached (``--scores``, JSON), then every rule in ``RULES`` (and the
``realtime.turns.end_of_turn`` mapping of each eagerness) is replayed on them:

- a mid-sentence pause that the speaker really held ``P`` ms ends the turn if the rule
  decides before ``P`` (a premature reply); its stretched versions show what happens at
  pauses longer than this read speech has;
- at a turn end, the silence after which the rule decides (end of turn), plus the model's
  time (about 0.1 s) where the decision came from a score.

    python benchmarks/real_speech_set.py && python benchmarks/end_of_turn_scores.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.real_speech_set import DEFAULT_OUT, MID_SENTENCE, RATE
from realtime.protocol.session_config import ServerVad
from realtime.turns.end_of_turn import (
    EAGERNESS,
    SPECULATIVE_CANDIDATE_MS,
    EndOfTurnTiming,
    end_of_turn_timing,
)
from realtime.turns.smart_turn import SmartTurnModel
from tokenizer.pcm import read_wav
from tokenizer.turn_features import SMART_TURN_WINDOW_SAMPLES

SILENCES_MS = (200, 300, 400, 500, 600, 700, 800, 1000)
PREFIX_MS = 300
MODEL_MS = 100  # what a decision from a score adds (the model's CPU time on this machine)
HESITATIONS_MS = (600, 800)  # stretched mid-sentence pauses: how long a hesitant caller holds them


@dataclass(frozen=True)
class Point:
    turn: str
    label: str  # mid_clause | clause_boundary | sentence_end | turn_end
    held_ms: float  # how long the speaker really paused (inf at a turn end)
    scores: dict[int, list[float]]  # silence ms -> [zeros, dither seeds...]


def score_points(directory: Path, silences: Sequence[int], dither_seeds: Sequence[int],
                 model: SmartTurnModel) -> list[Point]:  # fmt: skip
    manifest = json.loads((directory / "manifest.json").read_text())
    points: list[Point] = []
    for entry in manifest["turns"]:
        pcm, _ = read_wav(directory / entry["file"])
        start = max(0, entry["speech_start"] - PREFIX_MS * RATE // 1000)
        segments = entry["segments"]
        ends = [(seg[1], label, pause) for seg, label, pause in
                zip(segments, entry["pause_labels"], entry["pauses_ms"], strict=False)
                if label in (*MID_SENTENCE, "sentence_end")]  # fmt: skip
        ends.append((entry["true_end"], "turn_end", float("inf")))
        for end, label, held in ends:
            windows: list[npt.NDArray[np.int16]] = []
            for silence in silences:
                pad = np.zeros(silence * RATE // 1000, dtype=np.int16)
                audio = np.concatenate([pcm[start:end], pad])[-SMART_TURN_WINDOW_SAMPLES:]
                windows.append(audio)
                for seed in dither_seeds:
                    noise = np.random.default_rng(seed).integers(-1, 2, len(audio))
                    windows.append((audio + noise).astype(np.int16))
            probabilities = model.score(windows).tolist()
            per = 1 + len(dither_seeds)
            scores = {s: probabilities[i * per : (i + 1) * per] for i, s in enumerate(silences)}
            points.append(Point(entry["name"], label, held, scores))
    return points


# -- rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """An end-of-turn rule, decided as the service decides it (``EndOfTurnTiming.decides``):
    scores at its points, ``max_silence_ms`` whatever they say."""

    name: str
    timing: EndOfTurnTiming

    def decide(self, scores: dict[int, list[float]], variant: int) -> float:
        """The silence (ms) after which this rule ends the turn at this point."""
        timing = self.timing
        seen: dict[int, float] = {}
        for index, at in enumerate(timing.score_at_ms):
            if at >= timing.max_silence_ms:
                break
            seen[index] = scores[at][variant]
            if timing.decides(seen):
                return at + MODEL_MS
        return float(timing.max_silence_ms)


def semantic(name: str, points: tuple[int, ...], threshold: float, max_ms: int,
             average: int = 1) -> Rule:  # fmt: skip
    timing = EndOfTurnTiming(SPECULATIVE_CANDIDATE_MS, max_ms, threshold, points, average)
    return Rule(name, timing)


def silence_window(ms: int) -> Rule:
    return Rule(f"server_vad {ms} ms", end_of_turn_timing(ServerVad(silence_duration_ms=ms)))


RULES: tuple[Rule, ...] = (
    silence_window(500),
    silence_window(800),
    semantic("old auto: 200 ms, 0.3, 1.5 s", (200,), 0.3, 1500),
    semantic("one score at 200 ms, 0.6, 1 s", (200,), 0.6, 1000),
    semantic("one score at 600 ms, 0.8, 1 s", (600,), 0.8, 1000),
    semantic("one score at 400 ms, 0.7, 1 s", (400,), 0.7, 1000),
    semantic("mean of 200/300/400 ms, 0.6, 1 s", (200, 300, 400), 0.6, 1000, average=3),
    semantic("mean of 400/500/600 ms, 0.6, 1 s", (400, 500, 600), 0.6, 1000, average=3),
    semantic(
        "mean of 2 from 200 ms on, 0.6, 1 s", (200, 300, 400, 500, 600, 700), 0.6, 1000, average=2
    ),
    semantic("mean of 2 from 400 ms on, 0.7, 1 s", (400, 500, 600, 700), 0.7, 1000, average=2),
)


def replay(rule: Rule, points: list[Point], variants: int, speech_min: float
           ) -> dict[str, Any]:  # fmt: skip
    premature = sentence = 0
    hesitations = dict.fromkeys(HESITATIONS_MS, 0)
    mid_count = sentence_count = 0
    eot: list[float] = []
    for point in points:
        for variant in range(variants):
            decided = rule.decide(point.scores, variant)
            if point.label == "turn_end":
                eot.append(decided)
            elif point.label in MID_SENTENCE:
                mid_count += 1
                premature += decided <= point.held_ms
                for held in HESITATIONS_MS:
                    hesitations[held] += decided <= held
            else:
                sentence_count += 1
                sentence += decided <= point.held_ms
    return {
        "rule": rule.name,
        "premature_per_min": round(premature / variants / speech_min, 2),
        "mid_sentence_ended": f"{premature / variants:.1f} of {mid_count // variants}",
        **{
            f"cut_if_held_{held}_ms": f"{count / mid_count:.0%}"
            for held, count in hesitations.items()
        },
        "sentence_ends_ended": f"{sentence / variants:.1f} of {sentence_count // variants}",
        "end_of_turn_p50_ms": round(float(np.percentile(eot, 50))),
        "end_of_turn_p90_ms": round(float(np.percentile(eot, 90))),
        "turn_ends_by_score": f"{np.mean([e < rule.timing.max_silence_ms for e in eot]):.0%}",
    }


def area_under_roc(positives: list[float], negatives: list[float]) -> float:
    """P(a random positive scores above a random negative), ties counting half."""
    if not positives or not negatives:
        return float("nan")
    pos = np.asarray(positives)[:, None]
    neg = np.asarray(negatives)[None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def separation(points: list[Point], silences: Sequence[int]) -> list[dict[str, Any]]:
    """Median score per label and silence, and how much ±1 LSB moves one score."""
    rows = []
    for silence in silences:
        row: dict[str, Any] = {"silence_ms": silence}
        for label in ("mid_clause", "clause_boundary", "sentence_end", "turn_end"):
            values = [p.scores[silence][0] for p in points if p.label == label]
            row[label] = round(float(np.median(values)), 2) if values else None
        ends = [v for p in points if p.label == "turn_end" for v in p.scores[silence]]
        mids = [v for p in points if p.label in MID_SENTENCE for v in p.scores[silence]]
        row["auc_turn_end_vs_mid_sentence"] = round(area_under_roc(ends, mids), 3)
        spreads = [max(p.scores[silence]) - min(p.scores[silence]) for p in points]
        row["dither_spread_p90"] = round(float(np.percentile(spreads, 90)), 2)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--scores",
        type=Path,
        default=Path("results/end_of_turn_scores.json"),
        help="cache of the model's scores (reused when present)",
    )
    parser.add_argument("--rescore", action="store_true", help="ignore the cache")
    parser.add_argument("--silences-ms", type=int, nargs="+", default=list(SILENCES_MS))
    parser.add_argument("--dither-seeds", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    args = parser.parse_args(argv)  # fmt: skip
    manifest = json.loads((args.set / "manifest.json").read_text())
    if args.scores.is_file() and not args.rescore:
        cached = json.loads(args.scores.read_text())
        points = [
            Point(p["turn"], p["label"], p["held_ms"], {int(k): v for k, v in p["scores"].items()})
            for p in cached["points"]
        ]
        silences = cached["silences_ms"]
    else:
        started = time.perf_counter()
        points = score_points(args.set, args.silences_ms, args.dither_seeds,
                              SmartTurnModel(intra_op_threads=args.threads))  # fmt: skip
        silences = args.silences_ms
        args.scores.parent.mkdir(parents=True, exist_ok=True)
        args.scores.write_text(json.dumps({
            "silences_ms": silences,
            "points": [{"turn": p.turn, "label": p.label, "held_ms": p.held_ms,
                        "scores": p.scores} for p in points],
        }))  # fmt: skip
        print(f"scored {len(points)} points in {time.perf_counter() - started:.0f} s")
    variants = len(next(iter(points[0].scores.values())))
    speech_min = manifest["counts"]["speech_s"] / 60
    print(f"real speech: {manifest['counts']} ({speech_min:.1f} min)")
    print("\nmedian P(complete) by label and silence, how well the score separates turn ends")
    print("from mid-sentence pauses (area under the ROC curve), p90 of the spread ±1 LSB causes:")
    for row in separation(points, silences):
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    rules = list(RULES) + [Rule(f"eagerness {name}", timing) for name, timing in EAGERNESS.items()]
    print(f"\nrules replayed on the scores ({variants} noise variants each):")
    for rule in rules:
        if not set(rule.timing.score_at_ms) <= set(silences):
            continue
        print("  " + json.dumps(replay(rule, points, variants, speech_min)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
