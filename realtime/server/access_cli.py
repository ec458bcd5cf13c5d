"""``step-realtime serve``'s access options: keys, origins, session limits, rate limits, drain."""

from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path

from realtime.server.access import AccessOptions
from realtime.server.admission import AdmissionLimits
from realtime.server.auth import KEYS_ENVIRONMENT_VARIABLE, ApiKeyFileError, ApiKeys
from realtime.server.twilio_signature import AUTH_TOKEN_VARIABLE
from realtime.session.limits import MAX_HISTORY_BYTES, MAX_SESSION_S
from realtime.session.rate_limits import RateLimits

METRICS_TOKEN_VARIABLE = "STEP_REALTIME_METRICS_TOKEN"


def add_access_arguments(parser: argparse.ArgumentParser) -> None:
    access = parser.add_argument_group(
        "access", "Who may use the service and how much (README, 'Security and limits')."
    )
    access.add_argument(
        "--api-key", action="append", default=[], metavar="KEY",
        help="a key clients must present (Authorization: Bearer KEY, or the WebSocket "
        "subprotocol openai-insecure-api-key.KEY); repeatable. Also read from "
        f"${KEYS_ENVIRONMENT_VARIABLE} (comma-separated) and --api-keys-file. With any key "
        "set, every route but GET /healthz and the static call page needs one",
    )  # fmt: skip
    access.add_argument(
        "--api-keys-file", type=Path, metavar="FILE",
        help="a file of keys, one a line ('#' comments allowed)",
    )  # fmt: skip
    access.add_argument(
        "--metrics-token", default=os.environ.get(METRICS_TOKEN_VARIABLE),
        help="a Bearer token for GET /metrics alone (default: $"
        f"{METRICS_TOKEN_VARIABLE}; unset: /metrics needs an API key when keys are set)",
    )  # fmt: skip
    access.add_argument(
        "--insecure-no-auth", action="store_true",
        help="serve on a non-loopback --host with no API key (anyone who reaches the port "
        "can use the engine)",
    )  # fmt: skip
    access.add_argument(
        "--allowed-origin", action="append", default=[], metavar="ORIGIN",
        help="a browser origin (https://app.example.com) that may open sessions, besides "
        "the service's own and loopback ones; '*' allows any; repeatable",
    )  # fmt: skip
    access.add_argument(
        "--max-sessions", type=int, default=AdmissionLimits.max_sessions,
        help="sessions at once over WebSocket and WebRTC together; past it new ones get "
        "HTTP 503 with Retry-After; 0 for no limit (default: %(default)s)",
    )  # fmt: skip
    access.add_argument(
        "--max-sessions-per-key", type=int, default=0,
        help="sessions at once per API key (its client secrets included); past it HTTP 429; "
        "0 for no limit (default: %(default)s)",
    )  # fmt: skip
    access.add_argument(
        "--max-sessions-per-ip", type=int, default=0,
        help="sessions at once per client IP address (WebSocket and WebRTC; phone calls, "
        "which come from Twilio, are not counted); past it HTTP 429; 0 for no limit "
        "(default: %(default)s). Behind a proxy, see --forwarded-allow-ips",
    )  # fmt: skip
    access.add_argument(
        "--forwarded-allow-ips", metavar="IPS",
        help="the proxies (comma-separated IPs or networks, '*' for any) whose "
        "X-Forwarded-For names the client, for --max-sessions-per-ip and the logs "
        "(default: uvicorn's, $FORWARDED_ALLOW_IPS or 127.0.0.1)",
    )  # fmt: skip
    access.add_argument(
        "--session-minutes", type=float, default=MAX_SESSION_S / 60,
        help="a session's lifetime (expires_at); it then ends with an error event "
        "(default: %(default)s)",
    )  # fmt: skip
    limits = RateLimits()
    access.add_argument(
        "--max-events-per-s", type=float, default=limits.events_per_s,
        help="client events a second per session, sustained (bursts up to 5x); more get "
        "error events (default: %(default)s)",
    )  # fmt: skip
    access.add_argument(
        "--max-mb-per-s", type=float, default=limits.bytes_per_s / 1024 / 1024,
        help="client event bytes a second per session, in MiB, sustained (bursts up to 16x); "
        "more get error events (default: %(default)s)",
    )  # fmt: skip
    access.add_argument(
        "--max-audio-speed", type=float, default=limits.audio_speed,
        help="input audio per session, in seconds of audio a second, sustained after a "
        f"{limits.audio_burst_s:g} s burst (default: %(default)s)",
    )  # fmt: skip
    access.add_argument(
        "--twilio-auth-token", default=os.environ.get(AUTH_TOKEN_VARIABLE),
        help="with API keys on, phone calls (/v1/twilio/media-stream, which Twilio opens "
        "without our key) are admitted on a valid X-Twilio-Signature made with this token "
        f"(default: ${AUTH_TOKEN_VARIABLE}; unset: the route needs an API key)",
    )  # fmt: skip
    access.add_argument(
        "--max-history-mb", type=float, default=MAX_HISTORY_BYTES / 1024 / 1024,
        help="a session's conversation (user audio and text) kept at most, in MiB; the oldest "
        "items are dropped past it (default: %(default)s)",
    )  # fmt: skip
    access.add_argument(
        "--drain-timeout-s", type=float, default=30.0,
        help="on SIGTERM/SIGINT, how long replies being spoken may take to finish before "
        "every session is closed (default: %(default)s)",
    )  # fmt: skip


def access_options_from(args: argparse.Namespace) -> AccessOptions:
    """Raises ``ValueError`` with a message for the user."""
    try:
        keys = ApiKeys.from_sources(args.api_key, args.api_keys_file)
    except ApiKeyFileError as exc:
        raise ValueError(str(exc)) from None
    if not keys and not _is_loopback(args.host) and not args.insecure_no_auth:
        raise ValueError(
            f"--host {args.host} is reachable from other machines and no API key is set: "
            "give --api-key (or $STEP_REALTIME_API_KEYS, --api-keys-file), or "
            "--insecure-no-auth to serve it open"
        )
    for name in ("max_sessions", "max_sessions_per_key", "max_sessions_per_ip"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be 0 or more")
    for name in ("session_minutes", "max_events_per_s", "max_mb_per_s", "max_audio_speed",
                 "drain_timeout_s", "max_history_mb"):  # fmt: skip
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive")
    return AccessOptions(
        keys=keys,
        metrics_token=args.metrics_token or None,
        allowed_origins=tuple(args.allowed_origin),
        twilio_auth_token=args.twilio_auth_token or None,
        limits=AdmissionLimits(
            max_sessions=args.max_sessions or None,
            max_sessions_per_key=args.max_sessions_per_key or None,
            max_sessions_per_address=args.max_sessions_per_ip or None,
        ),
    )


def rate_limits_from(args: argparse.Namespace) -> RateLimits:
    defaults = RateLimits()
    return RateLimits(
        events_per_s=args.max_events_per_s,
        event_burst=max(defaults.event_burst, 5 * args.max_events_per_s),
        bytes_per_s=args.max_mb_per_s * 1024 * 1024,
        byte_burst=max(defaults.byte_burst, 16 * args.max_mb_per_s * 1024 * 1024),
        audio_speed=args.max_audio_speed,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
