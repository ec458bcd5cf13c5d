"""A private PulseAudio server with a null sink: the sound card a headless Firefox needs, since
its AudioContext only runs once an output stream is open."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

PULSEAUDIO = "/usr/bin/pulseaudio"
_START_TIMEOUT_S = 15.0


@contextlib.contextmanager
def null_sink_server(runtime_dir: Path, log_path: Path) -> Iterator[str]:
    """Run PulseAudio with one null sink, its socket under ``runtime_dir``; yields the value
    for a client's ``PULSE_SERVER``. Stopped on exit."""
    runtime_dir.mkdir(parents=True, exist_ok=True)
    socket_path = runtime_dir / "pulse" / "native"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir), "HOME": str(runtime_dir)}
    command = [
        PULSEAUDIO, "-n", "--daemonize=no", "--exit-idle-time=-1", "--disable-shm=yes",
        "--use-pid-file=no", "--log-target=stderr",
        "-L", "module-null-sink sink_name=speakers",
        "-L", "module-native-protocol-unix auth-anonymous=1",
    ]  # fmt: skip
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not socket_path.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PulseAudio did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield f"unix:{socket_path}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
