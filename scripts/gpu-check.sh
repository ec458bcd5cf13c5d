#!/usr/bin/env bash
# Prepared GPU check (benchmarks/gpu_check.py): Step-Audio-R1's shapes on vLLM with dummy
# weights, measured, written as a sim profile. No GPU has been lent to run it yet; --dry-run
# runs the same flow on CPU. Usage: scripts/gpu-check.sh [--dry-run] [--out DIR] [...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec .venv/bin/python benchmarks/gpu_check.py "$@"
