"""Stand-ins for upstream's ``CosyVoice2`` / ``CosyVoice3`` objects: same methods, same yield shape.

Modelled on FunAudioLLM/CosyVoice ace7c47f (``cosyvoice/cli/cosyvoice.py`` and
``cosyvoice/cli/model.py``): ``inference_*`` are generators; a ``tts_text`` that is a
``Generator`` is pulled by an "LLM" thread the call starts (one speech token per character
here, spelled into the audio by ``speech_code``); with ``stream=True`` the caller's thread
polls and yields ``{'tts_speech': tensor (1, n)}`` whenever ``model.token_hop_len`` tokens
(plus a lookahead of 3) are ready, growing the shared ``token_hop_len`` from 25 to 100 as
upstream does, then the rest once the LLM is done. An exception in the LLM thread is not
propagated, and the poll then never ends (as upstream). Closing the generator stops the
polling; the LLM thread runs on until its text ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.tts.speech_code import SAMPLES_PER_CHAR, encode_float

PRE_LOOKAHEAD = 3
FIRST_HOP = 25
MAX_HOP = 100


class FakeTensor:
    """What ``.cpu()`` gives upstream: something with ``.numpy()`` and a ``shape``."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._array.shape)

    def numpy(self) -> np.ndarray:
        return self._array


@dataclass
class InnerModel:
    token_hop_len: int = FIRST_HOP


@dataclass
class Call:
    method: str
    speaker: str
    stream: bool
    speed: float
    text_was_generator: bool
    hops: list[int] = field(default_factory=list)  # token_hop_len used for each hop
    consumed: str = ""  # the text the LLM thread took
    closed_early: bool = False
    llm_done: threading.Event = field(default_factory=threading.Event)


class FakeFrontend:
    """Upstream's text normalisation, reduced to something visible: digits are spelled out."""

    _DIGITS = "zero one two three four five six seven eight nine".split()

    def text_normalize(self, text: str, split: bool = True, text_frontend: bool = True) -> str:
        spelled = "".join(
            f" {self._DIGITS[int(char)]} " if char.isdigit() else char for char in text
        )
        return " ".join(spelled.split())


class FakeCosyVoice:
    sample_rate = 24_000

    def __init__(
        self,
        speakers: tuple[str, ...] = (),
        *,
        seconds_per_token: float = 0.0005,
        poll_s: float = 0.002,
    ) -> None:
        self.model = InnerModel()
        self.frontend = FakeFrontend()
        self.spk2info: dict[str, str] = {speaker: "" for speaker in speakers}
        self.seconds_per_token = seconds_per_token
        self.poll_s = poll_s
        self.calls: list[Call] = []
        self.registered: list[tuple[str, str, str]] = []
        self.fail_llm_after_tokens: int | None = None  # the LLM thread dies there
        self.raise_at_hop: int | None = None  # the polling thread raises at that hop
        self.llm_threads: list[threading.Thread] = []
        self.stopped = threading.Event()  # ends polls that would otherwise never end

    def list_available_spks(self) -> list[str]:
        return list(self.spk2info)

    def add_zero_shot_spk(self, prompt_text: str, prompt_wav: str, zero_shot_spk_id: str) -> bool:
        assert zero_shot_spk_id != ""
        self.registered.append((prompt_text, prompt_wav, zero_shot_spk_id))
        self.spk2info[zero_shot_spk_id] = prompt_text
        return True

    def inference_sft(
        self,
        tts_text: Any,
        spk_id: str,
        stream: bool = False,
        speed: float = 1.0,
        text_frontend: bool = True,
    ) -> Iterator[dict[str, Any]]:
        call = Call("sft", spk_id, stream, speed, isinstance(tts_text, Generator))
        self.calls.append(call)
        _ = self.spk2info[spk_id]  # KeyError for an unknown speaker, as upstream's frontend
        yield from self._tts(call, tts_text)

    def inference_zero_shot(
        self,
        tts_text: Any,
        prompt_text: str,
        prompt_wav: Any,
        zero_shot_spk_id: str = "",
        stream: bool = False,
        speed: float = 1.0,
        text_frontend: bool = True,
    ) -> Iterator[dict[str, Any]]:
        call = Call("zero_shot", zero_shot_spk_id, stream, speed, isinstance(tts_text, Generator))
        self.calls.append(call)
        _ = self.spk2info[zero_shot_spk_id]
        yield from self._tts(call, tts_text)

    def _check_prompt(self, call: Call) -> None:
        """CosyVoice 3's LLM asserts the end-of-prompt marker (in its own thread)."""

    def _tts(self, call: Call, text: Any) -> Iterator[dict[str, Any]]:
        tokens: list[str] = []
        lock = threading.Lock()

        def llm_job() -> None:
            self._check_prompt(call)
            pieces = text if call.text_was_generator else [text]
            for piece in pieces:
                call.consumed += piece
                for char in piece:
                    time.sleep(self.seconds_per_token)
                    with lock:
                        if (
                            self.fail_llm_after_tokens is not None
                            and len(tokens) >= self.fail_llm_after_tokens
                        ):
                            raise RuntimeError("the LLM thread died")
                        tokens.append(char)
            call.llm_done.set()

        thread = threading.Thread(target=llm_job, daemon=True)
        self.llm_threads.append(thread)
        thread.start()
        offset = 0
        try:
            if call.stream:
                while not self.stopped.is_set():
                    time.sleep(self.poll_s)
                    hop = self.model.token_hop_len
                    with lock:
                        ready = len(tokens) - offset >= hop + PRE_LOOKAHEAD
                        piece = "".join(tokens[offset : offset + hop]) if ready else ""
                    if ready:
                        if self.raise_at_hop == len(call.hops):
                            raise RuntimeError("CUDA out of memory")
                        call.hops.append(hop)
                        offset += hop
                        self.model.token_hop_len = min(MAX_HOP, hop * 2)
                        yield {"tts_speech": FakeTensor(encode_float(piece)[None, :])}
                    with lock:
                        rest = len(tokens) - offset
                    if call.llm_done.is_set() and rest < self.model.token_hop_len + PRE_LOOKAHEAD:
                        break
            else:
                while not call.llm_done.is_set() and not self.stopped.is_set():
                    time.sleep(self.poll_s)
            thread.join()
            with lock:
                piece = "".join(tokens[offset:])
            yield {"tts_speech": FakeTensor(encode_float(piece)[None, :])}
        except GeneratorExit:
            call.closed_early = True
            raise


class CosyVoice2(FakeCosyVoice):
    """Named as upstream's class: the backend tells versions apart by class name."""


class CosyVoice3(FakeCosyVoice):
    def _check_prompt(self, call: Call) -> None:
        prompt = self.spk2info.get(call.speaker, "")
        assert "<|endofprompt|>" in prompt, "<|endofprompt|> not detected in CosyVoice3 prompt_text"


class CosyVoice(FakeCosyVoice):
    """CosyVoice 1: no bi-streaming."""


def audio_seconds(text: str) -> float:
    return len(text) * SAMPLES_PER_CHAR / FakeCosyVoice.sample_rate
