"""The CosyVoice launcher's model adapter (deploy/cosyvoice/serve.py) against a stand-in model."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

from tests.tts.cosyvoice_model_fake import CosyVoice3
from tests.tts.speech_code import decode_text
from tokenizer.pcm import float32_to_pcm16

SERVE = Path(__file__).resolve().parents[2] / "deploy" / "cosyvoice" / "serve.py"


def load_serve() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cosyvoice_serve", SERVE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_prompt_is_registered_once_and_requests_stream_from_a_fresh_first_hop(
    tmp_path: Path,
) -> None:
    serve = load_serve()
    model = CosyVoice3()
    adapter = serve.PromptFileModel(model, str(tmp_path), stream=True)
    prompt = str(tmp_path / "prompt.wav")
    texts = ["Hello there, my friend, how are you today?", "Fine, thanks for asking me that."]
    try:
        for text in texts:
            outputs = adapter.inference_zero_shot(text, "<|endofprompt|>Hi.", prompt)
            audio = [output["tts_speech"].numpy().reshape(-1) for output in outputs]
            assert decode_text(float32_to_pcm16(np.concatenate(audio))) == text
    finally:
        model.stopped.set()
    assert len(model.registered) == 1
    assert model.registered[0][:2] == ("<|endofprompt|>Hi.", prompt)
    assert [call.speaker for call in model.calls] == [model.registered[0][2]] * 2
    assert all(call.stream for call in model.calls)
    assert [call.hops[0] for call in model.calls] == [25, 25]
    assert adapter.sample_rate == 24_000
