"""The service's endpoints from the URL the user gives, and the transports by name."""

from __future__ import annotations

import pytest

from realtime.bench.transports import (
    WebRtcTransport,
    WebSocketTransport,
    build_transport,
    service_endpoints,
)


def test_a_websocket_url_gives_the_health_and_webrtc_endpoints_beside_it() -> None:
    endpoints = service_endpoints("ws://127.0.0.1:8080/v1/realtime")

    assert endpoints.websocket == "ws://127.0.0.1:8080/v1/realtime"
    assert endpoints.http_base == "http://127.0.0.1:8080"
    assert endpoints.healthz == "http://127.0.0.1:8080/healthz"
    assert endpoints.calls == "http://127.0.0.1:8080/v1/realtime/calls"
    assert endpoints.loopback


def test_a_secure_url_under_a_path_prefix_keeps_both() -> None:
    endpoints = service_endpoints("wss://voice.example.org/gateway/v1/realtime/")

    assert endpoints.websocket == "wss://voice.example.org/gateway/v1/realtime"
    assert endpoints.healthz == "https://voice.example.org/gateway/healthz"
    assert endpoints.calls == "https://voice.example.org/gateway/v1/realtime/calls"
    assert not endpoints.loopback


def test_an_http_base_or_a_bare_host_and_port_is_accepted() -> None:
    assert service_endpoints("http://10.0.0.5:9000").websocket == "ws://10.0.0.5:9000/v1/realtime"
    assert service_endpoints("localhost:8080").healthz == "http://localhost:8080/healthz"


@pytest.mark.parametrize("url", ["ftp://example.org/v1/realtime", "ws:///v1/realtime"])
def test_a_url_that_is_not_a_service_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not a ws:// or http:// URL"):
        service_endpoints(url)


def test_transports_are_built_by_name() -> None:
    assert isinstance(build_transport("websocket"), WebSocketTransport)
    webrtc = build_transport("webrtc", allow_loopback=True)
    assert isinstance(webrtc, WebRtcTransport) and webrtc.allow_loopback
    with pytest.raises(ValueError, match="unknown transport"):
        build_transport("carrier-pigeon")
