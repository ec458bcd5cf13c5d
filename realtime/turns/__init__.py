"""Turn-taking: voice activity (silero-vad) and end-of-turn scores (Smart Turn), both ONNX
models batched across sessions off the event loop, and the turn detector."""
