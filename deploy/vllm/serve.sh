#!/usr/bin/env bash
# Serve Step-Audio-R1 (or R1.1) with StepFun's vLLM build on one 4-GPU host.
# Inside StepFun's image (stepfun2025/vllm:step-audio-2-v20250909) or a checkout of
# StepFun's vLLM fork (branch step-audio2-mini or feat/step-audio-support); every flag is explained in deploy/README.md.
#
#   MODEL_DIR=/models/Step-Audio-R1 deploy/vllm/serve.sh
set -euo pipefail

MODEL_DIR="${MODEL_DIR:?set MODEL_DIR to the downloaded stepfun-ai/Step-Audio-R1 directory}"
SERVED_MODEL_NAME="${SERVED_MODEL_NAME:-Step-Audio-R1}"
PORT="${PORT:-9999}"
TENSOR_PARALLEL_SIZE="${TENSOR_PARALLEL_SIZE:-4}"
GPU_MEMORY_UTILIZATION="${GPU_MEMORY_UTILIZATION:-0.85}"
CHAT_TEMPLATE="${CHAT_TEMPLATE:-$(cd "$(dirname "$0")" && pwd)/step_audio_r1_chat_template.jinja}"

exec vllm serve "$MODEL_DIR" \
    --served-model-name "$SERVED_MODEL_NAME" \
    --host 0.0.0.0 \
    --port "$PORT" \
    --tensor-parallel-size "$TENSOR_PARALLEL_SIZE" \
    --max-model-len 16384 \
    --max-num-seqs 32 \
    --gpu-memory-utilization "$GPU_MEMORY_UTILIZATION" \
    --trust-remote-code \
    --chat-template "$CHAT_TEMPLATE" \
    --chat-template-content-format openai \
    --interleave-mm-strings \
    --limit-mm-per-prompt '{"audio": 999}' \
    --enable-prefix-caching \
    --enable-prompt-tokens-details \
    "$@"
