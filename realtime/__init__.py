"""Real-time speech-to-speech service for Step-Audio-R1: server, sessions, engines, SDK."""

__version__ = "0.1.0"
