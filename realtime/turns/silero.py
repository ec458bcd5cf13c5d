"""The silero-vad ONNX model from the installed ``silero-vad`` wheel, run with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime

from realtime.turns.packaged_models import packaged_file

SILERO_SAMPLE_RATE = 16_000
SILERO_CHUNK_SAMPLES = 512
"""Samples per model call at 16 kHz (32 ms)."""
SILERO_CONTEXT_SAMPLES = 64
"""Samples of the previous chunk that silero v5/v6 prepend to each chunk (see its OnnxWrapper)."""
SILERO_STATE_SIZE = 128

_MODEL_FILE = ("data", "silero_vad.onnx")
_NOT_INSTALLED = "silero-vad is not installed: pip install --no-deps silero-vad"


def silero_model_path() -> Path:
    """Path of ``silero_vad/data/silero_vad.onnx`` in the installed wheel.

    Found through the import system's metadata only: importing ``silero_vad`` itself would
    import torch, which the server must never load.
    """
    return packaged_file("silero_vad", _MODEL_FILE, _NOT_INSTALLED)


class SileroVadModel:
    """One onnxruntime session of silero-vad; ``infer`` is synchronous and thread-safe.

    The model is stateless between calls: the caller keeps each stream's LSTM state and
    64-sample context, which is what lets one call serve a batch of unrelated streams.
    """

    def __init__(self, path: Path | None = None, intra_op_threads: int = 1) -> None:
        self.path = path if path is not None else silero_model_path()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        self._session = onnxruntime.InferenceSession(
            str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._sample_rate = np.array(SILERO_SAMPLE_RATE, dtype=np.int64)

    @staticmethod
    def initial_states(batch: int) -> npt.NDArray[np.float32]:
        """Zero LSTM states for ``batch`` streams, shaped ``[2, batch, 128]``."""
        return np.zeros((2, batch, SILERO_STATE_SIZE), dtype=np.float32)

    def infer(
        self,
        chunks: npt.NDArray[np.float32],
        contexts: npt.NDArray[np.float32],
        states: npt.NDArray[np.float32],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Speech probabilities ``[B]`` and new states ``[2, B, 128]`` for ``B`` streams.

        ``chunks`` is ``[B, 512]`` float32 in [-1, 1], ``contexts`` ``[B, 64]`` (the last 64
        samples of each stream's previous chunk, zeros at the start), ``states`` ``[2, B, 128]``.
        The next context of each stream is ``chunks[:, -64:]``.
        """
        batch = chunks.shape[0]
        if chunks.shape != (batch, SILERO_CHUNK_SAMPLES):
            raise ValueError(f"chunks must be [B, {SILERO_CHUNK_SAMPLES}], got {chunks.shape}")
        if contexts.shape != (batch, SILERO_CONTEXT_SAMPLES):
            raise ValueError(
                f"contexts must be [{batch}, {SILERO_CONTEXT_SAMPLES}], got {contexts.shape}"
            )
        if states.shape != (2, batch, SILERO_STATE_SIZE):
            raise ValueError(
                f"states must be [2, {batch}, {SILERO_STATE_SIZE}], got {states.shape}"
            )
        model_input = np.concatenate([contexts, chunks], axis=1).astype(np.float32, copy=False)
        output, new_states = self._session.run(
            ["output", "stateN"],
            {
                "input": model_input,
                "state": np.ascontiguousarray(states, dtype=np.float32),
                "sr": self._sample_rate,
            },
        )
        probabilities = np.asarray(output, dtype=np.float32).reshape(batch)
        return probabilities, np.asarray(new_states, dtype=np.float32)
