"""Benchmark: espeak-ng time to first audio, segmented (short first clause) vs whole text.

Run: .venv/bin/python benchmarks/tts_first_audio.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator

from tts.espeak import EspeakTts
from tts.segmenter import SegmenterRules

SENTENCES = [
    "Sure, here is a quick answer to your question.",
    "Good question, the sky looks blue because air scatters blue light much more than red "
    "light, and our eyes are more sensitive to blue than to violet.",
    "Well, it depends. If you leave at 10:30 a.m. and drive at 60 miles per hour, you will "
    "arrive around 1 p.m. That assumes no traffic, of course. Dr. Smith says the roads are "
    "usually clear on Sundays, so you should be fine.",
]
# One segment as long as any reply: espeak-ng synthesizes the whole text in one process.
WHOLE_TEXT = SegmenterRules(
    first_min_chars=10_000, first_max_chars=10_000, later_min_chars=10_000, later_max_chars=10_000
)


async def words(text: str) -> AsyncIterator[str]:
    for word in text.split(" "):
        yield word + " "


async def measure(backend: EspeakTts, text: str) -> tuple[float, float]:
    """Seconds to the first audio chunk and to the last one."""
    start = time.perf_counter()
    first = None
    async for _ in backend.speak(words(text)):
        if first is None:
            first = time.perf_counter() - start
    assert first is not None
    return first, time.perf_counter() - start


async def main(runs: int) -> None:
    segmented, whole = EspeakTts(), EspeakTts(rules=WHOLE_TEXT)
    print(f"espeak-ng time to first audio, p50 of {runs} runs (ms)")
    print(f"{'chars':>6} {'segmented first':>16} {'whole first':>12} {'whole total':>12}")
    for text in SENTENCES:
        segmented_first = [(await measure(segmented, text))[0] for _ in range(runs)]
        whole_runs = [await measure(whole, text) for _ in range(runs)]
        print(
            f"{len(text):>6} {statistics.median(segmented_first) * 1000:>16.1f}"
            f" {statistics.median(first for first, _ in whole_runs) * 1000:>12.1f}"
            f" {statistics.median(total for _, total in whole_runs) * 1000:>12.1f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    asyncio.run(main(parser.parse_args().runs))
