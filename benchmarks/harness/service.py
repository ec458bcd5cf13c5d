"""Run the real service (``python -m realtime serve``) on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

from benchmarks.harness.ports import free_port


class ServiceProcess:
    """The service in a subprocess of its own (its own event loop, uvloop, as in production)."""

    def __init__(
        self,
        *serve_args: str,
        log_path: Path,
        env: dict[str, str] | None = None,
        launcher: Sequence[str] = (),
    ) -> None:
        """``launcher`` goes before the Python command (``("taskset", "-c", "0")`` pins the
        service and every thread it makes to core 0)."""
        self.port = free_port()
        self.serve_args = serve_args
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.launcher = tuple(launcher)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "the service is not running"
        return self._process.pid

    @property
    def exit_code(self) -> int | None:
        """The service's exit status if it has exited on its own; None while it runs."""
        return self._process.poll() if self._process is not None else None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    def start(self, timeout_s: float = 60.0) -> ServiceProcess:
        command = [*self.launcher, sys.executable, "-m", "realtime", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), *self.serve_args]
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"service exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.http_url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"service not healthy within {timeout_s} s:\n{self.log()}")

    def metrics(self, timeout_s: float = 5.0) -> str:
        return httpx.get(f"{self.http_url}/metrics", timeout=timeout_s).text

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def send_signal(self, sig: int) -> None:
        assert self._process is not None, "the service is not running"
        self._process.send_signal(sig)

    def wait(self, timeout_s: float) -> int:
        """The service's exit status, once it has exited (``TimeoutExpired`` after
        ``timeout_s``)."""
        assert self._process is not None, "the service is not running"
        return self._process.wait(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout_s)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
