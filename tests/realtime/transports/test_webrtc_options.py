"""ICE server descriptions (command line, aiortc, browser) and the serve command's WebRTC flags."""

from __future__ import annotations

import pytest

from realtime.cli import build_parser
from realtime.transports.webrtc.options import WebRtcOptions
from realtime.webrtc_media.ice import IceServer, IceServerError


def test_a_stun_server_needs_no_credentials() -> None:
    server = IceServer.parse("stun:stun.example.org:3478")
    assert server == IceServer("stun:stun.example.org:3478")
    assert server.for_browser() == {"urls": ["stun:stun.example.org:3478"]}


def test_a_turn_server_carries_its_username_and_credential() -> None:
    server = IceServer.parse(
        "turn:turn.example.org:3478?transport=udp,username=alice,credential=s3"
    )
    assert server.for_browser() == {
        "urls": ["turn:turn.example.org:3478?transport=udp"],
        "username": "alice",
        "credential": "s3",
    }
    aiortc_server = server.for_aiortc()
    assert (aiortc_server.username, aiortc_server.credential) == ("alice", "s3")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("turn:turn.example.org", "username"),
        ("http://example.org", "bad ICE server URL"),
        ("stun:stun.example.org,password=x", "password=x"),
    ],
)
def test_unusable_ice_servers_are_refused_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(IceServerError, match=says):
        IceServer.parse(text)


def test_no_stun_server_is_used_unless_configured() -> None:
    assert WebRtcOptions().rtc_configuration().iceServers == []
    assert WebRtcOptions().browser_ice_servers() == []


def test_serve_takes_repeatable_ice_servers_and_the_loopback_flag() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--ice-server", "stun:stun.example.org",
            "--ice-server", "turn:turn.example.org,username=u,credential=c",
            "--webrtc-allow-loopback",
        ]
    )  # fmt: skip
    assert [server.url for server in args.ice_server] == [
        "stun:stun.example.org",
        "turn:turn.example.org",
    ]
    assert args.webrtc_allow_loopback is True
    assert build_parser().parse_args(["serve"]).webrtc_allow_loopback is False


def test_serve_rejects_a_turn_server_without_credentials(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--ice-server", "turn:turn.example.org"])
    assert "needs a username and a credential" in capsys.readouterr().err
