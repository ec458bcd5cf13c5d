"""The README's Python examples, taken from README.md as they are written there and run as
scripts against the real service (only its address is changed), so that they cannot drift
from the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.harness.service import ServiceProcess
from tts.espeak import espeak_environment

REPO = Path(__file__).resolve().parents[2]
README_ADDRESS = "127.0.0.1:8080"


def python_examples() -> dict[str, str]:
    """The README's ```python blocks that talk to the service, by what they import."""
    blocks = re.findall(r"^```python\n(.*?)^```$", (REPO / "README.md").read_text(), re.M | re.S)
    found = {}
    for block in blocks:
        if README_ADDRESS not in block:
            continue
        name = "openai" if "from openai import" in block else "sdk"
        found[name] = block
    return found


def test_the_readme_has_both_examples() -> None:
    assert set(python_examples()) == {"sdk", "openai"}


@pytest.fixture(scope="module")
def hello_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``hello.wav`` as the README makes it."""
    directory = tmp_path_factory.mktemp("readme")
    subprocess.run(
        ["espeak-ng", "-w", "hello.wav", "Hello there, how are you doing today?"],
        cwd=directory, check=True, timeout=60, env=espeak_environment(),
    )  # fmt: skip
    return directory / "hello.wav"


def run_example(name: str, service: ServiceProcess, directory: Path) -> str:
    script = python_examples()[name].replace(README_ADDRESS, f"127.0.0.1:{service.port}")
    path = directory / f"readme_{name}.py"
    path.write_text(script)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, str(path)], cwd=directory, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_sdk_example_runs_a_turn(echo_service: ServiceProcess, hello_wav: Path) -> None:
    printed = run_example("sdk", echo_service, hello_wav.parent).split()
    assert "input_audio_buffer.speech_started" in printed
    assert printed[-1] == "response.done"


def test_the_openai_example_gets_the_reply(echo_service: ServiceProcess, hello_wav: Path) -> None:
    printed = run_example("openai", echo_service, hello_wav.parent)
    assert printed.startswith("You said: ")
    assert printed.rstrip().endswith("(completed)")
