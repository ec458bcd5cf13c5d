"""Telemetry the service emits besides its Prometheus metrics: OpenTelemetry traces."""
