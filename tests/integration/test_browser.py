"""Real browsers (Debian's chromium and Firefox ESR, headless, a fake microphone playing
espeak-ng speech) hold a spoken turn through the call page, over WebRTC and over the WebSocket
fallback."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import silence, synthesize
from tests.support.firefox import FIREFOX, firefox_page, microphone_playing
from tests.support.pulse import PULSEAUDIO, null_sink_server
from tokenizer.pcm import write_wav

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
]  # fmt: skip
FAKE_MIC_RATE = 48_000
TURN_TIMEOUT_S = 45.0
UTTERANCE = "Hello there, how are you doing today?"


def active_sessions(metrics_text: str, transport: str) -> float:
    pattern = rf'^step_realtime_sessions_active\{{transport="{transport}"\}} (\S+)$'
    match = re.search(pattern, metrics_text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.fixture(scope="module")
def browser_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("browser-service") / "serve.log"
    with ServiceProcess("--webrtc-allow-loopback", log_path=log) as service:
        yield service


@pytest.fixture(scope="module")
def fake_microphone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the fake microphone says: 1 s of silence, the utterance, then a long silence so
    the VAD sees the end of the turn (the file is played once: '%noloop')."""
    pcm = np.concatenate(
        [
            silence(1.0, FAKE_MIC_RATE),
            synthesize(UTTERANCE, FAKE_MIC_RATE),
            silence(40.0, FAKE_MIC_RATE),
        ]
    )
    path = tmp_path_factory.mktemp("fake-microphone") / "speech.wav"
    write_wav(path, pcm, FAKE_MIC_RATE)
    return path


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian's chromium is not at {CHROMIUM} (bash scripts/install.sh --test)")
    return CHROMIUM


@asynccontextmanager
async def chromium_tab(
    chromium: str, microphone: Path, profile: Path, *flags: str
) -> AsyncIterator[Any]:
    """A page in a fresh headless chromium (own user-data-dir) whose fake microphone plays
    ``microphone`` once."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium,
            headless=True,
            args=[
                *CHROMIUM_FLAGS,
                f"--use-file-for-fake-audio-capture={microphone}%noloop",
                *flags,
            ],
            # Playwright mutes headless audio by default; play the reply as a user would hear it.
            ignore_default_args=["--mute-audio"],
        )
        try:
            tab = context.pages[0] if context.pages else await context.new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda error: errors.append(str(error)))
            yield tab
            assert errors == [], f"the page threw: {errors}"
        finally:
            await context.close()


@pytest.fixture
async def chromium_page(chromium: str, fake_microphone: Path, tmp_path: Path) -> AsyncIterator[Any]:
    """A page in a fresh headless chromium with the fake microphone."""
    async with chromium_tab(chromium, fake_microphone, tmp_path / "chromium-profile") as tab:
        yield tab


@pytest.fixture(scope="module")
def pulse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for program in (FIREFOX, PULSEAUDIO):
        if not Path(program).exists():
            pytest.fail(f"Debian's {program} is missing (bash scripts/install.sh --test)")
    runtime = tmp_path_factory.mktemp("pulse")
    with null_sink_server(runtime, runtime / "pulseaudio.log") as server:
        yield server


@pytest.fixture
async def firefox_tab(pulse_server: str, tmp_path: Path) -> AsyncIterator[Any]:
    """A page in a fresh headless Firefox ESR whose microphone says the utterance once."""
    pcm = np.concatenate(
        [
            silence(1.0, FAKE_MIC_RATE),
            synthesize(UTTERANCE, FAKE_MIC_RATE),
            silence(1.0, FAKE_MIC_RATE),
        ]
    )
    write_wav(tmp_path / "speech.wav", pcm, FAKE_MIC_RATE)
    async with firefox_page(tmp_path / "firefox-profile", tmp_path / "firefox.log",
                            pulse_server) as tab:  # fmt: skip
        await tab.add_preload_script(microphone_playing((tmp_path / "speech.wav").read_bytes()))
        yield tab
        assert tab.errors == [], f"the page threw: {tab.errors}"


@pytest.fixture(params=["chromium", "firefox"])
def page(request: pytest.FixtureRequest) -> Any:
    """The call page in each browser (Playwright's page API, or its subset in ``FirefoxPage``)."""
    return request.getfixturevalue(
        "chromium_page" if request.param == "chromium" else "firefox_tab"
    )


async def wait_for_turn(tab: Any) -> dict[str, Any]:
    """The page's first finished turn (bounded by TURN_TIMEOUT_S)."""
    deadline = time.monotonic() + TURN_TIMEOUT_S
    while time.monotonic() < deadline:
        turns = await tab.evaluate("window.stepCall.turns")
        if turns and turns[0]["status"] and turns[0]["userTranscript"] is not None:
            turn: dict[str, Any] = turns[0]
            return turn
        await asyncio.sleep(0.2)
    state = await tab.evaluate("window.stepCall.state")
    text = await tab.inner_text("body")
    raise TimeoutError(f"no finished turn within {TURN_TIMEOUT_S:g} s (state {state}):\n{text}")


async def wait_for_sessions(service: ServiceProcess, transport: str, expected: float) -> float:
    deadline = time.monotonic() + 15.0
    value = active_sessions(await asyncio.to_thread(service.metrics), transport)
    while value != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        value = active_sessions(await asyncio.to_thread(service.metrics), transport)
    return value


async def shown_user_transcript(tab: Any) -> str:
    text: str = await tab.inner_text("#transcript .turn.user .text")
    return text.strip()


async def test_a_browser_call_over_webrtc_shows_the_transcript_and_plays_the_reply(
    page: Any, browser_service: ServiceProcess
) -> None:
    await page.goto(f"{browser_service.http_url}/?transport=webrtc")
    await page.click("#call-button")
    turn = await wait_for_turn(page)
    assert turn["status"] == "completed"
    assert await page.evaluate("window.stepCall.transport") == "webrtc"
    assert await wait_for_sessions(browser_service, "webrtc", 1) == 1

    assert turn["userTranscript"], "the echo engine should have heard the fake microphone"
    assert await shown_user_transcript(page) == turn["userTranscript"]
    assert turn["replyText"] == f"You said: {turn['userTranscript']}"
    assert turn["latencyMs"] is not None and turn["latencyMs"] > 0
    assert "first packet" in await page.inner_text("#transcript .turn.assistant .latency")

    # The reply audio arrived as media: samples keep coming in, and some were not silence.
    first = (await page.evaluate("window.stepCall.stats()"))["inbound"]
    await asyncio.sleep(0.5)
    stats = await page.evaluate("window.stepCall.stats()")
    assert stats["inbound"]["totalSamplesReceived"] > first["totalSamplesReceived"]
    assert stats["inbound"]["totalAudioEnergy"] > 0
    assert stats["replyPeakLevel"] > 0.01

    await page.click("#call-button")  # hang up
    assert await page.evaluate("window.stepCall.state") == "idle"
    assert await wait_for_sessions(browser_service, "webrtc", 0) == 0


async def test_a_browser_call_over_the_websocket_fallback_does_the_same(
    page: Any, browser_service: ServiceProcess
) -> None:
    await page.goto(f"{browser_service.http_url}/?transport=websocket")
    await page.click("#call-button")
    turn = await wait_for_turn(page)
    assert turn["status"] == "completed"
    assert await page.evaluate("window.stepCall.transport") == "websocket"

    assert turn["userTranscript"]
    assert await shown_user_transcript(page) == turn["userTranscript"]
    assert turn["replyText"] == f"You said: {turn['userTranscript']}"
    assert turn["latencyMs"] is not None and turn["latencyMs"] > 0

    stats = await page.evaluate("window.stepCall.stats()")
    assert stats["replySamples"] > 24_000 * 0.5, "at least half a second of reply audio"
    assert stats["replyPeakLevel"] > 0.01
    deadline = time.monotonic() + 5.0
    while stats["playedPeakLevel"] <= 0.01 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        stats = await page.evaluate("window.stepCall.stats()")
    assert stats["playedPeakLevel"] > 0.01, "the AudioWorklet player should have played it"

    await page.close()  # a closed tab ends the session
    assert await wait_for_sessions(browser_service, "websocket", 0) == 0


async def test_the_page_falls_back_to_the_websocket_when_webrtc_fails(
    chromium_page: Any, browser_service: ServiceProcess
) -> None:
    page = chromium_page

    async def refuse(route: Any) -> None:
        await route.fulfill(status=503, body="WebRTC is down")

    await page.route("**/v1/realtime/calls", refuse)
    await page.goto(browser_service.http_url)
    await page.click("#call-button")
    deadline = time.monotonic() + 15.0
    while await page.evaluate("window.stepCall.state") != "listening":
        assert time.monotonic() < deadline, await page.inner_text("body")
        await asyncio.sleep(0.1)
    assert await page.evaluate("window.stepCall.transport") == "websocket"
    assert "WebSocket fallback" in await page.inner_text("#notice")
    assert await page.inner_text("#via") == "via WebSocket"
    await page.click("#call-button")


@pytest.fixture(scope="module")
def keyed_browser_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("keyed-browser-service") / "serve.log"
    with ServiceProcess("--webrtc-allow-loopback", "--api-key", "sk-page-test-key",
                        log_path=log) as service:  # fmt: skip
        yield service


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_with_keys_the_page_calls_with_a_client_secret_from_its_fragment(
    chromium_page: Any, keyed_browser_service: ServiceProcess, transport: str
) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=keyed_browser_service.http_url, timeout=10) as http:
        minted = await http.post("/v1/realtime/client_secrets", json={},
                                 headers={"Authorization": "Bearer sk-page-test-key"})  # fmt: skip
    secret = minted.json()["value"]
    page = chromium_page
    await page.goto(f"{keyed_browser_service.http_url}/?transport={transport}"
                    f"#client_secret={secret}")  # fmt: skip
    assert "client_secret" not in await page.evaluate("location.href")
    await page.click("#call-button")
    turn = await wait_for_turn(page)
    assert turn["status"] == "completed"
    assert await page.evaluate("window.stepCall.transport") == transport
    await page.click("#call-button")


# -- the page's controls -------------------------------------------------------------------

BARGE_IN_WORDS = "Wait, stop, tell me about the weather instead."
# A reply long enough (about 10 s spoken) that speech 4.5 s after the end of the first
# utterance lands inside it, even when the reply is slow to start.
LONG_REPLY = (
    "You said: {transcript}. Let me answer that at some length, because there is quite a lot "
    "to say about it, and I will keep talking for a good while before I finish the thought."
)


def microphone_file(directory: Path, *parts: str | float) -> tuple[Path, list[float]]:
    """A fake microphone file of silences (seconds) and utterances, and where each
    utterance ends (seconds into the file)."""
    chunks, ends, at = [], [], 0.0
    for part in parts:
        pcm = (
            silence(part, FAKE_MIC_RATE)
            if isinstance(part, float)
            else synthesize(part, FAKE_MIC_RATE)
        )
        chunks.append(pcm)
        at += len(pcm) / FAKE_MIC_RATE
        if isinstance(part, str):
            ends.append(at)
    path = directory / "microphone.wav"
    write_wav(path, np.concatenate(chunks), FAKE_MIC_RATE)
    return path, ends


async def wait_until(tab: Any, expression: str, timeout_s: float = TURN_TIMEOUT_S) -> Any:
    """Poll ``expression`` in the page until it is truthy (bounded by ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await tab.evaluate(expression)
        if value:
            return value
        await asyncio.sleep(0.1)
    text = await tab.inner_text("body")
    turns = await tab.evaluate("window.stepCall.turns")
    events = await tab.evaluate("window.seenEvents || null")
    raise TimeoutError(
        f"not true within {timeout_s:g} s: {expression}\n{text}\nturns: {turns}\nevents: {events}"
    )


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_the_page_shows_the_level_the_stage_timings_and_switches_microphones(
    chromium_page: Any, browser_service: ServiceProcess, transport: str
) -> None:
    page = chromium_page
    await page.goto(f"{browser_service.http_url}/?transport={transport}")
    await page.click("#call-button")
    meter_peak = 0.0
    deadline = time.monotonic() + TURN_TIMEOUT_S
    while not await page.evaluate("window.stepCall.turns.some((turn) => turn.status)"):
        assert time.monotonic() < deadline, await page.inner_text("body")
        meter_peak = max(
            meter_peak, await page.evaluate("document.getElementById('mic-level').value")
        )
        await asyncio.sleep(0.05)
    assert meter_peak > 0.3, "the meter should have moved while the microphone spoke"
    assert await page.evaluate("window.stepCall.transcribing"), "the page asks for transcripts"

    timings = page.locator("#transcript .turn.assistant .timings span")
    await timings.first.wait_for(state="visible", timeout=5000)
    shown = await timings.all_inner_texts()
    assert any(re.fullmatch(r"first audio sent \d+ ms", chip) for chip in shown), shown
    reasoning = page.locator("#transcript .turn.assistant details.reasoning")
    assert not await reasoning.first.evaluate("(details) => details.open"), "collapsed by default"

    # Another microphone: the call goes on with the new device's track.
    before = await page.evaluate("window.stepCall.microphone")
    options = await page.eval_on_selector_all(
        "#microphone option", "(options) => options.map((o) => o.value)"
    )
    others = [value for value in options if value != before["deviceId"]]
    assert others, f"chromium's fake devices should offer another microphone: {options}"
    await page.select_option("#microphone", others[0])
    switched = f"window.stepCall.microphone.trackId !== {before['trackId']!r}"
    after = await wait_until(page, f"{switched} && window.stepCall.microphone", 10)
    assert after["deviceId"] == others[0]
    if transport == "webrtc":
        assert (await page.evaluate("window.stepCall.stats()"))["sentTrackId"] == after["trackId"]
    # The new track feeds the meter (the fake device plays its file again from the start).
    await wait_until(page, "window.stepCall.microphone.level > 0.01", 15)
    assert await page.evaluate("window.stepCall.state") != "idle"
    await page.click("#call-button")


async def test_a_muted_microphone_is_not_heard_until_unmuted(
    chromium: str, browser_service: ServiceProcess, tmp_path: Path
) -> None:
    microphone, ends = microphone_file(tmp_path, 1.0, UTTERANCE, 6.0, UTTERANCE, 30.0)
    async with chromium_tab(chromium, microphone, tmp_path / "profile") as page:
        await page.goto(f"{browser_service.http_url}/?transport=webrtc")
        await page.click("#mute-button")  # join muted
        assert await page.get_attribute("#mute-button", "aria-pressed") == "true"
        await page.click("#call-button")
        await wait_until(page, f"window.stepCall.microphone.seconds > {ends[0] + 2.0}")
        assert await page.evaluate("window.stepCall.turns") == []
        assert await page.locator("#transcript .turn.user").count() == 0
        assert (await page.evaluate("window.stepCall.microphone"))["peakLevel"] < 0.001

        await page.click("#mute-button")
        turn = await wait_for_turn(page)
        assert turn["status"] == "completed" and turn["userTranscript"]
        assert (await page.evaluate("window.stepCall.microphone"))["peakLevel"] > 0.01
        await page.click("#call-button")


@pytest.fixture(scope="module")
def long_reply_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("long-reply-service") / "serve.log"
    with ServiceProcess("--webrtc-allow-loopback", "--echo-reply", LONG_REPLY,
                        log_path=log) as service:  # fmt: skip
        yield service


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_speaking_over_the_reply_cuts_it_off_on_the_page_and_the_next_turn_follows(
    chromium: str, long_reply_service: ServiceProcess, tmp_path: Path, transport: str
) -> None:
    microphone, _ = microphone_file(tmp_path, 1.0, UTTERANCE, 4.5, BARGE_IN_WORDS, 40.0)
    async with chromium_tab(chromium, microphone, tmp_path / "profile") as page:
        if transport == "webrtc":
            # What the service says on the data channel, as the page receives it.
            await page.add_init_script(
                """const open = RTCPeerConnection.prototype.createDataChannel;
                window.seenEvents = [];
                RTCPeerConnection.prototype.createDataChannel = function (...args) {
                  const channel = open.apply(this, args);
                  channel.addEventListener("message",
                    (message) => window.seenEvents.push(JSON.parse(message.data).type));
                  return channel;
                };"""
            )
        await page.goto(f"{long_reply_service.http_url}/?transport={transport}")
        # As with headphones: chromium's echo canceller would swallow most of the words
        # spoken while the reply plays (the fake microphone hears no echo, but it suppresses
        # the near end anyway), and the service would hear too little to barge in.
        await page.uncheck("#echo-cancellation")
        await page.click("#call-button")
        cut = await wait_until(page, "window.stepCall.turns.find((turn) => turn.cut)")
        assert cut["heardAt"] is not None, "the reply was playing when it was cut"
        assert cut["userTranscript"]
        entry = page.locator(f'#transcript .turn.assistant[data-response-id="{cut["responseId"]}"]')
        assert "cut" in (await entry.get_attribute("class") or "").split()
        assert "cut off" in await entry.locator(".latency").inner_text()
        if transport == "webrtc":
            assert "output_audio_buffer.cleared" in await page.evaluate("window.seenEvents")

        # The words spoken over the reply make the next turn, and its reply is heard.
        following = await wait_until(
            page,
            f"window.stepCall.turns.find((turn) => turn.responseId !== {cut['responseId']!r}"
            " && turn.userTranscript && turn.heardAt !== null)",
        )
        assert following["userTranscript"] != cut["userTranscript"]
        assert following["latencyMs"] is not None
        await page.click("#call-button")


async def test_on_a_plain_http_origin_the_page_says_the_microphone_needs_https(
    chromium: str, fake_microphone: Path, browser_service: ServiceProcess, tmp_path: Path
) -> None:
    # call.example resolves to 127.0.0.1 in this browser only: a non-loopback name over HTTP,
    # which is not a secure context, so the page has no navigator.mediaDevices.
    rules = "--host-resolver-rules=MAP call.example 127.0.0.1"
    async with chromium_tab(chromium, fake_microphone, tmp_path / "profile", rules) as page:
        await page.goto(f"http://call.example:{browser_service.port}/")
        assert await page.evaluate("window.isSecureContext") is False
        problem = page.locator("#microphone-problem")
        assert await problem.is_visible()
        text = await problem.inner_text()
        assert "plain HTTP" in text and f"https://call.example:{browser_service.port}/" in text
        assert "--ssl-certfile" in text
        assert await page.is_disabled("#call-button")

        secure = {"isSecureContext": True, "hasGetUserMedia": True, "host": "call.example"}
        assert (
            await page.evaluate("(env) => window.stepCall.microphoneProblem(env)", secure) is None
        )
