"""Audio front end: PCM, resampling, framing, log-mel, and the engine's audio-token arithmetic."""

ENGINE_SAMPLE_RATE = 16_000
"""Every engine-facing audio buffer (VAD, ASR, Step-Audio's encoder) is mono int16 at 16 kHz."""
