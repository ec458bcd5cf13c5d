"""Give a process group (the vLLM CPU server) a lower CPU priority than the service under test.

vLLM's CPU backend pins its model worker to one core and keeps it busy while it decodes;
on a 2-core machine the service and the test client, which share that core, then wait for
seconds at a time (their event loops stall, health checks and cancels are late). Lowering
the server's priority (the nice value of every thread in its process group, and of its
autogroup, which the kernel schedules as one unit when autogrouping is on) gives the
service the CPU when it needs it, and vLLM everything else. On GPU deployments the engine
runs on other hosts, so this only removes an artefact of testing on a small CPU machine.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

BACKGROUND_NICE = 10


def lower_priority(process_group: int, nice: int = BACKGROUND_NICE) -> None:
    """Best effort: threads and the autogroup of ``process_group`` get ``nice``."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PGRP, process_group, nice)
    with contextlib.suppress(OSError):
        Path(f"/proc/{process_group}/autogroup").write_text(f"{nice}\n")
