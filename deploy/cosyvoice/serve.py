"""Run CosyVoice's bundled FastAPI or gRPC server as it is, its model wrapped for zero-shot voices.

Runs on the GPU host, in the official CosyVoice checkout's environment (Python 3.10, torch).
Matched to FunAudioLLM/CosyVoice at ace7c47f41bb: ``runtime/python/fastapi/server.py`` and
``runtime/python/grpc/server.py`` hand the model the prompt recording as a 16 kHz tensor,
while ``cosyvoice/cli/frontend.py`` (since commit 622a3a1, "use wav file rather than
tensor") loads the prompt from a file, so their zero-shot, cross-lingual and instruct2
routes fail at that revision. This launcher imports the bundled server module as it is and
gives it the model behind ``PromptFileModel``, which

- writes a tensor prompt to a WAV file once (named by its content) and registers it with
  ``add_zero_shot_spk``, then synthesizes with that ``zero_shot_spk_id``: a voice's prompt
  features are extracted once, not on every request (one request per text segment);
- with ``--stream``, passes ``stream=True``, so a request's audio flows in hops of 1 s
  and more instead of arriving once its whole text is synthesized; and resets the model's
  ``token_hop_len`` before each request (upstream grows it to 4 s and never resets it,
  upstream PR #1849), so every request's first hop is 1 s again.

The wire contract (routes, fields, raw int16 PCM at the model's rate) stays upstream's.
Usage, from the CosyVoice checkout (see README.md beside this file):

    python serve.py --transport http --port 50000 --model_dir pretrained_models/Fun-CosyVoice3-0.5B
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import threading
from concurrent import futures
from typing import Any

log = logging.getLogger("cosyvoice-serve")
PROMPT_RATE = 16_000


class PromptFileModel:
    """Upstream's CosyVoice2/3 object taking prompts as tensors or files, features cached."""

    def __init__(self, model: Any, prompt_dir: str, *, stream: bool) -> None:
        self._model = model
        self._prompt_dir = prompt_dir
        self._stream = stream
        self._lock = threading.Lock()
        self._speakers: set[str] = set()
        self._first_hop = getattr(getattr(model, "model", None), "token_hop_len", None)
        self.sample_rate = model.sample_rate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def _fresh_stream(self) -> None:
        if self._stream and self._first_hop is not None:
            self._model.model.token_hop_len = self._first_hop

    def inference_sft(self, tts_text: Any, spk_id: str, stream: bool = False, **kwargs: Any) -> Any:
        self._fresh_stream()
        return self._model.inference_sft(tts_text, spk_id, stream=stream or self._stream, **kwargs)

    def inference_zero_shot(
        self,
        tts_text: Any,
        prompt_text: str,
        prompt_wav: Any,
        zero_shot_spk_id: str = "",
        stream: bool = False,
        **kwargs: Any,
    ) -> Any:
        speaker = zero_shot_spk_id or self._register(prompt_text, prompt_wav, "zs")
        self._fresh_stream()
        return self._model.inference_zero_shot(
            tts_text,
            prompt_text,
            "",
            zero_shot_spk_id=speaker,
            stream=stream or self._stream,
            **kwargs,
        )

    def inference_cross_lingual(
        self,
        tts_text: Any,
        prompt_wav: Any,
        zero_shot_spk_id: str = "",
        stream: bool = False,
        **kwargs: Any,
    ) -> Any:
        speaker = zero_shot_spk_id or self._register("", prompt_wav, "xl")
        self._fresh_stream()
        return self._model.inference_cross_lingual(
            tts_text, "", zero_shot_spk_id=speaker, stream=stream or self._stream, **kwargs
        )

    def inference_instruct2(
        self,
        tts_text: Any,
        instruct_text: str,
        prompt_wav: Any,
        stream: bool = False,
        **kwargs: Any,
    ) -> Any:
        # A registered speaker would drop the instruct text, so the prompt goes as a file.
        self._fresh_stream()
        return self._model.inference_instruct2(
            tts_text,
            instruct_text,
            self._prompt_file(prompt_wav),
            stream=stream or self._stream,
            **kwargs,
        )

    def _register(self, prompt_text: str, prompt_wav: Any, kind: str) -> str:
        path = self._prompt_file(prompt_wav)
        digest = hashlib.sha256(f"{kind}\0{prompt_text}\0{path}".encode()).hexdigest()[:16]
        speaker = f"{kind}-{digest}"
        with self._lock:
            if speaker not in self._speakers:
                log.info("registering prompt %s as zero-shot speaker %s", path, speaker)
                self._model.add_zero_shot_spk(prompt_text, path, speaker)
                self._speakers.add(speaker)
        return speaker

    def _prompt_file(self, prompt_wav: Any) -> str:
        """A WAV file holding the prompt: a path stays, a 16 kHz tensor is written once."""
        if isinstance(prompt_wav, str | os.PathLike):
            return os.fspath(prompt_wav)
        import soundfile  # in CosyVoice's requirements

        samples = prompt_wav.detach().cpu().float().numpy().reshape(-1)
        name = hashlib.sha256(samples.tobytes()).hexdigest()[:24] + ".wav"
        path = os.path.join(self._prompt_dir, name)
        with self._lock:
            if not os.path.exists(path):
                soundfile.write(path + ".tmp.wav", samples, PROMPT_RATE, subtype="PCM_16")
                os.replace(path + ".tmp.wav", path)
        return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=("http", "grpc"), default="http")
    parser.add_argument("--port", type=int, default=50000)
    parser.add_argument("--model_dir", required=True, help="a local CosyVoice 2/3 model directory")
    parser.add_argument("--cosyvoice_root", default=os.environ.get("COSYVOICE_ROOT", os.getcwd()))
    parser.add_argument(
        "--prompt_dir", default=os.environ.get("COSYVOICE_PROMPT_DIR", "/tmp/cosyvoice-prompts")
    )
    parser.add_argument("--max_conc", type=int, default=4, help="gRPC: concurrent calls")
    parser.add_argument("--stream", action="store_true", help="synthesize with stream=True")
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--trt", action="store_true", help="TensorRT flow decoder")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    if not os.path.isdir(args.model_dir):
        # AutoModel would download from ModelScope instead; fetching is a separate, explicit step.
        parser.error(f"{args.model_dir} does not exist: fetch the model first (fetch_model.py)")
    root = os.path.abspath(args.cosyvoice_root)
    sys.path[:0] = [root, os.path.join(root, "third_party", "Matcha-TTS")]
    from cosyvoice.cli.cosyvoice import AutoModel

    os.makedirs(args.prompt_dir, exist_ok=True)
    model = PromptFileModel(
        AutoModel(model_dir=args.model_dir, fp16=args.fp16, load_trt=args.trt),
        args.prompt_dir,
        stream=args.stream,
    )
    log.info("model loaded: %s at %d Hz", type(model._model).__name__, model.sample_rate)
    if args.transport == "http":
        return serve_http(root, model, args.port)
    return serve_grpc(root, model, args.port, args.max_conc)


def serve_http(root: str, model: PromptFileModel, port: int) -> int:
    import uvicorn

    sys.path.insert(0, os.path.join(root, "runtime", "python", "fastapi"))
    import server  # upstream's FastAPI app; its handlers use the module's global `cosyvoice`

    server.cosyvoice = model
    uvicorn.run(server.app, host="0.0.0.0", port=port)
    return 0


def serve_grpc(root: str, model: PromptFileModel, port: int, max_conc: int) -> int:
    import grpc

    # The Dockerfile generates the stubs there, as upstream's runtime/python/Dockerfile does.
    sys.path.insert(0, os.path.join(root, "runtime", "python", "grpc"))
    import cosyvoice_pb2_grpc
    import server

    # Skip the servicer's __init__, which would load a second model without the adapter.
    servicer = server.CosyVoiceServiceImpl.__new__(server.CosyVoiceServiceImpl)
    servicer.cosyvoice = model
    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_conc), maximum_concurrent_rpcs=max_conc
    )
    cosyvoice_pb2_grpc.add_CosyVoiceServicer_to_server(servicer, grpc_server)
    grpc_server.add_insecure_port(f"0.0.0.0:{port}")
    grpc_server.start()
    log.info("gRPC server listening on 0.0.0.0:%d", port)
    grpc_server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
