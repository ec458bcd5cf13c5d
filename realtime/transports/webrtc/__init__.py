"""The WebRTC transport: SDP offer/answer over HTTP, Opus audio, events on ``oai-events``."""
