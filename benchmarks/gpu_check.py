"""Prepared GPU check: Step-Audio-R1's shapes on vLLM with dummy weights, measured.

For the day a GPU machine is lent (one device call of under 10 minutes). **No GPU was lent
when this was written: it has only run in ``--dry-run`` mode on CPU, and every engine figure
the project quotes is still SIMULATED.** The steps:

1. (GPU only) install the GPU vLLM from PyPI into its own venv (``<out>/venv-gpu``), the
   same version as the CPU venv's; ``--vllm-python`` skips this. Nothing is downloaded from
   a model hub, ever.
2. Write a local model directory: the stand-in's tokenizer, processor and chat template
   (``benchmarks/harness/standin_model.py``, built locally) and a ``config.json`` of upstream
   vLLM's ``Qwen2AudioForConditionalGeneration`` scaled to Step-Audio-R1's shapes: a
   Qwen2.5-32B decoder (hidden 5120, 64 layers, 40 query / 8 KV heads, intermediate 27648,
   vocabulary 152064) and a Whisper-large-style audio encoder (d_model 1280, 32 layers, 20
   heads, FFN 5120, 128 mel bins). No weights file: vLLM serves it ``--load-format dummy``.
   ``--dry-run`` writes the same directory with the stand-in's tiny shapes.
3. Serve it at the largest tensor parallel the machine allows (the GPUs nvidia-smi counts,
   rounded down to a divisor of the 8 KV heads; 1 in a dry run).
4. Measure over the OpenAI API: audio encode + prefill seconds per second of audio (two
   audio lengths, first-token time of each), time to first token of a short text prompt,
   decode tokens/s and inter-token latency at 1 and ``--streams`` concurrent streams, and the
   prefix-cache hit share of a listen-while-thinking turn (vLLM's /metrics counters: a
   prefill request with the first audio chunk, then the final request with both).
5. First packet per speaking policy through the real gateway (``serve --engine vllm --tts
   simulated`` against this server, silero VAD, the SDK speaking espeak-ng speech at real
   time), ``--policy-turns`` turns a policy, with ``benchmarks/speaking_policies_vllm.py``'s
   turn and report code; ``</think>`` is biased away so every turn reasons for the
   ``reasoning.effort: low`` budget (random weights would otherwise close it at random) and
   ``max_output_tokens`` bounds the reply.
6. Print a report, write it as JSON (``--report``) and write the timings as a sim profile
   (``--profile``) that ``serve --engine sim --sim-profile FILE`` reads.

Random dummy weights sample random tokens, so decode requests set ``ignore_eos`` and count
tokens, not text. Dry-run figures are CPU figures of a 2-layer model: they test the flow,
not the engine.

Run: scripts/gpu-check.sh [--dry-run] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import shutil
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import synthesize
from benchmarks.harness.standin_model import (
    METADATA_FILE,
    StandinModelInfo,
    build_standin_model_with,
)
from benchmarks.harness.stats import percentile
from benchmarks.harness.vllm_server import (
    SERVED_MODEL_NAME,
    VllmServer,
    VllmServerConfig,
    default_vllm_python,
)
from benchmarks.speaking_policies_vllm import POLICIES, QUESTIONS, Sample
from benchmarks.speaking_policies_vllm import RATE as SPEECH_RATE
from benchmarks.speaking_policies_vllm import run as run_policy_turns
from realtime.engines.sim import SimParams
from realtime.engines.sim_profile import write_sim_profile
from tokenizer.chunking import audio_embeddings_for_samples

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16_000
# The gateway turns reason for the "low" effort budget (realtime/session/services.py) and
# then say at most REPLY_TOKENS tokens: random weights may never end a reply on their own.
REASONING_LOW = 256
REPLY_TOKENS = 24
PREFIX_HITS = "vllm:prefix_cache_hits_total"
PREFIX_QUERIES = "vllm:prefix_cache_queries_total"


@dataclass(frozen=True)
class ModelShapes:
    hidden_size: int
    layers: int
    heads: int
    kv_heads: int
    intermediate_size: int
    vocab_size: int  # 0: the stand-in tokenizer's
    audio_d_model: int
    audio_layers: int
    audio_heads: int
    audio_ffn: int


# Qwen2.5-32B (model card: 64 layers, 40 Q / 8 KV heads; config.json: hidden 5120,
# intermediate 27648, vocabulary 152064) and the Qwen2-Audio / Whisper-large encoder
# (transformers' Qwen2AudioEncoderConfig defaults: 32 layers, 20 heads, d_model 1280).
STEP_AUDIO_R1 = ModelShapes(5120, 64, 40, 8, 27648, 152_064, 1280, 32, 20, 5120)
# The CPU stand-in's shapes (head size 32, vLLM's CPU minimum).
TINY = ModelShapes(128, 2, 4, 2, 384, 0, 128, 2, 4, 512)


@dataclass(frozen=True)
class Measurements:
    tensor_parallel: int
    audio_s_per_s: float  # encode + prefill seconds per second of audio
    ttft_ms: float
    itl_ms_1: float
    decode_tps_1: float
    itl_ms_n: float
    decode_tps_n: float
    streams: int
    prefix_hit_share: float  # of the final listen-while-thinking request's prompt tokens
    # policy -> first packet p50 ms through the gateway (NaN: every turn silent)
    first_packet_p50_ms: dict[str, float] = field(default_factory=dict)

    def sim_params(self) -> SimParams:
        """The sim figures that reproduce these timings (other fields: SimParams' defaults).

        The sim charges audio at Step-Audio's 12.5 tokens a second, so its prefill rate is the
        one that makes a second of audio cost what was measured. A cost of 0 (long audio no
        slower than short: below the timing noise, as on the dry run's tiny model) keeps the
        default prefill rate rather than an unbounded one.
        """
        audio_tokens_per_s = audio_embeddings_for_samples(SAMPLE_RATE * 10) / 10
        slowdown = (
            (self.itl_ms_n / self.itl_ms_1 - 1.0) / max(1, self.streams - 1)
            if self.itl_ms_1 > 0
            else 0.0
        )
        prefill = (
            round(audio_tokens_per_s / self.audio_s_per_s, 1)
            if self.audio_s_per_s > 0
            else SimParams().prefill_tokens_per_s
        )
        return SimParams(
            prefill_tokens_per_s=prefill,
            ttft_ms=round(self.ttft_ms, 2),
            itl_ms=round(self.itl_ms_1, 3),
            batch_slowdown=round(max(0.0, slowdown), 5),
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--dry-run", action="store_true",
        help="run the whole flow on CPU: the CPU vLLM venv (.venv-vllm), the stand-in's tiny "
        "shapes, tensor parallel 1, few requests (figures test the flow, not the engine)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=REPO / ".cache" / "gpu-check",
        help="working directory: venv, model directory, server log (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--vllm-python", type=Path,
        help="interpreter of an installed vLLM (default: dry run .venv-vllm, else install one)",
    )  # fmt: skip
    parser.add_argument(
        "--tensor-parallel", type=_positive, metavar="N",
        help="tensor parallel size (default: the GPUs nvidia-smi counts, a divisor of 8; 1 in "
        "a dry run)",
    )  # fmt: skip
    parser.add_argument("--streams", type=_positive, default=32, help="concurrent decode streams")
    parser.add_argument("--decode-tokens", type=_positive, default=128, help="tokens per stream")
    parser.add_argument(
        "--audio-seconds", type=float, nargs=2, default=(2.0, 8.0), metavar=("SHORT", "LONG"),
        help="the two audio lengths whose first-token times give the cost per audio second",
    )  # fmt: skip
    parser.add_argument("--repeats", type=_positive, default=3, help="requests per timing")
    parser.add_argument(
        "--policy-turns", type=_non_negative, default=2, metavar="N",
        help="turns per speaking policy through the gateway (0: skip; default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", type=Path, help="sim profile to write (default: <out>/sim-profile.json)"
    )
    parser.add_argument("--report", type=Path, help="report JSON (default: <out>/report.json)")
    args = parser.parse_args(argv)
    short, long = args.audio_seconds
    if not 0 < short < long <= 30:
        parser.error("--audio-seconds needs 0 < SHORT < LONG <= 30")
    if args.dry_run:
        if args.tensor_parallel not in (None, 1):
            parser.error("--dry-run serves on CPU at tensor parallel 1")
        args.tensor_parallel = 1
    args.profile = args.profile or args.out / "sim-profile.json"
    args.report = args.report or args.out / "report.json"
    return args


def _integer_at_least(lowest: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be >= {lowest}, got {value}")
        return value

    return parse


_non_negative = _integer_at_least(0)
_positive = _integer_at_least(1)


def largest_tensor_parallel(gpus: int, kv_heads: int = STEP_AUDIO_R1.kv_heads) -> int:
    """The most GPUs that split the KV heads evenly (vLLM needs heads % TP == 0)."""
    return max(tp for tp in range(1, max(1, gpus) + 1) if kv_heads % tp == 0)


def count_gpus() -> int:
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--list-gpus"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in listed.splitlines() if line.startswith("GPU "))


def model_config(standin_config: dict[str, Any], shapes: ModelShapes) -> dict[str, Any]:
    """The stand-in's Qwen2-Audio config.json with ``shapes``' sizes."""
    config = json.loads(json.dumps(standin_config))
    text = config["text_config"]
    text.update(
        hidden_size=shapes.hidden_size,
        num_hidden_layers=shapes.layers,
        num_attention_heads=shapes.heads,
        num_key_value_heads=shapes.kv_heads,
        intermediate_size=shapes.intermediate_size,
        vocab_size=shapes.vocab_size or text["vocab_size"],
        layer_types=["full_attention"] * shapes.layers,
        max_window_layers=shapes.layers,
    )
    config["audio_config"].update(
        d_model=shapes.audio_d_model,
        encoder_layers=shapes.audio_layers,
        encoder_attention_heads=shapes.audio_heads,
        encoder_ffn_dim=shapes.audio_ffn,
    )
    return config


def write_model_dir(standin_dir: Path, model_dir: Path, shapes: ModelShapes) -> Path:
    """Tokenizer, processor and template from the stand-in; config.json with ``shapes``."""
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    for path in standin_dir.iterdir():
        if path.is_file() and path.suffix != ".safetensors" and path.name != "config.json":
            shutil.copy2(path, model_dir / path.name)
    standin_config = json.loads((standin_dir / "config.json").read_text())
    config = model_config(standin_config, shapes)
    (model_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return model_dir


def install_gpu_vllm(out: Path) -> Path:
    """A venv with the GPU vLLM from PyPI, the version the CPU venv pins."""
    version = subprocess.run(
        [str(default_vllm_python()), "-c", "import vllm; print(vllm.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    venv = out / "venv-gpu"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print(f"installing vllm=={version} from PyPI into {venv}", flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"vllm=={version}"], check=True)
    return python


def wav_part(seconds: float, seed: int) -> dict[str, Any]:
    samples = np.random.default_rng(seed).normal(0, 2000, int(seconds * SAMPLE_RATE))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.clip(-32768, 32767).astype("<i2").tobytes())
    data = base64.b64encode(buffer.getvalue()).decode()
    return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


async def stream_times(
    client: httpx.AsyncClient, url: str, content: list[dict[str, Any]], max_tokens: int
) -> tuple[list[float], int]:
    """Seconds from the request to each streamed chunk, and the tokens generated (usage)."""
    body = {
        "model": SERVED_MODEL_NAME,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "temperature": 1.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    times: list[float] = []
    tokens = 0
    async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            tokens = (chunk.get("usage") or {}).get("completion_tokens", tokens)
            for choice in chunk.get("choices", []):
                delta = choice.get("delta", {})
                # The first chunk only names the role; random tokens may decode to "".
                if "role" not in delta and delta.get("content") is not None:
                    times.append(time.perf_counter() - start)
    return times, tokens


def inter_token_s(chunk_times: list[float], tokens: int) -> float | None:
    """One stream's mean time between tokens, from its own first token to its last.

    Measuring from the stream's own first chunk, not from a first-token time taken on other
    requests, keeps the figure positive whatever the prefill noise (a tiny model decodes 8
    tokens faster than its first-token time varies). vLLM streams one chunk per engine step,
    so the first chunk holds the first token. None: too few tokens to have a gap.
    """
    if tokens < 2 or len(chunk_times) < 2:
        return None
    return max(0.0, chunk_times[-1] - chunk_times[0]) / (tokens - 1)


async def measure(server: VllmServer, args: argparse.Namespace, tp: int) -> Measurements:
    url = server.base_url
    seed = iter(range(1_000_000))
    async with httpx.AsyncClient(timeout=300.0) as client:

        async def first_token(content: list[dict[str, Any]]) -> float:
            times, _ = await stream_times(client, url, content, 1)
            return times[0] if times else float("nan")

        await first_token([{"type": "text", "text": "warm up"}, wav_part(1.0, next(seed))])
        short, long = args.audio_seconds
        audio: dict[float, float] = {}
        for seconds in (short, long):
            runs = [await first_token([wav_part(seconds, next(seed))]) for _ in range(args.repeats)]
            audio[seconds] = float(np.median(runs))
            print(f"  audio {seconds:g} s: first token {audio[seconds] * 1000:.1f} ms", flush=True)
        audio_s_per_s = max(0.0, (audio[long] - audio[short]) / (long - short))
        texts = [[{"type": "text", "text": f"question {i} about the weather"}] for i in range(99)]
        ttft = float(np.median([await first_token(texts[i]) for i in range(args.repeats)]))
        print(f"  text first token {ttft * 1000:.1f} ms", flush=True)

        async def decode(streams: int) -> tuple[float, float]:
            start = time.perf_counter()
            runs = await asyncio.gather(
                *(stream_times(client, url, texts[i], args.decode_tokens) for i in range(streams))
            )
            wall = time.perf_counter() - start
            gaps = [gap for t, n in runs if (gap := inter_token_s(t, n)) is not None]
            tokens = sum(n for _, n in runs)
            print(f"  {streams} stream(s): {tokens} tokens in {wall:.2f} s", flush=True)
            return float(np.median(gaps)) * 1000, tokens / wall

        itl_1, tps_1 = await decode(1)
        itl_n, tps_n = await decode(args.streams)

        first_chunk = wav_part(long, next(seed))
        await first_token([first_chunk])  # the listen-while-thinking prefill
        mid = await server.metrics_async()
        await first_token([first_chunk, wav_part(short, next(seed))])
        after = await server.metrics_async()
        hits = after.value(PREFIX_HITS, 0.0) - mid.value(PREFIX_HITS, 0.0)
        queries = after.value(PREFIX_QUERIES, 0.0) - mid.value(PREFIX_QUERIES, 0.0)
    return Measurements(
        tensor_parallel=tp,
        audio_s_per_s=audio_s_per_s,
        ttft_ms=ttft * 1000,
        itl_ms_1=itl_1,
        decode_tps_1=tps_1,
        itl_ms_n=itl_n,
        decode_tps_n=tps_n,
        streams=args.streams,
        prefix_hit_share=hits / queries if queries else 0.0,
    )


def policy_first_packets(
    server: VllmServer, standin: StandinModelInfo, args: argparse.Namespace
) -> dict[str, float]:
    """First packet p50 per speaking policy through the gateway, ``--tts simulated``."""
    print(f"first packet per policy through the gateway ({args.policy_turns} turns each)")
    utterances = [synthesize(q, SPEECH_RATE) for q in QUESTIONS]
    never_close_thinking = {"logit_bias": {str(standin.think_end_token_id): -100}}
    serve_args = (
        "--engine", "vllm", "--engine-url", server.base_url, "--tts", "simulated",
        "--stop-token-id", str(standin.end_of_turn_token_id), "--temperature", "1",
        "--engine-extra-body", json.dumps(never_close_thinking),
    )  # fmt: skip
    with ServiceProcess(*serve_args, log_path=args.out / "serve.log") as service:
        samples: list[Sample] = asyncio.run(
            run_policy_turns(
                service.ws_url, args.policy_turns, utterances, REASONING_LOW + REPLY_TOKENS
            )
        )
    result = {}
    for policy in POLICIES:
        latency = [s.first_packet_ms for s in samples if s.policy == policy]
        spoken = [ms for ms in latency if not np.isnan(ms)]
        result[policy] = percentile(spoken, 50)
    return result


def report_lines(measured: Measurements, *, dry_run: bool) -> list[str]:
    kind = (
        "DRY RUN on CPU, tiny stand-in shapes: these figures test the flow, not the engine"
        if dry_run
        else "MEASURED on GPU, Step-Audio-R1 shapes with dummy weights"
    )
    m = measured
    return [
        f"GPU check ({kind}); tensor parallel {m.tensor_parallel}",
        f"audio encode + prefill: {m.audio_s_per_s * 1000:.1f} ms per second of audio"
        if m.audio_s_per_s > 0
        else "audio encode + prefill: below the timing noise (long audio no slower than short); "
        "the profile keeps the default prefill rate",
        f"time to first token (short text prompt): {m.ttft_ms:.1f} ms",
        f"decode, 1 stream: {m.decode_tps_1:.1f} tokens/s (ITL {m.itl_ms_1:.2f} ms)",
        f"decode, {m.streams} streams: {m.decode_tps_n:.1f} tokens/s "
        f"(ITL {m.itl_ms_n:.2f} ms per stream)",
        f"listen-while-thinking prefix-cache hits: {m.prefix_hit_share:.0%} of the final "
        "request's prompt tokens",
        *(
            f"first packet through the gateway, {policy}: p50 {ms:.0f} ms "
            "(client, incl. the 200 ms silence window; TTS SIMULATED)"
            for policy, ms in m.first_packet_p50_ms.items()
        ),
        f"sim profile: {m.sim_params().describe()}",
    ]


def write_outputs(measured: Measurements, args: argparse.Namespace) -> None:
    args.profile.parent.mkdir(parents=True, exist_ok=True)
    write_sim_profile(args.profile, measured.sim_params())
    report = {"dry_run": args.dry_run, **asdict(measured)}
    # A policy whose turns were all silent has no first packet: null, not JSON's NaN extension.
    report["first_packet_p50_ms"] = {
        policy: None if np.isnan(ms) else ms for policy, ms in measured.first_packet_p50_ms.items()
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    for line in report_lines(measured, dry_run=args.dry_run):
        print(line)
    print(f"report: {args.report}\nsim profile: {args.profile}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        python = args.vllm_python or default_vllm_python()
        tp, shapes = 1, TINY
    else:
        gpus = count_gpus()
        if gpus == 0:
            print("gpu-check: no GPU found (nvidia-smi); use --dry-run on CPU", file=sys.stderr)
            return 2
        tp = args.tensor_parallel or largest_tensor_parallel(gpus)
        python = args.vllm_python or install_gpu_vllm(args.out)
        shapes = STEP_AUDIO_R1
    print("building the stand-in (tokenizer, processor, chat template) locally", flush=True)
    standin = build_standin_model_with(default_vllm_python(), REPO / ".cache" / "vllm" / "models")
    if not (standin.model_dir / METADATA_FILE).is_file():
        raise RuntimeError(f"no stand-in model in {standin.model_dir}")
    model_dir = write_model_dir(standin.model_dir, args.out / "model", shapes)
    config = VllmServerConfig(
        model_dir=model_dir,
        python=python,
        gpu=not args.dry_run,
        tensor_parallel_size=tp,
        max_model_len=4096,
        # The CPU's default 128-token blocks would cache no short audio chunk; its attention
        # takes multiples of 32 (the GPU's default is 16).
        block_size=32 if args.dry_run else None,
        max_num_seqs=max(args.streams, 4),
        startup_timeout_s=420.0,
        log_path=args.out / "vllm.log",
        extra_args=("--load-format", "dummy"),
    )
    print(f"serving {model_dir} (dummy weights, TP={tp})", flush=True)
    with VllmServer(config) as server:
        measured = asyncio.run(measure(server, args, tp))
        if args.policy_turns:
            first_packets = policy_first_packets(server, standin, args)
            measured = Measurements(**{**asdict(measured), "first_packet_p50_ms": first_packets})
    write_outputs(measured, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
