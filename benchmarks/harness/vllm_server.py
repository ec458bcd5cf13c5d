"""Runs a real vLLM OpenAI-compatible server on 127.0.0.1 (CPU) as a managed test subprocess."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from benchmarks.harness.ports import free_port
from benchmarks.harness.prometheus import MetricsSnapshot

REPO_ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON_ENV = "STEP_VLLM_PYTHON"
SERVED_MODEL_NAME = "Step-Audio-R1"


def default_vllm_python() -> Path:
    """The vLLM venv's interpreter: `$STEP_VLLM_PYTHON`, else `<repo>/.venv-vllm/bin/python`."""
    configured = os.environ.get(VLLM_PYTHON_ENV)
    return Path(configured) if configured else REPO_ROOT / ".venv-vllm" / "bin" / "python"


class VllmServerError(RuntimeError):
    """The server did not start, or died; the message ends with the tail of its log."""


@dataclass(frozen=True)
class VllmServerConfig:
    """How to launch the server; the defaults mirror the real deployment where they apply on CPU."""

    model_dir: Path
    python: Path = field(default_factory=default_vllm_python)
    served_model_name: str = SERVED_MODEL_NAME
    chat_template: Path | None = None  # default: <model_dir>/chat_template.jinja
    max_model_len: int = 16_384
    max_num_seqs: int = 32
    enable_prefix_caching: bool = True
    kv_cache_space_gib: int = 1
    block_size: int | None = None  # vLLM's CPU default is 128 tokens (GPU: 16)
    host: str = "127.0.0.1"
    port: int | None = None  # default: a free port, kept across restarts
    startup_timeout_s: float = 300.0
    stop_timeout_s: float = 30.0
    log_path: Path | None = None  # default: <model_dir>/../vllm-<port>.log
    extra_args: tuple[str, ...] = ()
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # GPU: no CPU-only settings; tensor parallel over this many GPUs (benchmarks/gpu_check.py).
    gpu: bool = False
    tensor_parallel_size: int = 1

    def command(self, port: int) -> list[str]:
        template = self.chat_template or self.model_dir / "chat_template.jinja"
        args = [
            str(self.python),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_dir),
            "--served-model-name",
            self.served_model_name,
            "--host",
            self.host,
            "--port",
            str(port),
            "--max-model-len",
            str(self.max_model_len),
            "--max-num-seqs",
            str(self.max_num_seqs),
            "--chat-template",
            str(template),
            "--interleave-mm-strings",
            "--disable-uvicorn-access-log",
            "--enable-prefix-caching"
            if self.enable_prefix_caching
            else "--no-enable-prefix-caching",
        ]
        if self.gpu:
            args += ["--tensor-parallel-size", str(self.tensor_parallel_size)]
        else:
            # CPU-only settings: no graph capture or compilation, one in-process worker.
            args += ["--enforce-eager", "--distributed-executor-backend", "uni"]
        if self.block_size is not None:
            args += ["--block-size", str(self.block_size)]
        return [*args, *self.extra_args]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_space_gib),
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "VLLM_NO_USAGE_STATS": "1",
                "DO_NOT_TRACK": "1",
            }
        )
        env.update(self.extra_env)
        return env


class VllmServer:
    """A vLLM server process group; use as a (sync or async) context manager, or start()/stop()."""

    def __init__(self, config: VllmServerConfig) -> None:
        self.config = config
        self.port = config.port or free_port(config.host)
        self.log_path = config.log_path or config.model_dir.parent / f"vllm-{self.port}.log"
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._scratch_dir: Path | None = None

    @property
    def root_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, e.g. `http://127.0.0.1:8123/v1`."""
        return f"{self.root_url}/v1"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Launches the server and blocks until `/health` answers (bounded by startup_timeout_s)."""
        if self.is_running():
            raise VllmServerError("already running")
        if not self.config.python.is_file():
            raise VllmServerError(
                f"no vLLM interpreter at {self.config.python}: run scripts/setup-vllm-cpu.sh"
                f" or set {VLLM_PYTHON_ENV}"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # vLLM leaves files in $TMPDIR (e.g. its torch.distributed rendezvous file).
        self._scratch_dir = Path(tempfile.mkdtemp(prefix=f"vllm-{self.port}-"))
        environment = {**self.config.environment(), "TMPDIR": str(self._scratch_dir)}
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"\n=== starting: {' '.join(self.config.command(self.port))}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self.config.command(self.port),
                cwd=REPO_ROOT,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches the workers
            )
        try:
            self._wait_until_healthy(started + self.config.startup_timeout_s)
        except BaseException:
            self.kill()
            raise
        self.startup_seconds = time.monotonic() - started

    def _wait_until_healthy(self, deadline: float) -> None:
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.is_running():
                    raise VllmServerError(f"vLLM exited during startup\n{self.log_tail()}")
                try:
                    if client.get(f"{self.root_url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
        raise VllmServerError(
            f"vLLM not healthy after {self.config.startup_timeout_s:.0f} s\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM to the process group, then SIGKILL after stop_timeout_s."""
        if self._process is None:
            return
        self._signal_group(signal.SIGTERM)
        if not self._wait_group_gone(self.config.stop_timeout_s):
            self._signal_group(signal.SIGKILL)
            self._wait_group_gone(self.config.stop_timeout_s)
        self._forget_process()

    def kill(self) -> None:
        """Hard kill of the whole process group (for failure tests)."""
        if self._process is None:
            return
        self._signal_group(signal.SIGKILL)
        self._wait_group_gone(self.config.stop_timeout_s)
        self._forget_process()

    def _forget_process(self) -> None:
        self._process = None
        if self._scratch_dir is not None:
            shutil.rmtree(self._scratch_dir, ignore_errors=True)
            self._scratch_dir = None

    def restart(self) -> None:
        """Stops and starts again on the same port, so `base_url` stays valid."""
        self.stop()
        self.start()

    def _signal_group(self, signum: signal.Signals) -> None:
        assert self._process is not None
        try:
            os.killpg(self._process.pid, signum)
        except ProcessLookupError:
            pass

    def _wait_group_gone(self, timeout_s: float) -> bool:
        """Waits until the leader is reaped and no process is left in its group."""
        assert self._process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._process.poll()
            try:
                os.killpg(self._process.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def metrics(self) -> MetricsSnapshot:
        response = httpx.get(f"{self.root_url}/metrics", timeout=10.0)
        response.raise_for_status()
        return MetricsSnapshot.parse(response.text)

    async def metrics_async(self) -> MetricsSnapshot:
        async with httpx.AsyncClient(timeout=10.0) as client:
            response = await client.get(f"{self.root_url}/metrics")
        response.raise_for_status()
        return MetricsSnapshot.parse(response.text)

    def __enter__(self) -> VllmServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> VllmServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
