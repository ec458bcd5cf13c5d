"""Python SDK: an async client for the service's OpenAI-Realtime-compatible WebSocket API."""
