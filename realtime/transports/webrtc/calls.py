"""The live WebRTC calls of one service: answer offers, hang up by id, end them all at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from realtime.protocol.session_config import SessionConfig
from realtime.session.services import SessionServices
from realtime.session.session import Session
from realtime.transports.webrtc.call import WebRtcCall
from realtime.transports.webrtc.offer import read_offer
from realtime.transports.webrtc.options import WebRtcOptions


@dataclass(frozen=True)
class CallAnswer:
    call_id: str
    sdp: str


class WebRtcCalls:
    def __init__(self, services: SessionServices, options: WebRtcOptions) -> None:
        self.services = services
        self.options = options
        self._calls: dict[str, WebRtcCall] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def get(self, call_id: str) -> WebRtcCall | None:
        return self._calls.get(call_id)

    async def answer(
        self,
        body: bytes,
        content_type: str | None,
        size: int | None = None,
        *,
        config: SessionConfig | None = None,
        on_session: Callable[[Session], None] | None = None,
        on_ended: Callable[[], None] | None = None,
    ) -> CallAnswer:
        """Answer an offer (raises ``OfferRejected`` with the 4xx to send for a bad one).
        ``size`` is the body's full size when only part of it was read; ``on_ended`` is
        called once when the call is over (also when the offer is rejected)."""
        try:
            sdp = read_offer(body, content_type, self.options.max_offer_bytes, size)
        except BaseException:
            if on_ended is not None:
                on_ended()
            raise

        def ended(call: WebRtcCall) -> None:
            self._forget(call)
            if on_ended is not None:
                on_ended()

        call = WebRtcCall(
            self.services, self.options, config=config, on_session=on_session, on_ended=ended
        )
        self._calls[call.id] = call
        answer = await call.answer(sdp)
        return CallAnswer(call.id, answer)

    async def hang_up(self, call_id: str) -> bool:
        call = self._calls.get(call_id)
        if call is None:
            return False
        await call.hang_up("hung up by the client")
        return True

    async def aclose(self) -> None:
        calls = list(self._calls.values())
        await asyncio.gather(*(call.hang_up("service shutting down") for call in calls))

    def _forget(self, call: WebRtcCall) -> None:
        self._calls.pop(call.id, None)
