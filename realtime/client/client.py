"""``RealtimeClient``: an async WebSocket client for the service's OpenAI Realtime API (the
WebSocket side of ``RealtimeSessionClient``: connecting, its reader, base64 audio appends)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from realtime.client.connection import DEFAULT_CHUNK_MS, DEFAULT_OPEN_TIMEOUT_S
from realtime.client.errors import (
    RealtimeConnectionClosed,
    RealtimeConnectionError,
)
from realtime.client.events import (
    session_audio_rate,
)
from realtime.client.session_client import RealtimeSessionClient, require_pcm16
from tokenizer.pcm import pcm16_to_base64
from tokenizer.resample import resample

# Where the command-line clients (call, bench) find the key they present by default.
API_KEY_VARIABLE = "STEP_REALTIME_API_KEY"

log = logging.getLogger(__name__)

# Reply audio arrives as base64 JSON: allow events well above websockets' 1 MiB default.
MAX_EVENT_BYTES = 16 * 1024 * 1024
_CLOSE_TIMEOUT_S = 2.0


def _connect_failure(exc: BaseException, open_timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out after {open_timeout:g} s opening the WebSocket"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RealtimeClient(RealtimeSessionClient):
    """One Realtime session over WebSocket.

    Open it with ``async with RealtimeClient.connect(url) as client`` (or
    ``client = await RealtimeClient.connect(url)`` and ``await client.close()``). A reader
    task parses every server event, stamps ``received_at`` and queues it; ``next_event``,
    ``wait_for`` and ``events()`` consume that single queue, so events are handed out once.
    """

    def __init__(self, connection: ClientConnection, url: str) -> None:
        super().__init__(url)
        self._connection = connection
        self._closed_reason: str | None = None
        self._reader = asyncio.create_task(self._read(), name=f"realtime-reader {url}")

    # -- opening and closing -----------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        session: dict[str, Any] | None = None,
        open_timeout: float = DEFAULT_OPEN_TIMEOUT_S,
        api_key: str | None = None,
    ) -> _Connecting:
        """Connect, wait for ``session.created`` and apply ``session`` (a partial session
        object) with ``session.update``. Every step is bounded by ``open_timeout`` seconds.
        ``api_key`` (a key or an ``ek_`` client secret) is sent as a Bearer token.

        Raises ``RealtimeConnectionError`` when the server cannot be reached or does not open
        a session, and ``RealtimeServerError`` when it rejects ``session``.
        """
        return _Connecting(cls, url, session, open_timeout, api_key)

    @classmethod
    async def _open(
        cls, url: str, session: dict[str, Any] | None, open_timeout: float, api_key: str | None
    ) -> RealtimeClient:
        try:
            connection = await connect(
                url,
                additional_headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
                open_timeout=open_timeout,
                max_size=MAX_EVENT_BYTES,
                compression=None,  # base64 audio barely compresses; deflate only adds latency
                close_timeout=_CLOSE_TIMEOUT_S,
            )
        except (OSError, ValueError, WebSocketException) as exc:
            reason = _connect_failure(exc, open_timeout)
            status = exc.response.status_code if isinstance(exc, InvalidStatus) else None
            raise RealtimeConnectionError(
                f"could not connect to {url}: {reason}", http_status=status
            ) from exc
        client = cls(connection, url)
        try:
            try:
                await client.wait_for("session.created", open_timeout)
            except (TimeoutError, RealtimeConnectionClosed) as exc:
                raise RealtimeConnectionError(
                    f"could not connect to {url}: the server did not open a Realtime session "
                    f"({exc})"
                ) from exc
            if session:
                await client.update_session(session, timeout=open_timeout)
        except BaseException:
            await client.close()
            raise
        return client

    async def close(self) -> None:
        """Close the connection and stop the reader (safe to call more than once)."""
        await self._connection.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), _CLOSE_TIMEOUT_S)
        except TimeoutError:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    # -- state --------------------------------------------------------------------------------

    @property
    def input_rate(self) -> int:
        """The sample rate the session expects input audio at."""
        return session_audio_rate(self._session, "input")

    @property
    def closed(self) -> bool:
        """True once the connection has ended (events still queued can be read)."""
        return self._reader.done()

    # -- receiving ----------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for message in self._connection:
                self._receive(message, time.monotonic())
        except ConnectionClosed:
            pass  # described below from the close frame
        except Exception:
            log.exception("the Realtime event reader failed; treating the connection as closed")
            await self._connection.close()
        finally:
            code = self._connection.close_code
            reason = self._connection.close_reason
            self._closed_reason = f"code {code}" + (f", {reason}" if reason else "")
            self._inbox.end()

    def _closed_error(self, doing: str) -> RealtimeConnectionClosed:
        reason = self._closed_reason or "closing"
        return RealtimeConnectionClosed(
            f"connection to {self.url} closed ({reason}) {doing}; {self.describe_recent()}"
        )

    # -- sending ------------------------------------------------------------------------------

    async def _send_message(self, message: str | bytes, doing: str) -> None:
        try:
            await self._connection.send(message)
        except ConnectionClosed:
            raise self._closed_error(doing) from None

    async def append_audio(self, pcm: npt.NDArray[np.int16]) -> None:
        """Send ``pcm`` (mono int16 at the session's input rate) in one audio append event."""
        audio = pcm16_to_base64(require_pcm16(pcm))
        await self.send({"type": "input_audio_buffer.append", "audio": audio})

    async def stream_audio(
        self,
        pcm: npt.NDArray[np.int16],
        *,
        sample_rate: int,
        chunk_ms: float = DEFAULT_CHUNK_MS,
        realtime: bool = True,
        stop: asyncio.Event | None = None,
    ) -> float:
        """Send ``pcm`` in ``chunk_ms`` appends, resampled to the session's input rate.

        With ``realtime`` each chunk leaves when a microphone would deliver it: chunk k at
        start + (end of chunk k)/rate on a monotonic schedule, so pacing does not drift and
        back-to-back calls continue the same cadence. Otherwise chunks go as fast as the
        connection takes them. Setting ``stop`` ends the stream before the next chunk.
        Returns the ``time.monotonic()`` at which the last chunk was sent (the start time if
        nothing was sent).
        """
        if chunk_ms <= 0:
            raise ValueError(f"chunk_ms must be positive, got {chunk_ms}")
        samples = require_pcm16(pcm)
        rate = self.input_rate
        if sample_rate != rate:
            samples = await asyncio.to_thread(resample, samples, sample_rate, rate)
        chunk = max(1, round(rate * chunk_ms / 1000.0))
        start = time.monotonic()
        last_sent = start
        for offset in range(0, len(samples), chunk):
            piece = samples[offset : offset + chunk]
            if realtime:
                due = start + (offset + len(piece)) / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)  # let the reader stamp arrivals between chunks
            if stop is not None and stop.is_set():
                break
            await self.append_audio(piece)
            last_sent = time.monotonic()
        return last_sent


class _Connecting:
    """What ``RealtimeClient.connect`` returns: awaitable, or an async context manager."""

    def __init__(
        self,
        client_type: type[RealtimeClient],
        url: str,
        session: dict[str, Any] | None,
        open_timeout: float,
        api_key: str | None,
    ) -> None:
        self._client_type = client_type
        self._url = url
        self._session = session
        self._open_timeout = open_timeout
        self._api_key = api_key
        self._client: RealtimeClient | None = None

    def _open(self) -> Coroutine[Any, Any, RealtimeClient]:
        return self._client_type._open(self._url, self._session, self._open_timeout, self._api_key)

    def __await__(self) -> Generator[Any, None, RealtimeClient]:
        return self._open().__await__()

    async def __aenter__(self) -> RealtimeClient:
        self._client = await self._open()
        return self._client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.close()
