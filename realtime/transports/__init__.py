"""Transports carry the same JSON events and PCM audio over WebSocket or WebRTC."""
