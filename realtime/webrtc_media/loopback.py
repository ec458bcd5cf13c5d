"""Loopback (127.0.0.1) ICE host candidates, which aioice leaves out of its gathering.

aioice skips 127.0.0.1 when it lists host addresses, so two peers on a host whose only
interface is loopback find no candidate pair. ``gather_with_loopback`` gathers a peer
connection's candidates early and adds one loopback host candidate per ICE component;
``setLocalDescription`` then finds gathering complete and puts them in the SDP. This
reaches into aioice's ``Connection`` (its candidate and socket lists), which is why it
is an option used on single-host setups and in tests, off by default.
"""

from __future__ import annotations

import asyncio
import socket

from aioice import Candidate, Connection
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection
from aiortc.rtcicetransport import RTCIceGatherer

LOOPBACK_ADDRESS = "127.0.0.1"
# Below aioice's 65535 for real interfaces, so that those win when both work.
_LOOPBACK_LOCAL_PREFERENCE = 1000
_RECEIVE_BUFFER_BYTES = 1024 * 1024


def peer_gatherers(pc: RTCPeerConnection) -> list[RTCIceGatherer]:
    """The distinct ICE gatherers of the connection's transceivers and data channel."""
    gatherers: list[RTCIceGatherer] = []
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for dtls in transports:
        gatherer = dtls.transport.iceGatherer
        if all(gatherer is not known for known in gatherers):
            gatherers.append(gatherer)
    return gatherers


async def gather_with_loopback(pc: RTCPeerConnection) -> None:
    """Gather every transport's candidates now, adding a 127.0.0.1 host candidate to each.

    Call it after the transceivers and the data channel exist (after ``setRemoteDescription``
    on the answering side, after ``createOffer`` on the offering side) and before
    ``setLocalDescription``.
    """
    for gatherer in peer_gatherers(pc):
        if gatherer.state != "new":
            continue
        await gatherer.gather()
        connection: Connection = gatherer._connection
        for component in sorted({c.component for c in connection.local_candidates} or {1}):
            await _add_loopback_candidate(connection, component)


async def _add_loopback_candidate(connection: Connection, component: int) -> None:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: StunProtocol(connection), local_addr=(LOOPBACK_ADDRESS, 0)
    )
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER_BYTES)
    host, port = transport.get_extra_info("sockname")[:2]
    protocol.local_candidate = Candidate(
        foundation=candidate_foundation("host", "udp", host),
        component=component,
        transport="udp",
        priority=candidate_priority(component, "host", _LOOPBACK_LOCAL_PREFERENCE),
        host=host,
        port=port,
        type="host",
    )
    # aioice's own host candidates are kept in these two lists (see its
    # Connection.get_component_candidates); it pairs, checks and closes them from there.
    connection._protocols.append(protocol)
    connection._local_candidates.append(protocol.local_candidate)
