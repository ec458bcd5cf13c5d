"""Try a WebRTC call on a host whose only interface is loopback, with and without loopback ICE
candidates on the service; prints one JSON object {"without": bool, "with": bool} (connected?).

Run inside a fresh network namespace with only ``lo`` up (see test_webrtc.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from benchmarks.harness.service import ServiceProcess
from realtime.client.errors import RealtimeConnectionError
from realtime.client.webrtc import RealtimeWebRtcClient

OPEN_TIMEOUT_S = 8.0


async def connects(*serve_args: str, log_path: Path) -> bool:
    with ServiceProcess(*serve_args, log_path=log_path) as service:
        try:
            client = await RealtimeWebRtcClient.connect(
                service.http_url, allow_loopback=True, open_timeout=OPEN_TIMEOUT_S
            )
        except RealtimeConnectionError as exc:
            print(f"no call: {exc}", file=sys.stderr)
            return False
        await client.close()
        return True


async def main() -> None:
    logs = Path(tempfile.mkdtemp(prefix="loopback-only-"))
    without = await connects(log_path=logs / "without.log")
    with_loopback = await connects("--webrtc-allow-loopback", log_path=logs / "with.log")
    print(json.dumps({"without": without, "with": with_loopback}))


if __name__ == "__main__":
    asyncio.run(main())
