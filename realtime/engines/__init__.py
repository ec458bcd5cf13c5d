"""Reasoning engines: the interface the session talks to, and its backends (echo, vllm, sim)."""
