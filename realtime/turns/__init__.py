"""Voice activity detection (silero-vad on ONNX, batched across sessions) and turn-taking."""
