"""The silero-vad ONNX model as shipped in the silero-vad wheel, without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from realtime.turns.silero import (
    SILERO_CHUNK_SAMPLES,
    SILERO_CONTEXT_SAMPLES,
    SileroVadModel,
    silero_model_path,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


def _chunk_with_context(pcm: np.ndarray, chunk_index: int) -> tuple[np.ndarray, np.ndarray]:
    audio = pcm.astype(np.float32) / 32768.0
    start = chunk_index * SILERO_CHUNK_SAMPLES
    chunk = audio[start : start + SILERO_CHUNK_SAMPLES]
    context = audio[start - SILERO_CONTEXT_SAMPLES : start]
    return chunk, context


def test_model_path_is_the_onnx_file_inside_the_installed_wheel() -> None:
    path = silero_model_path()
    assert path.name == "silero_vad.onnx"
    assert path.parent.name == "data"
    assert path.parent.parent.name == "silero_vad"
    assert path.stat().st_size > 100_000


def test_loading_the_model_imports_neither_silero_vad_nor_torch() -> None:
    probe = (
        "import sys\n"
        "from realtime.turns.silero import SileroVadModel\n"
        "SileroVadModel()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'silero_vad')))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert completed.stdout.strip() == "[]"


def test_speech_chunk_scores_higher_than_silence_after_a_few_chunks_of_state(
    silero_model: SileroVadModel, sentence_16k: np.ndarray
) -> None:
    # Run the first 40 chunks of speech and of silence side by side as a batch of two.
    states = SileroVadModel.initial_states(2)
    contexts = np.zeros((2, SILERO_CONTEXT_SAMPLES), dtype=np.float32)
    audio = sentence_16k.astype(np.float32) / 32768.0
    speech_probs, silence_probs = [], []
    for index in range(40):
        speech = audio[index * SILERO_CHUNK_SAMPLES : (index + 1) * SILERO_CHUNK_SAMPLES]
        chunks = np.stack([speech, np.zeros(SILERO_CHUNK_SAMPLES, dtype=np.float32)])
        probs, states = silero_model.infer(chunks, contexts, states)
        contexts = chunks[:, -SILERO_CONTEXT_SAMPLES:]
        speech_probs.append(probs[0])
        silence_probs.append(probs[1])
    assert max(speech_probs) > 0.9
    assert max(silence_probs) < 0.1


def test_batch_rows_are_independent(silero_model: SileroVadModel, sentence_16k: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    chunk_a, context_a = _chunk_with_context(sentence_16k, 20)
    chunk_b, context_b = _chunk_with_context(sentence_16k, 30)
    state_a = rng.normal(0, 0.5, (2, 1, 128)).astype(np.float32)
    state_b = rng.normal(0, 0.5, (2, 1, 128)).astype(np.float32)

    batched_probs, batched_states = silero_model.infer(
        np.stack([chunk_a, chunk_b]),
        np.stack([context_a, context_b]),
        np.concatenate([state_a, state_b], axis=1),
    )
    alone_a, new_state_a = silero_model.infer(chunk_a[None], context_a[None], state_a)
    alone_b, new_state_b = silero_model.infer(chunk_b[None], context_b[None], state_b)

    np.testing.assert_allclose(batched_probs, [alone_a[0], alone_b[0]], atol=1e-5)
    np.testing.assert_allclose(batched_states[:, :1], new_state_a, atol=1e-5)
    np.testing.assert_allclose(batched_states[:, 1:], new_state_b, atol=1e-5)
    assert not np.allclose(new_state_a, state_a)


def test_context_is_part_of_the_model_input(
    silero_model: SileroVadModel, sentence_16k: np.ndarray
) -> None:
    chunk, context = _chunk_with_context(sentence_16k, 20)
    state = SileroVadModel.initial_states(1)
    with_context, _ = silero_model.infer(chunk[None], context[None], state)
    without_context, _ = silero_model.infer(chunk[None], np.zeros_like(context)[None], state)
    assert abs(float(with_context[0]) - float(without_context[0])) > 1e-4


@pytest.mark.parametrize(
    ("chunk_shape", "context_shape", "state_shape"),
    [
        ((1, 480), (1, 64), (2, 1, 128)),
        ((1, 512), (1, 32), (2, 1, 128)),
        ((2, 512), (2, 64), (2, 1, 128)),
    ],
)
def test_infer_rejects_wrong_shapes(
    silero_model: SileroVadModel,
    chunk_shape: tuple[int, ...],
    context_shape: tuple[int, ...],
    state_shape: tuple[int, ...],
) -> None:
    with pytest.raises(ValueError):
        silero_model.infer(
            np.zeros(chunk_shape, np.float32),
            np.zeros(context_shape, np.float32),
            np.zeros(state_shape, np.float32),
        )
