"""HTTP side of WebRTC calls: the SDP offer/answer exchange, hang-up, and ICE servers for the page.

``POST /v1/realtime/calls`` takes the offer as ``application/sdp`` and answers ``201`` with
the SDP answer and a ``Location`` naming the call, as OpenAI's WebRTC API does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from realtime.protocol.session_config import SessionConfig
from realtime.session.session import Session
from realtime.transports.webrtc.calls import WebRtcCalls
from realtime.transports.webrtc.offer import SDP_MEDIA_TYPE, OfferRejected

log = logging.getLogger(__name__)

CALLS_PATH = "/v1/realtime/calls"


async def _limited_body(request: Request, max_bytes: int) -> tuple[bytes, int]:
    """The request body and its size, reading little past ``max_bytes`` of a bigger one."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return b"", int(declared)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            break
    return bytes(body), len(body)


async def create_call(
    request: Request,
    calls: WebRtcCalls,
    *,
    config: SessionConfig | None = None,
    on_session: Callable[[Session], None] | None = None,
    on_ended: Callable[[], None] | None = None,
) -> Response:
    """Answer the offer in ``request``; see ``WebRtcCalls.answer`` for the hooks."""
    body, size = await _limited_body(request, calls.options.max_offer_bytes)
    try:
        answer = await calls.answer(
            body,
            request.headers.get("content-type"),
            size,
            config=config,
            on_session=on_session,
            on_ended=on_ended,
        )
    except OfferRejected as rejected:
        log.info("WebRTC offer rejected: %s", rejected.message)
        return JSONResponse(rejected.body(), status_code=rejected.status)
    return Response(
        answer.sdp,
        status_code=201,
        media_type=SDP_MEDIA_TYPE,
        headers={"Location": f"{CALLS_PATH}/{answer.call_id}"},
    )


async def hang_up_call(request: Request, calls: WebRtcCalls) -> Response:
    call_id = request.path_params["call_id"]
    if not await calls.hang_up(call_id):
        return JSONResponse(
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "call_not_found",
                    "message": f"no live call with id {call_id}",
                    "param": None,
                }
            },
            status_code=404,
        )
    return Response(status_code=200)


async def ice_servers(request: Request, calls: WebRtcCalls) -> Response:
    """The ICE servers browsers should use to reach this service (none unless configured)."""
    return JSONResponse({"ice_servers": calls.options.browser_ice_servers()})
