"""The ``serve`` command-line options that configure CosyVoice, and the options object they give."""

from __future__ import annotations

import argparse
from pathlib import Path

from tts.cosyvoice_factory import CosyVoiceOptions
from tts.cosyvoice_voices import PromptVoice


def add_cosyvoice_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "CosyVoice (--tts cosyvoice)",
        "Where CosyVoice runs (one of --cosyvoice-url, --cosyvoice-grpc, --cosyvoice-model-dir) "
        "and its voices. See deploy/cosyvoice/README.md.",
    )
    group.add_argument(
        "--cosyvoice-url", metavar="URL",
        help="CosyVoice's bundled FastAPI server, e.g. http://cosyvoice:50000",
    )  # fmt: skip
    group.add_argument(
        "--cosyvoice-grpc", metavar="HOST:PORT",
        help="CosyVoice's bundled gRPC server (needs the cosyvoice-grpc extra)",
    )  # fmt: skip
    group.add_argument(
        "--cosyvoice-model-dir", type=Path, metavar="DIR",
        help="run a local CosyVoice 2/3 model in this process (GPU host; the official "
        "CosyVoice repository on PYTHONPATH)",
    )  # fmt: skip
    group.add_argument(
        "--cosyvoice-voice", metavar="NAME",
        help="default voice: a --cosyvoice-prompt-voice name or a built-in speaker id",
    )  # fmt: skip
    group.add_argument(
        "--cosyvoice-prompt-voice", nargs=3, action="append", default=[],
        metavar=("NAME", "WAV", "TEXT"),
        help="a zero-shot voice: a 3-10 s recording and the words spoken in it (an empty "
        "TEXT makes it cross-lingual, remote servers only); repeatable",
    )  # fmt: skip
    group.add_argument(
        "--cosyvoice-speaker", action="append", default=[], metavar="ID",
        help="a built-in speaker id sessions may choose as their voice; repeatable",
    )  # fmt: skip
    group.add_argument(
        "--cosyvoice-version", type=int, choices=(2, 3), default=CosyVoiceOptions.version,
        help="the remote server's model: CosyVoice 3 prompts get <|endofprompt|> "
        "(default: %(default)s)",
    )  # fmt: skip
    group.add_argument(
        "--cosyvoice-rate", type=int, default=CosyVoiceOptions.sample_rate,
        help="the remote server's sample rate: 24000 for CosyVoice 2/3, 22050 for "
        "CosyVoice 1 (default: %(default)s)",
    )  # fmt: skip
    group.add_argument("--cosyvoice-fp16", action="store_true", help="in-process: half precision")
    group.add_argument(
        "--cosyvoice-trt", action="store_true",
        help="in-process: TensorRT flow decoder (built on first load)",
    )  # fmt: skip


def cosyvoice_options_from(args: argparse.Namespace) -> CosyVoiceOptions:
    prompt_voices = tuple(
        PromptVoice(name, Path(wav), text or None)
        for name, wav, text in args.cosyvoice_prompt_voice
    )
    return CosyVoiceOptions(
        url=args.cosyvoice_url,
        grpc_target=args.cosyvoice_grpc,
        model_dir=args.cosyvoice_model_dir,
        voice=args.cosyvoice_voice,
        prompt_voices=prompt_voices,
        speakers=tuple(args.cosyvoice_speaker),
        version=args.cosyvoice_version,
        sample_rate=args.cosyvoice_rate,
        fp16=args.cosyvoice_fp16,
        load_trt=args.cosyvoice_trt,
    )
