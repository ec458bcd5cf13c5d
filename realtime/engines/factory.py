"""Choose and build the engine backend named on the command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from realtime.engines.base import Engine, EngineCapabilities
from realtime.engines.echo import DEFAULT_EMPTY_REPLY, DEFAULT_REPLY, EchoEngine
from realtime.engines.pocketsphinx_asr import PocketsphinxTranscriber
from realtime.engines.sim import SimEngine, SimParams
from realtime.engines.vllm.engine import VllmEngine
from realtime.engines.vllm.options import VllmOptions

EngineName = Literal["echo", "sim", "vllm"]
ENGINE_NAMES: tuple[str, ...] = ("echo", "sim", "vllm")


@dataclass(frozen=True)
class EngineOptions:
    name: EngineName = "echo"
    echo_reply: str = DEFAULT_REPLY
    echo_empty_reply: str = DEFAULT_EMPTY_REPLY
    asr_workers: int = 1
    sim: SimParams = field(default_factory=SimParams)
    vllm: VllmOptions | None = None


_ENGINE_CLASSES: dict[str, type[EchoEngine] | type[SimEngine] | type[VllmEngine]] = {
    "echo": EchoEngine,
    "sim": SimEngine,
    "vllm": VllmEngine,
}


def engine_capabilities(name: str) -> EngineCapabilities:
    """What the engine called ``name`` declares it can do (without building it)."""
    engine_class = _ENGINE_CLASSES.get(name)
    if engine_class is None:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
    return engine_class.capabilities


def build_engine(options: EngineOptions) -> Engine:
    if options.name == "echo":
        return EchoEngine(
            PocketsphinxTranscriber(workers=options.asr_workers),
            reply=options.echo_reply,
            empty_reply=options.echo_empty_reply,
        )
    if options.name == "sim":
        return SimEngine(options.sim)
    if options.name == "vllm":
        if options.vllm is None:
            raise ValueError("the vllm engine needs VllmOptions (at least one --engine-url)")
        return VllmEngine(options.vllm)
    raise ValueError(f"unknown engine {options.name!r}; choose one of {', '.join(ENGINE_NAMES)}")
