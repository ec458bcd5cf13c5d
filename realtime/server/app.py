"""The ASGI application: health, metrics and the realtime endpoints, around app-wide resources."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from realtime.server.resources import ServiceOptions, open_services
from realtime.session.services import SessionServices
from realtime.transports.websocket import serve_websocket


def create_app(options: ServiceOptions) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(options) as services:
            app.state.services = services
            yield

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

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        WebSocketRoute("/v1/realtime", realtime_websocket),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
