"""Authentication, client secrets, origins and admission on the real service (127.0.0.1)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from benchmarks.harness.offers import make_offer
from benchmarks.harness.service import ServiceProcess
from realtime.call import add_call_arguments, main_call
from realtime.client.client import API_KEY_VARIABLE
from realtime.server.twilio_signature import twilio_signature
from tokenizer.pcm import write_wav

KEY_A = "sk-test-alpha-4f9c2e7d1b"
KEY_B = "sk-test-bravo-8a3d6c0e5f"
TWILIO_TOKEN = "twilio-auth-token-5d1c"
METRICS_TOKEN = "metrics-token-9e1f"
APP_ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def keyed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("keyed") / "serve.log"
    with ServiceProcess(
        "--api-key", KEY_A, "--max-sessions", "3", "--max-sessions-per-key", "2",
        "--allowed-origin", APP_ORIGIN, "--metrics-token", METRICS_TOKEN,
        "--twilio-auth-token", TWILIO_TOKEN,
        "--turn-detection", "server_vad",
        log_path=log, env={"STEP_REALTIME_API_KEYS": KEY_B},
    ) as service:  # fmt: skip
        yield service


@asynccontextmanager
async def session(
    service: ServiceProcess,
    *,
    key: str | None = None,
    subprotocol_key: str | None = None,
    origin: str | None = None,
    forwarded_for: str | None = None,
) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
    """A WebSocket session and its ``session.created`` event."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    protocols = ["realtime"] + ([f"openai-insecure-api-key.{subprotocol_key}"]
                                if subprotocol_key else [])  # fmt: skip
    async with connect(
        service.ws_url,
        additional_headers=headers,
        subprotocols=protocols,  # type: ignore[arg-type]
        origin=origin,  # type: ignore[arg-type]
        open_timeout=10,
    ) as ws:
        created = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert created["type"] == "session.created"
        yield ws, created


async def refused(service: ServiceProcess, **kwargs: Any) -> tuple[int, dict[str, Any], Any]:
    with pytest.raises(InvalidStatus) as raised:
        async with session(service, **kwargs):
            pass
    response = raised.value.response
    return response.status_code, json.loads(response.body or b"{}"), response.headers


async def test_a_websocket_without_a_valid_key_is_refused_before_the_upgrade(
    keyed_service: ServiceProcess,
) -> None:
    status, body, headers = await refused(keyed_service)
    assert status == 401 and body["error"]["code"] == "missing_api_key"
    assert headers["WWW-Authenticate"] == "Bearer"
    assert body["error"]["type"] == "invalid_request_error" and "message" in body["error"]
    status, body, _ = await refused(keyed_service, key="sk-wrong")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    status, body, _ = await refused(keyed_service, subprotocol_key=KEY_A[:-1])
    assert status == 401


@pytest.mark.parametrize("how", ["bearer", "subprotocol", "environment"])
async def test_a_valid_key_opens_a_session(keyed_service: ServiceProcess, how: str) -> None:
    kwargs = {"bearer": {"key": KEY_A}, "subprotocol": {"subprotocol_key": KEY_A},
              "environment": {"key": KEY_B}}[how]  # fmt: skip
    async with session(keyed_service, **kwargs) as (ws, created):
        assert ws.subprotocol == "realtime"
        assert created["session"]["expires_at"] > 0


async def test_health_is_open_and_metrics_need_their_token(keyed_service: ServiceProcess) -> None:
    async with httpx.AsyncClient(base_url=keyed_service.http_url, timeout=10) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/")).status_code == 200  # the static call page
        assert (await http.get("/metrics")).status_code == 401
        denied = await http.get("/metrics", headers={"Authorization": f"Bearer {KEY_A}"})
        assert denied.status_code == 401  # a token of its own is set
        scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert scraped.status_code == 200 and "step_realtime_sessions_refused" in scraped.text
        assert (await http.get("/v1/realtime/ice-servers")).status_code == 401
        offer = await http.post("/v1/realtime/calls", content=b"v=0",
                                headers={"Content-Type": "application/sdp"})  # fmt: skip
        assert offer.status_code == 401


async def mint(service: ServiceProcess, body: dict[str, Any], key: str = KEY_A) -> httpx.Response:
    async with httpx.AsyncClient(base_url=service.http_url, timeout=10) as http:
        return await http.post(
            "/v1/realtime/client_secrets", json=body, headers={"Authorization": f"Bearer {key}"}
        )


async def test_a_client_secret_opens_a_configured_session_on_websocket_and_webrtc(
    keyed_service: ServiceProcess,
) -> None:
    reply = await mint(keyed_service, {
        "expires_after": {"anchor": "created_at", "seconds": 120},
        "session": {"type": "realtime", "instructions": "Answer like a pirate."},
    })  # fmt: skip
    assert reply.status_code == 200, reply.text
    secret = reply.json()
    assert secret["value"].startswith("ek_") and secret["expires_at"] > 0
    assert secret["session"]["instructions"] == "Answer like a pirate."
    async with session(keyed_service, key=secret["value"]) as (_, created):
        assert created["session"]["instructions"] == "Answer like a pirate."
    async with session(keyed_service, subprotocol_key=secret["value"]) as (_, created):
        assert created["session"]["instructions"] == "Answer like a pirate."
    async with httpx.AsyncClient(base_url=keyed_service.http_url, timeout=10) as http:
        auth = {"Authorization": f"Bearer {secret['value']}"}
        call = await http.post("/v1/realtime/calls", content=(await make_offer()).encode(),
                               headers={"Content-Type": "application/sdp", **auth})  # fmt: skip
        assert call.status_code == 201, call.text
        hang_up = await http.post(call.headers["location"] + "/hangup", headers=auth)
        assert hang_up.status_code == 200
        # A client secret cannot mint more of its kind.
        again = await http.post("/v1/realtime/client_secrets", json={}, headers=auth)
        assert again.status_code == 401


async def test_client_secrets_are_refused_when_bad_or_expired(
    keyed_service: ServiceProcess,
) -> None:
    assert (await mint(keyed_service, {}, key="sk-wrong")).status_code == 401
    bad = await mint(keyed_service, {"session": {"audio": {"input": {"turn_detection": 7}}}})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "session.audio.input.turn_detection"
    too_short = await mint(keyed_service, {"expires_after": {"seconds": 1}})
    assert too_short.status_code == 400
    status, body, _ = await refused(keyed_service, key="ek_forged.c2lnbmF0dXJl")
    assert status == 401 and body["error"]["code"] == "invalid_client_secret"
    short = (await mint(keyed_service, {"expires_after": {"seconds": 10}})).json()
    async with session(keyed_service, key=short["value"]):
        pass
    await asyncio.sleep(max(0.0, short["expires_at"] - time.time()) + 0.5)
    status, body, _ = await refused(keyed_service, key=short["value"])
    assert status == 401 and "expired" in body["error"]["message"]


async def test_a_foreign_browser_origin_is_refused(keyed_service: ServiceProcess) -> None:
    status, body, _ = await refused(keyed_service, key=KEY_A, origin="https://evil.example")
    assert status == 403 and body["error"]["code"] == "origin_not_allowed"
    async with session(keyed_service, key=KEY_A, origin=APP_ORIGIN):
        pass
    async with session(keyed_service, key=KEY_A, origin=keyed_service.http_url):
        pass
    async with httpx.AsyncClient(base_url=keyed_service.http_url, timeout=10) as http:
        call = await http.post("/v1/realtime/calls", content=(await make_offer()).encode(),
                               headers={"Content-Type": "application/sdp", "Origin":
                                        "https://evil.example",
                                        "Authorization": f"Bearer {KEY_A}"})  # fmt: skip
        assert call.status_code == 403


async def test_sessions_past_the_limits_are_refused_and_a_freed_slot_is_reused(
    keyed_service: ServiceProcess,
) -> None:
    async with session(keyed_service, key=KEY_A), session(keyed_service, key=KEY_A):
        status, body, headers = await refused(keyed_service, key=KEY_A)
        assert status == 429 and body["error"]["code"] == "session_limit_reached"
        assert headers["Retry-After"].isdigit()
        async with session(keyed_service, key=KEY_B):
            status, body, headers = await refused(keyed_service, key=KEY_B)
            assert status == 503 and body["error"]["code"] == "server_at_capacity"
            assert int(headers["Retry-After"]) > 0
    for _ in range(50):  # the slots are given back as the sockets close
        try:
            async with session(keyed_service, key=KEY_B), session(keyed_service, key=KEY_B):
                break
        except InvalidStatus:
            await asyncio.sleep(0.1)
    else:
        pytest.fail("freed slots were not reusable")
    async with httpx.AsyncClient(base_url=keyed_service.http_url, timeout=10) as http:
        text = (await http.get("/metrics", headers={"Authorization":
                                                    f"Bearer {METRICS_TOKEN}"})).text  # fmt: skip
    assert 'step_realtime_sessions_refused_total{reason="server_at_capacity"}' in text


async def post_offer(http: httpx.AsyncClient) -> httpx.Response:
    """A WebRTC offer, as a browser posts it (without its key: these services have none)."""
    return await http.post("/v1/realtime/calls", content=(await make_offer()).encode(),
                           headers={"Content-Type": "application/sdp"})  # fmt: skip


@pytest.fixture(scope="module")
def one_slot_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("one-slot") / "serve.log"
    with ServiceProcess("--max-sessions", "1", log_path=log) as service:
        yield service


async def test_a_webrtc_offer_that_never_connects_holds_a_slot_until_it_is_freed(
    one_slot_service: ServiceProcess,
) -> None:
    async with httpx.AsyncClient(base_url=one_slot_service.http_url, timeout=10) as http:
        # The caller goes away: no ICE, no DTLS.
        assert (await post_offer(http)).status_code == 201
        refused = await post_offer(http)
        assert refused.status_code == 503 and refused.headers["Retry-After"].isdigit()
        with pytest.raises(InvalidStatus):
            async with session(one_slot_service):
                pass
        started = time.monotonic()
        while time.monotonic() - started < 20:
            await asyncio.sleep(0.25)
            try:
                async with session(one_slot_service):
                    break
            except InvalidStatus:
                continue
        else:
            pytest.fail("the unconnected offer's slot was not freed")


@pytest.fixture(scope="module")
def per_address_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with ServiceProcess(
        "--max-sessions-per-ip", "1", log_path=tmp_path_factory.mktemp("ip") / "serve.log"
    ) as service:
        yield service


async def test_one_client_address_cannot_take_every_slot(
    per_address_service: ServiceProcess,
) -> None:
    async with session(per_address_service):
        status, body, headers = await refused(per_address_service)
        assert status == 429 and body["error"]["code"] == "address_limit_reached"
        assert headers["Retry-After"].isdigit()
        async with httpx.AsyncClient(base_url=per_address_service.http_url, timeout=10) as http:
            offer = await post_offer(http)
        assert offer.status_code == 429, "WebRTC offers count against the same address"
        # Through a trusted proxy (loopback, uvicorn's default), X-Forwarded-For names the
        # client: another client behind the same proxy has its own allowance.
        async with session(per_address_service, forwarded_for="203.0.113.7"):
            status, _, _ = await refused(per_address_service, forwarded_for="203.0.113.7")
            assert status == 429


async def test_phone_calls_need_twilios_signature_or_a_key(keyed_service: ServiceProcess) -> None:
    path = "/v1/twilio/media-stream"
    url = f"ws://127.0.0.1:{keyed_service.port}{path}"
    signed_url = f"wss://127.0.0.1:{keyed_service.port}{path}"
    for headers in ({}, {"X-Twilio-Signature": twilio_signature("wrong-token", signed_url)}):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers=headers, open_timeout=10):
                pass
        assert refused.value.response.status_code == 401
    for headers in (
        {"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, signed_url)},
        {"Authorization": f"Bearer {KEY_A}"},
    ):
        async with connect(url, additional_headers=headers, open_timeout=10) as ws:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call"}))


async def test_no_key_reaches_the_log(keyed_service: ServiceProcess) -> None:
    for key in (None, "sk-wrong", KEY_A[:-1]):  # refused here, whatever ran before
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        with pytest.raises(InvalidStatus):
            async with connect(keyed_service.ws_url, additional_headers=headers, open_timeout=10):
                pass
    text = keyed_service.log_path.read_text(errors="replace")
    assert "401" in text  # the refused handshakes were logged
    for secret in (KEY_A, KEY_B, METRICS_TOKEN, TWILIO_TOKEN):
        assert secret not in text


@pytest.mark.parametrize(
    ("key", "said"), [(None, "no key was given"), ("sk-wrong", "the key given was refused")]
)
async def test_call_without_a_valid_key_explains_the_401_and_names_api_key(
    keyed_service: ServiceProcess,
    key: str | None,
    said: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(API_KEY_VARIABLE, raising=False)
    wav = tmp_path / "in.wav"
    write_wav(wav, np.zeros(1600, dtype=np.int16), 16_000)
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    argv = [str(wav), "--url", keyed_service.ws_url, *(["--api-key", key] if key else [])]
    assert await main_call(parser.parse_args(argv)) == 2
    err = capsys.readouterr().err
    assert "HTTP 401" in err
    assert f"hint: the service requires an API key ({said}): pass --api-key KEY" in err
