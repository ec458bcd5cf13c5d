"""Build and tear down what all sessions of one service share, from the service's options."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from realtime.engines.factory import EngineOptions, build_engine
from realtime.session.services import SessionServices, SessionSettings
from realtime.speaking.factory import build_policies
from realtime.telemetry.metrics import ServiceMetrics
from realtime.telemetry.tracing import Tracing, TracingOptions, tracer_provider
from realtime.transports.webrtc.options import WebRtcOptions
from realtime.turns.silero import SileroVadModel
from realtime.turns.smart_turn import SmartTurnBatcher, SmartTurnModel
from realtime.turns.vad import VadBatcher
from tts.factory import TtsOptions, build_tts


@dataclass(frozen=True)
class ServiceOptions:
    engine: EngineOptions = field(default_factory=EngineOptions)
    tts: TtsOptions = field(default_factory=TtsOptions)
    session: SessionSettings = field(default_factory=SessionSettings)
    webrtc: WebRtcOptions = field(default_factory=WebRtcOptions)
    tracing: TracingOptions = field(default_factory=TracingOptions)


@contextlib.asynccontextmanager
async def open_services(options: ServiceOptions) -> AsyncIterator[SessionServices]:
    async with contextlib.AsyncExitStack() as stack:
        engine = build_engine(options.engine)
        metrics = ServiceMetrics(engine.info.name, engine.info.simulated)
        metrics.watch_engine(engine.load_report)
        await engine.start()
        stack.push_async_callback(engine.aclose)
        tts = build_tts(options.tts)
        stack.push_async_callback(tts.aclose)
        vad = VadBatcher(SileroVadModel(), observe_call=metrics.vad_batch_size.observe)
        await vad.start()
        stack.push_async_callback(vad.aclose)
        smart_turn = SmartTurnBatcher(SmartTurnModel(), observe_call=metrics.observe_smart_turn)
        await smart_turn.start()
        stack.push_async_callback(smart_turn.aclose)
        tracing = Tracing(tracer_provider(options.tracing))
        # The last spans are flushed to the collector on the way out, off the event loop.
        stack.push_async_callback(asyncio.to_thread, tracing.shutdown)
        yield SessionServices(
            engine=engine,
            tts=tts,
            vad=vad,
            turn_scorer=smart_turn,
            policies=build_policies(engine.capabilities),
            metrics=metrics,
            settings=options.session,
            tracing=tracing,
        )
