"""The ASGI application: health, metrics, client secrets and the realtime endpoints, around
app-wide resources. Every session, WebSocket or WebRTC, comes in through the ``Gate``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from realtime.protocol.errors import ProtocolError
from realtime.protocol.session_config import SessionConfig, apply_session_update
from realtime.server.access import AccessOptions
from realtime.server.admission import LiveSessions
from realtime.server.client_secrets import parse_request
from realtime.server.gate import Admitted, Caller, Gate, Refusal
from realtime.server.origins import OriginPolicy
from realtime.server.page import page_routes
from realtime.server.resources import ServiceOptions, open_services
from realtime.server.twilio_signature import SIGNATURE_HEADER, valid_twilio_signature
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

log = logging.getLogger(__name__)

CLIENT_SECRETS_PATH = "/v1/realtime/client_secrets"
_MAX_SECRET_REQUEST_BYTES = 64 * 1024


def create_app(options: ServiceOptions, access: AccessOptions | None = None) -> Starlette:
    access = access or AccessOptions()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(options) as services:
            app.state.services = services
            app.state.gate = Gate(
                access.keys,
                OriginPolicy(access.allowed_origins),
                LiveSessions(access.limits),
                services.metrics,
                metrics_token=access.metrics_token,
                engine_problem=services.engine.admission_problem,
            )
            app.state.webrtc_calls = WebRtcCalls(services, options.webrtc)
            try:
                yield
            finally:
                await app.state.webrtc_calls.aclose()

    def services_of(request: Request | WebSocket) -> SessionServices:
        services: SessionServices = request.app.state.services
        return services

    def gate_of(request: Request | WebSocket) -> Gate:
        gate: Gate = request.app.state.gate
        return gate

    def session_config(services: SessionServices, caller: Caller) -> SessionConfig | None:
        """A client secret's session configuration over the service's default."""
        if caller.session is None:
            return None
        return apply_session_update(services.settings.default_config, caller.session, None)

    async def healthz(request: Request) -> JSONResponse:
        services = services_of(request)
        info = services.engine.info
        draining = gate_of(request).draining
        return JSONResponse(
            {
                "status": "draining" if draining else "ok",
                "engine": info.name,
                "model": info.model,
                "simulated": info.simulated,
                "tts": services.tts.name,
            },
            status_code=503 if draining else 200,
        )

    async def metrics(request: Request) -> Response:
        refusal = gate_of(request).authorize_metrics(request.headers)
        if refusal is not None:
            return refusal.response()
        body = services_of(request).metrics.render()
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def client_secrets(request: Request) -> Response:
        gate = gate_of(request)
        caller = gate.identify(request.headers, allow_client_secret=False)
        if isinstance(caller, Refusal):
            return caller.response()
        if not gate.keys:
            return Refusal(
                400, "api_keys_not_configured",
                "client secrets need the service to have API keys (--api-key)",
            ).response()  # fmt: skip
        body = await request.body()
        try:
            if len(body) > _MAX_SECRET_REQUEST_BYTES:
                raise ProtocolError("request_too_large", "the request body is too large")
            wanted = parse_request(body)
            config = apply_session_update(
                services_of(request).settings.default_config, wanted.session or {}, None
            )
            assert caller.key_id is not None
            value, expires_at = gate.secrets.mint(
                caller.key_id, wanted.session, wanted.expires_after.seconds
            )
        except ProtocolError as err:
            return Refusal(400, err.code, err.message, param=err.param).response()
        return JSONResponse({"value": value, "expires_at": expires_at, "session": config.wire()})

    async def realtime_websocket(websocket: WebSocket) -> None:
        services = services_of(websocket)
        admitted = gate_of(websocket).admit(
            websocket.headers,
            websocket.scope.get("subprotocols") or [],
            address=websocket.client.host if websocket.client else None,
        )
        if isinstance(admitted, Refusal):
            await websocket.send_denial_response(admitted.response())
            return
        try:
            await serve_websocket(
                websocket,
                services,
                config=session_config(services, admitted.caller),
                on_session=admitted.slot.attach,
            )
        finally:
            admitted.slot.release()

    async def twilio_media_stream(websocket: WebSocket) -> None:
        gate = gate_of(websocket)
        vouched = None
        if access.twilio_auth_token and gate.keys:
            # Twilio signs the URL it connected to (wss://, as Twilio only connects over TLS).
            url = f"wss://{websocket.headers.get('host', '')}{websocket.url.path}"
            if websocket.url.query:
                url += f"?{websocket.url.query}"
            signature = websocket.headers.get(SIGNATURE_HEADER)
            if valid_twilio_signature(access.twilio_auth_token, url, signature):
                vouched = "twilio"
        admitted = gate.admit(websocket.headers, vouched_for=vouched)
        if isinstance(admitted, Refusal):
            await websocket.send_denial_response(admitted.response())
            return
        try:
            await serve_twilio_media_stream(
                websocket, services_of(websocket), on_session=admitted.slot.attach
            )
        finally:
            admitted.slot.release()

    def calls_of(request: Request) -> WebRtcCalls:
        calls: WebRtcCalls = request.app.state.webrtc_calls
        return calls

    async def webrtc_call(request: Request) -> Response:
        admitted = gate_of(request).admit(
            request.headers, address=request.client.host if request.client else None
        )
        if isinstance(admitted, Refusal):
            return admitted.response()
        return await _answer(request, admitted)

    async def _answer(request: Request, admitted: Admitted) -> Response:
        try:
            return await create_call(
                request,
                calls_of(request),
                config=session_config(services_of(request), admitted.caller),
                on_session=admitted.slot.attach,
                on_ended=admitted.slot.release,
            )
        except BaseException:
            admitted.slot.release()
            raise

    async def webrtc_hang_up(request: Request) -> Response:
        caller = gate_of(request).identify(request.headers)
        if isinstance(caller, Refusal):
            return caller.response()
        return await hang_up_call(request, calls_of(request))

    async def webrtc_ice_servers(request: Request) -> Response:
        caller = gate_of(request).identify(request.headers)
        if isinstance(caller, Refusal):
            return caller.response()
        return await ice_servers(request, calls_of(request))

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route(CLIENT_SECRETS_PATH, client_secrets, methods=["POST"]),
        WebSocketRoute("/v1/realtime", realtime_websocket),
        Route(CALLS_PATH, webrtc_call, methods=["POST"]),
        Route(CALLS_PATH + "/{call_id}/hangup", webrtc_hang_up, methods=["POST"]),
        Route("/v1/realtime/ice-servers", webrtc_ice_servers, methods=["GET"]),
        # Phone calls: Twilio's <Connect><Stream> (see README, "Phone calls").
        WebSocketRoute(TWILIO_MEDIA_STREAM_PATH, twilio_media_stream),
        *page_routes(),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
