"""Telemetry, below every layer that reports it: turn stage timings, Prometheus metrics, traces."""
