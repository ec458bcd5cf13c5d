"""The ASGI application: health, metrics and the realtime endpoints, around app-wide resources."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from realtime.server.page import page_routes
from realtime.server.resources import ServiceOptions, open_services
from realtime.session.services import SessionServices
from realtime.transports.twilio import TWILIO_MEDIA_STREAM_PATH, serve_twilio_media_stream
from realtime.transports.webrtc.calls import WebRtcCalls
from realtime.transports.webrtc.endpoints import (
    CALLS_PATH,
    create_call,
    hang_up_call,
    ice_servers,
)
from realtime.transports.websocket import serve_websocket


def create_app(options: ServiceOptions) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(options) as services:
            app.state.services = services
            app.state.webrtc_calls = WebRtcCalls(services, options.webrtc)
            try:
                yield
            finally:
                await app.state.webrtc_calls.aclose()

    def services_of(request: Request | WebSocket) -> SessionServices:
        services: SessionServices = request.app.state.services
        return services

    async def healthz(request: Request) -> JSONResponse:
        services = services_of(request)
        info = services.engine.info
        return JSONResponse(
            {
                "status": "ok",
                "engine": info.name,
                "model": info.model,
                "simulated": info.simulated,
                "tts": services.tts.name,
            }
        )

    async def metrics(request: Request) -> Response:
        body = services_of(request).metrics.render()
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def realtime_websocket(websocket: WebSocket) -> None:
        await serve_websocket(websocket, services_of(websocket))

    async def twilio_media_stream(websocket: WebSocket) -> None:
        await serve_twilio_media_stream(websocket, services_of(websocket))

    def calls_of(request: Request) -> WebRtcCalls:
        calls: WebRtcCalls = request.app.state.webrtc_calls
        return calls

    async def webrtc_call(request: Request) -> Response:
        return await create_call(request, calls_of(request))

    async def webrtc_hang_up(request: Request) -> Response:
        return await hang_up_call(request, calls_of(request))

    async def webrtc_ice_servers(request: Request) -> Response:
        return await ice_servers(request, calls_of(request))

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        WebSocketRoute("/v1/realtime", realtime_websocket),
        Route(CALLS_PATH, webrtc_call, methods=["POST"]),
        Route(CALLS_PATH + "/{call_id}/hangup", webrtc_hang_up, methods=["POST"]),
        Route("/v1/realtime/ice-servers", webrtc_ice_servers, methods=["GET"]),
        # Phone calls: Twilio's <Connect><Stream> (see README, "Phone calls").
        WebSocketRoute(TWILIO_MEDIA_STREAM_PATH, twilio_media_stream),
        *page_routes(),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
