"""Free 127.0.0.1 ports for the services the tests start, never the same one to two processes.

Asking the kernel for a free port and handing it to a subprocess leaves a gap in which the
port is free again; with the suite's workers (pytest-xdist) and other test runs on the same
machine, a second process may be handed the same port in that gap. So each port handed out
is also claimed with a file created exclusively under the machine's temporary directory,
naming the claiming process: a port with a live claim is never handed out again, and a claim
whose process has exited lapses (its file is removed when found old enough).
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from pathlib import Path

_CLAIMS = Path(tempfile.gettempdir()) / "step-realtime-test-ports"
_STALE_AFTER_S = 3600.0
_ATTEMPTS = 200


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now and claimed by no other live process."""
    _CLAIMS.mkdir(exist_ok=True)
    for _ in range(_ATTEMPTS):
        with socket.socket() as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if _claim(port):
            return port
    raise RuntimeError(f"no unclaimed free port after {_ATTEMPTS} tries (see {_CLAIMS})")


def _claim(port: int) -> bool:
    path = _CLAIMS / str(port)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        _forget_if_lapsed(path)
        return False  # taken, or lapsed: either way, try another port
    with os.fdopen(fd, "w") as claim:
        claim.write(str(os.getpid()))
    return True


def _forget_if_lapsed(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        if time.time() - path.stat().st_mtime < _STALE_AFTER_S:
            return
        owner = int(path.read_text() or "0")
        if owner and _alive(owner):
            return
        path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
