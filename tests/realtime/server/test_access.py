"""The access parts in isolation: keys, client secrets, origins, admission, rate limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from realtime.protocol.errors import ProtocolError
from realtime.server.admission import AdmissionLimits, Full, LiveSessions, Slot
from realtime.server.auth import ApiKeys, key_id, presented_credential
from realtime.server.client_secrets import ClientSecretError, ClientSecrets, parse_request
from realtime.server.origins import OriginPolicy
from realtime.session.rate_limits import RateLimits, SessionRateLimits


def test_keys_come_from_the_command_line_the_environment_and_a_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# ops keys\nfile-key\n\n")
    keys = ApiKeys.from_sources(
        ["cli-key"], keys_file, environ={"STEP_REALTIME_API_KEYS": "env-a, env-b"}
    )
    assert len(keys) == 4
    for key in ("cli-key", "env-a", "env-b", "file-key"):
        assert keys.match(key) == key_id(key)
    assert keys.match("cli-ke") is None and keys.match("cli-key2") is None
    assert keys.match("# ops keys") is None
    assert not ApiKeys.from_sources([], None, environ={})


def test_a_credential_is_a_bearer_token_or_a_browser_subprotocol() -> None:
    assert presented_credential({"authorization": "Bearer sk-1"}) == "sk-1"
    assert presented_credential({"authorization": "bearer  sk-2 "}) == "sk-2"
    assert presented_credential({"authorization": "Basic abc"}) is None
    offered = ["realtime", "openai-insecure-api-key.sk-3", "openai-beta.realtime-v1"]
    assert presented_credential({}, offered) == "sk-3"
    assert presented_credential({}, ["openai-insecure-api-key."]) is None


def test_a_client_secret_carries_its_key_and_session_until_it_expires() -> None:
    now = [1_000_000.0]
    keys = ApiKeys(["server-key"])
    secrets = ClientSecrets(keys, clock=lambda: now[0])
    value, expires_at = secrets.mint(key_id("server-key"), {"instructions": "Be brief."}, 60)
    assert value.startswith("ek_") and expires_at == 1_000_060
    assert "server-key" not in value
    grant = secrets.verify(value)
    assert grant.key_id == key_id("server-key") and grant.session == {"instructions": "Be brief."}
    now[0] += 60
    with pytest.raises(ClientSecretError, match="expired"):
        secrets.verify(value)


def test_a_forged_or_revoked_client_secret_is_refused() -> None:
    secrets = ClientSecrets(ApiKeys(["key-a"]))
    value, _ = secrets.mint(key_id("key-a"), None, 60)
    body, _, signature = value.partition(".")
    with pytest.raises(ClientSecretError):
        secrets.verify(body + "." + signature[::-1])
    with pytest.raises(ClientSecretError):
        secrets.verify("ek_garbage")
    # Another service (other keys) does not accept it; the same keys do, in any order.
    with pytest.raises(ClientSecretError):
        ClientSecrets(ApiKeys(["key-b"])).verify(value)
    assert ClientSecrets(ApiKeys(["key-a"])).verify(value).session is None


def test_a_client_secret_request_is_validated() -> None:
    assert parse_request(b"").expires_after.seconds == 600
    parsed = parse_request(b'{"expires_after": {"anchor": "created_at", "seconds": 30}}')
    assert parsed.expires_after.seconds == 30
    for bad in (b"{", b'{"expires_after": {"seconds": 1}}', b'{"nope": 1}', b"[" * 5000):
        with pytest.raises(ProtocolError):
            parse_request(bad)


def test_origins_default_to_the_service_itself_and_loopback() -> None:
    policy = OriginPolicy()
    assert policy.allows(None, "voice.example.com")  # not a browser
    assert policy.allows("https://voice.example.com", "voice.example.com")
    assert policy.allows("http://localhost:5173", "voice.example.com")
    assert policy.allows("http://127.0.0.1:8080", "voice.example.com")
    assert not policy.allows("https://evil.example", "voice.example.com")
    assert not policy.allows("null", "voice.example.com")
    configured = OriginPolicy(["https://app.example.com/"])
    assert configured.allows("https://APP.example.com", "voice.example.com")
    assert not configured.allows("https://app.example.com.evil", "voice.example.com")
    assert OriginPolicy(["*"]).allows("https://anyone.example", None)


def test_admission_counts_sessions_in_all_and_per_key_and_frees_slots() -> None:
    live = LiveSessions(AdmissionLimits(max_sessions=3, max_sessions_per_key=2))
    a1, a2 = live.admit("a"), live.admit("a")
    assert isinstance(a1, Slot) and isinstance(a2, Slot)
    per_key = live.admit("a")
    assert isinstance(per_key, Full) and per_key.status == 429
    b1 = live.admit("b")
    assert isinstance(b1, Slot)
    full = live.admit("c")
    assert isinstance(full, Full) and full.status == 503
    a1.release()
    a1.release()  # idempotent
    assert len(live) == 2
    assert isinstance(live.admit("a"), Slot)


async def test_waiting_for_a_release_ends_when_a_slot_is_given_back() -> None:
    live = LiveSessions(AdmissionLimits(max_sessions=1))
    slot = live.admit(None)
    assert isinstance(slot, Slot)
    asyncio.get_running_loop().call_later(0.05, slot.release)
    await asyncio.wait_for(live.wait_release(10.0), 5.0)
    assert len(live) == 0


def test_rate_limits_refuse_what_is_over_and_refill_with_time() -> None:
    now = [0.0]
    refused: list[str] = []
    limits = SessionRateLimits(
        RateLimits(events_per_s=10, event_burst=20, bytes_per_s=1000, byte_burst=2000,
                   audio_speed=2, audio_burst_s=4),
        refused.append,
        clock=lambda: now[0],
    )  # fmt: skip
    for _ in range(20):
        limits.admit_event(10)
    with pytest.raises(ProtocolError) as raised:
        limits.admit_event(10)
    assert raised.value.code == "rate_limit_exceeded" and refused == ["events"]
    now[0] += 1.0  # ten more events
    for _ in range(10):
        limits.admit_event(1)
    now[0] += 0.5
    with pytest.raises(ProtocolError):
        limits.admit_event(5000)  # bigger than the byte burst
    limits.admit_audio(4.0)
    with pytest.raises(ProtocolError, match="faster than 2x real time"):
        limits.admit_audio(0.5)
    now[0] += 1.0
    limits.admit_audio(2.0)  # real time twice over is what refills
    assert refused == ["events", "bytes", "audio_speed"]


def test_serving_beyond_loopback_needs_a_key_or_an_explicit_opt_out() -> None:
    from realtime.cli import build_parser
    from realtime.server.access_cli import access_options_from

    def options(*argv: str) -> object:
        return access_options_from(build_parser().parse_args(["serve", *argv]))

    with pytest.raises(ValueError, match="--insecure-no-auth"):
        options("--host", "0.0.0.0")
    assert not options("--host", "0.0.0.0", "--insecure-no-auth").keys  # type: ignore[attr-defined]
    assert options("--host", "0.0.0.0", "--api-key", "k").keys  # type: ignore[attr-defined]
    assert not options("--host", "127.0.0.1").keys  # type: ignore[attr-defined]
    assert not options("--host", "::1").keys  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="cannot read API keys file"):
        options("--api-keys-file", "/nonexistent/keys")


def test_the_per_session_rate_limits_come_from_the_command_line() -> None:
    from realtime.cli import build_parser
    from realtime.server.access_cli import access_options_from, rate_limits_from

    def limits(*argv: str) -> RateLimits:
        args = build_parser().parse_args(["serve", *argv])
        access_options_from(args)  # validates
        return rate_limits_from(args)

    assert limits() == RateLimits()
    raised = limits("--max-events-per-s", "500", "--max-mb-per-s", "4", "--max-audio-speed", "8")
    assert (raised.events_per_s, raised.bytes_per_s, raised.audio_speed) == (500, 4 << 20, 8)
    assert raised.event_burst == 2500 and raised.byte_burst == 64 << 20
    with pytest.raises(ValueError, match="--max-mb-per-s must be positive"):
        limits("--max-mb-per-s", "0")


def test_admission_counts_sessions_per_client_address_where_one_is_given() -> None:
    live = LiveSessions(AdmissionLimits(max_sessions=10, max_sessions_per_address=2))
    here = [live.admit(None, "198.51.100.1") for _ in range(2)]
    assert all(isinstance(slot, Slot) for slot in here)
    over = live.admit(None, "198.51.100.1")
    assert isinstance(over, Full) and (over.status, over.code) == (429, "address_limit_reached")
    assert isinstance(live.admit(None, "198.51.100.2"), Slot)
    assert isinstance(live.admit(None, None), Slot), "no address (a phone call): not counted"
    here[0].release()  # type: ignore[union-attr]
    assert isinstance(live.admit(None, "198.51.100.1"), Slot)
