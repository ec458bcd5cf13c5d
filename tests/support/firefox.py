"""Debian's Firefox ESR, headless, driven over WebDriver BiDi (built into Firefox; no driver
binary, no browser download): enough to load a page, run script in it and collect its errors.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import websockets

from benchmarks.harness.ports import free_port

FIREFOX = "/usr/bin/firefox-esr"
_PREFERENCES = {
    # A call page asks for the microphone and plays audio without a click of the user's own.
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    # The service is on 127.0.0.1: let ICE use the loopback interface, with plain addresses.
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    # Tests talk only to 127.0.0.1: every other host goes to a proxy that is not there.
    "network.proxy.type": 1,
    "network.proxy.http": "127.0.0.1",
    "network.proxy.http_port": 9,
    "network.proxy.ssl": "127.0.0.1",
    "network.proxy.ssl_port": 9,
    "network.proxy.no_proxies_on": "127.0.0.1, localhost",
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.normandy.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
}
_START_TIMEOUT_S = 30.0
_COMMAND_TIMEOUT_S = 30.0


class BidiError(RuntimeError):
    """A WebDriver BiDi command failed, or a script threw."""


class FirefoxPage:
    """One tab of a headless Firefox; ``errors`` collects the page's uncaught JS errors."""

    def __init__(self, connection: websockets.ClientConnection, context: str) -> None:
        self._connection = connection
        self.context = context
        self.errors: list[str] = []
        self._next_id = 0
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self._connection:
            message = json.loads(raw)
            if "id" in message and message["id"] in self._replies:
                future = self._replies.pop(message["id"])
                if not future.done():
                    future.set_result(message)
            elif message.get("method") == "log.entryAdded":
                entry = message["params"]
                if entry.get("type") == "javascript" and entry.get("level") == "error":
                    self.errors.append(str(entry.get("text")))
        for future in self._replies.values():
            if not future.done():
                future.set_exception(BidiError("Firefox closed the WebDriver BiDi connection"))

    async def command(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[self._next_id] = reply
        await self._connection.send(json.dumps({"id": self._next_id, "method": method,
                                                "params": params}))  # fmt: skip
        async with asyncio.timeout(_COMMAND_TIMEOUT_S):
            message = await reply
        if message.get("type") == "error":
            raise BidiError(f"{method}: {message.get('error')}: {message.get('message')}")
        result: dict[str, Any] = message["result"]
        return result

    async def add_preload_script(self, function_declaration: str) -> None:
        """Run ``function_declaration`` in every document before the page's own scripts."""
        await self.command("script.addPreloadScript", {"functionDeclaration": function_declaration})

    async def goto(self, url: str) -> None:
        await self.command(
            "browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"}
        )

    async def evaluate(self, expression: str, *, user_gesture: bool = False) -> Any:
        """The JSON value of ``expression`` (awaited when it is a promise)."""
        result = await self.command(
            "script.evaluate",
            {
                "expression": f"(async () => JSON.stringify(await ({expression})))()",
                "target": {"context": self.context},
                "awaitPromise": True,
                "userActivation": user_gesture,
            },
        )
        if result.get("type") == "exception":
            details = result.get("exceptionDetails", {})
            raise BidiError(f"{expression} threw: {details.get('text')}")
        value = result["result"]
        return None if value.get("type") == "undefined" else json.loads(value["value"])

    async def click(self, selector: str) -> None:
        """A click with the user activation a real one has (getUserMedia, audio playback)."""
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).click()",
                            user_gesture=True)  # fmt: skip

    async def close(self) -> None:
        """Close this tab, as a user would (a fresh blank one keeps the browser running)."""
        old = self.context
        self.context = (await self.command("browsingContext.create", {"type": "tab"}))["context"]
        await self.command("browsingContext.close", {"context": old, "promptUnload": False})

    async def inner_text(self, selector: str) -> str:
        text: str = await self.evaluate(f"document.querySelector({json.dumps(selector)}).innerText")
        return text

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.command("session.end", {})
        await self._connection.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


def microphone_playing(wav: bytes) -> str:
    """A preload script whose ``getUserMedia`` gives a microphone that plays ``wav`` once,
    then silence (Firefox has no file-backed fake device as Chromium does)."""
    speech = base64.b64encode(wav).decode("ascii")
    return f"""() => {{
  if (!navigator.mediaDevices) return;
  navigator.mediaDevices.getUserMedia = async () => {{
    const context = new AudioContext();
    const bytes = Uint8Array.from(atob("{speech}"), (c) => c.charCodeAt(0));
    const source = context.createBufferSource();
    source.buffer = await context.decodeAudioData(bytes.buffer);
    const microphone = context.createMediaStreamDestination();
    source.connect(microphone);
    source.start();
    return microphone.stream;
  }};
}}"""


@contextlib.asynccontextmanager
async def firefox_page(
    profile: Path, log_path: Path, pulse_server: str
) -> AsyncIterator[FirefoxPage]:
    """A fresh headless Firefox ESR (its own profile) and its first tab, playing sound to the
    PulseAudio server ``pulse_server``; stopped on exit."""
    port = free_port()
    process = await asyncio.to_thread(_start_firefox, profile, log_path, pulse_server, port)
    page: FirefoxPage | None = None
    try:
        connection = await _connect(f"ws://127.0.0.1:{port}/session", process, log_path)
        await connection.send(json.dumps({"id": 0, "method": "session.new",
                                          "params": {"capabilities": {}}}))  # fmt: skip
        async with asyncio.timeout(_COMMAND_TIMEOUT_S):
            created = json.loads(await connection.recv())
        if created.get("type") != "success":
            raise BidiError(f"session.new: {created}")
        page = FirefoxPage(connection, context="")
        tree = await page.command("browsingContext.getTree", {"maxDepth": 0})
        page.context = tree["contexts"][0]["context"]
        await page.command("session.subscribe", {"events": ["log.entryAdded"]})
        yield page
    finally:
        if page is not None:
            await page.aclose()
        # Firefox runs several processes; they share the session it was started in.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait)


def _start_firefox(
    profile: Path, log_path: Path, pulse_server: str, port: int
) -> subprocess.Popen[bytes]:
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "user.js").write_text(
        "".join(f'user_pref("{k}", {json.dumps(v)});\n' for k, v in _PREFERENCES.items())
    )
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [FIREFOX, "--headless", "--no-remote", "--profile", str(profile),
             "--remote-debugging-port", str(port), "about:blank"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PULSE_SERVER": pulse_server},
        )  # fmt: skip


async def _connect(
    url: str, process: subprocess.Popen[bytes], log_path: Path
) -> websockets.ClientConnection:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"Firefox exited early; see {log_path}")
        try:
            return await websockets.connect(url, max_size=None)
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)
