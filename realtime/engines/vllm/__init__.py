"""The ``vllm`` engine: Step-Audio-R1 served by vLLM's OpenAI-compatible chat completions API."""
