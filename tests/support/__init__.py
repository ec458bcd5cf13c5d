"""Test support: a tiny Step-Audio-like stand-in model and a real vLLM CPU server around it."""
