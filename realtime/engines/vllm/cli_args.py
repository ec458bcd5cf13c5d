"""The ``serve`` command-line options of the ``vllm`` engine, and the options object they give."""

from __future__ import annotations

import argparse
import json
from typing import Any

from realtime.engines.vllm.breaker import BreakerSettings
from realtime.engines.vllm.load import LoadLimits
from realtime.engines.vllm.options import (
    DEFAULT_MODEL,
    DEFAULT_TEMPERATURE,
    STEP_AUDIO_EOT_TOKEN_ID,
    VllmOptions,
)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def add_vllm_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = VllmOptions(urls=("http://unused/v1",))
    group = parser.add_argument_group(
        "vllm engine (--engine vllm)",
        "Step-Audio-R1 served by vLLM's OpenAI-compatible API; see deploy/README.md.",
    )
    group.add_argument(
        "--engine-url", action="append", default=[], metavar="URL",
        help="a vLLM server's API root, e.g. http://vllm:9999/v1; repeatable: sessions are "
        "spread over the healthy ones and fail over between them",
    )  # fmt: skip
    group.add_argument(
        "--model", default=DEFAULT_MODEL,
        help="the model name the vLLM servers serve (--served-model-name; default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--stop-token-id", type=int, action="append", default=None, metavar="ID",
        help=f"token id that ends the assistant's turn; repeatable (default: "
        f"{STEP_AUDIO_EOT_TOKEN_ID}, Step-Audio-R1's <|EOT|>)",
    )  # fmt: skip
    group.add_argument(
        "--engine-timeout-s", type=float, default=defaults.timeout_s,
        help="longest wait for a reply's first token, and between two tokens after it; the "
        "client then gets an error event (default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--health-interval-s", type=float, default=defaults.health_interval_s,
        help="seconds between health checks (GET /health) of each vLLM server "
        "(default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--temperature", type=float, default=DEFAULT_TEMPERATURE,
        help="sampling temperature (default: %(default)s, as in StepFun's examples)",
    )  # fmt: skip
    group.add_argument(
        "--engine-seed", type=int, default=None,
        help="sampling seed sent with every request (default: none)",
    )  # fmt: skip
    group.add_argument(
        "--max-prompt-tokens", type=int, default=defaults.max_prompt_tokens,
        help="estimated prompt size above which a session's oldest turns are dropped; keep it "
        "below vLLM's --max-model-len minus the reply's tokens (default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--engine-extra-body", type=_json_object, default={}, metavar="JSON",
        help='more request fields for every generation request, e.g. \'{"top_p": 0.9}\'',
    )  # fmt: skip
    group.add_argument(
        "--engine-session-header", default=defaults.session_header, metavar="NAME",
        help="header carrying each session's stable id on every request, for a router in "
        "front of several vLLM servers ('' for none; default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--breaker-failures", type=int, default=defaults.breaker.failures,
        help="failed requests within --breaker-window-s that take a server out until its "
        "health check passes and a trial request succeeds (default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--breaker-window-s", type=float, default=defaults.breaker.window_s,
        help="(default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--server-max-waiting", type=float, default=defaults.load_limits.max_waiting,
        help="a server with this many requests waiting (vllm:num_requests_waiting) is "
        "overloaded: no new sessions, and pinned ones move; with every server overloaded new "
        "sessions are refused (default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--server-max-kv-usage", type=float, default=defaults.load_limits.max_kv_usage,
        help="likewise for the KV cache in use, 0-1 (vllm:kv_cache_usage_perc; "
        "default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--server-max-sessions", type=int, default=None, metavar="N",
        help="likewise for sessions this gateway pins to one server: a capacity measured "
        "ahead (benchmarks/engine_fleet.py), which acts before the server's gauges show the "
        "load (default: none)",
    )  # fmt: skip


def vllm_options_from(args: argparse.Namespace) -> VllmOptions:
    """The engine's options from parsed arguments; ValueError says what is wrong."""
    return VllmOptions(
        urls=tuple(args.engine_url),
        model=args.model,
        stop_token_ids=tuple(args.stop_token_id or (STEP_AUDIO_EOT_TOKEN_ID,)),
        timeout_s=args.engine_timeout_s,
        health_interval_s=args.health_interval_s,
        temperature=args.temperature,
        seed=args.engine_seed,
        max_prompt_tokens=args.max_prompt_tokens,
        extra_body=args.engine_extra_body,
        session_header=args.engine_session_header,
        breaker=BreakerSettings(failures=args.breaker_failures, window_s=args.breaker_window_s),
        load_limits=LoadLimits(
            max_waiting=args.server_max_waiting,
            max_kv_usage=args.server_max_kv_usage,
            max_sessions=args.server_max_sessions,
        ),
    )
