"""Samples of processes, threads and cores from /proc (Linux): CPU seconds, context switches,
affinities, per-core busy and steal time, and a process's memory, descriptors and threads."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections import defaultdict
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(path: str) -> list[str]:
    text = Path(path).read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def process_cpu_s(pid: int, with_children: bool = True) -> float:
    """utime+stime of ``pid`` (all its threads) and, optionally, reaped children's."""
    f = _stat_fields(f"/proc/{pid}/stat")
    ticks = int(f[11]) + int(f[12])
    if with_children:
        ticks += int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(_stat_fields(f"/proc/{entry}/stat")[1])
            except (OSError, ValueError, IndexError):
                continue
            children[ppid].append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def tree_cpu_s(pid: int) -> float:
    total = process_cpu_s(pid)
    for child in descendants(pid):
        with contextlib.suppress(OSError, ValueError):
            total += process_cpu_s(child, with_children=False)
    return total


def thread_stats(pid: int) -> dict[int, tuple[float, float, int]]:
    """Per thread id: user and system CPU seconds, and context switches (voluntary and not)."""
    out: dict[int, tuple[float, float, int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            f = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue
        switches = sum(
            int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line
        )
        out[int(tid)] = (int(f[11]) / CLK_TCK, int(f[12]) / CLK_TCK, switches)
    return out


def thread_names(pid: int, py_spy: str | None) -> dict[int, str]:
    """Python thread names by thread id, from ``py-spy dump`` (``Thread TID (...): "NAME"``);
    the main thread is always known."""
    names = {pid: "main (event loop)"}
    if py_spy:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            dump = subprocess.run(
                [py_spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=20
            ).stdout
            for m in re.finditer(r'^Thread (\d+) \([^)]*\): "([^"]+)"', dump, re.MULTILINE):
                if int(m.group(1)) != pid:
                    names[int(m.group(1))] = m.group(2)
    return names


def thread_affinities(pid: int) -> set[str]:
    cpus = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    cpus.add(line.split(":", 1)[1].strip())
    return cpus


def core_times() -> dict[str, dict[str, float]]:
    """Per-core busy / idle / steal seconds from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if re.match(r"cpu\d+ ", line):
            name, *vals = line.split()
            v = [int(x) / CLK_TCK for x in vals]
            user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
            out[name] = {
                "busy": user + nice + system + irq + softirq,
                "idle": idle + iowait,
                "steal": steal,
            }
    return out


def cpu_list(spec: str) -> list[int]:
    """``0,2-3`` -> [0, 2, 3]."""
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def wait_for_quiet(cores: list[int], limit: float, timeout_s: float) -> float:
    """Waits until the busy and stolen share of ``cores`` over 2 s is under ``limit``;
    returns it."""
    names = [f"cpu{c}" for c in cores]
    deadline = time.monotonic() + timeout_s
    while True:
        a, t = core_times(), time.monotonic()
        time.sleep(2.0)
        b, wall = core_times(), time.monotonic() - t
        load = sum(b[n]["busy"] + b[n]["steal"] - a[n]["busy"] - a[n]["steal"] for n in names)
        load /= wall
        if load < limit or time.monotonic() > deadline:
            return load


def memory_fds_threads(pid: int) -> tuple[float, int, int]:
    """Resident memory (MiB), open file descriptors and threads of ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+)", status, re.MULTILINE)
    if match is None:
        raise ValueError(f"no VmRSS in /proc/{pid}/status")
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    return int(match.group(1)) / 1024, fds, threads
