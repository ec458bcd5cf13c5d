"""Wait, bounded, for state that another thread or server task changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll ``condition`` until it holds; ``TimeoutError`` after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - set by server threads, which cannot await
            await asyncio.sleep(0.01)
