"""What the benchmarks share, outside ``tests/``: the service launcher, free ports, synthesized
speech, percentiles, Prometheus scraping, /proc sampling, the stand-in model and its vLLM server.

Tests may import this package; it never imports ``tests``.
"""
