"""Fetch a CosyVoice model into a local directory once, with the hub clients CosyVoice uses.

Runs on the GPU host in the CosyVoice environment (``modelscope`` is in its requirements;
``huggingface_hub`` comes with ``transformers``). The service itself never downloads: its
launcher refuses a missing model directory.

    python fetch_model.py FunAudioLLM/Fun-CosyVoice3-0.5B-2512 /models/Fun-CosyVoice3-0.5B
    python fetch_model.py --hub huggingface FunAudioLLM/CosyVoice2-0.5B /models/CosyVoice2-0.5B
"""

from __future__ import annotations

import argparse
import os
import sys

MARKERS = ("cosyvoice2.yaml", "cosyvoice3.yaml", "cosyvoice.yaml")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "model", help="e.g. FunAudioLLM/Fun-CosyVoice3-0.5B-2512, iic/CosyVoice2-0.5B"
    )
    parser.add_argument("local_dir")
    parser.add_argument("--hub", choices=("modelscope", "huggingface"), default="modelscope")
    args = parser.parse_args()
    if any(os.path.isfile(os.path.join(args.local_dir, marker)) for marker in MARKERS):
        print(f"{args.local_dir} already holds a CosyVoice model")
        return 0
    if args.hub == "modelscope":
        from modelscope import snapshot_download
    else:
        from huggingface_hub import snapshot_download
    snapshot_download(args.model, local_dir=args.local_dir)
    if not any(os.path.isfile(os.path.join(args.local_dir, marker)) for marker in MARKERS):
        print(f"{args.model} did not give a CosyVoice model in {args.local_dir}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
