"""A WebRTC caller that connects, says so on stdout, and waits to be killed (a closed tab).

Run: python -m tests.realtime.transports.vanishing_caller BASE_URL
"""

from __future__ import annotations

import asyncio
import sys

from realtime.client.webrtc import RealtimeWebRtcClient


async def main(base_url: str) -> None:
    client = await RealtimeWebRtcClient.connect(base_url, allow_loopback=True, open_timeout=20)
    print(f"connected {client.call_id}", flush=True)
    await asyncio.sleep(120)  # killed long before this


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
