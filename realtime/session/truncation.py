"""Cut a reply's transcript to the part whose audio was actually sent before a barge-in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SpokenSegment:
    """One TTS segment of a reply and how much of its audio was produced and sent."""

    text: str
    produced_ms: float = 0.0
    complete: bool = False


def spoken_text(segments: list[SpokenSegment], sent_ms_by_segment: dict[int, float]) -> str:
    """The words the listener heard: whole segments fully sent, then the share of the
    segment in progress that its sent audio covers, rounded down to whole words."""
    spoken: list[str] = []
    for index, segment in enumerate(segments):
        sent = sent_ms_by_segment.get(index, 0.0)
        if sent <= 0.0:
            break
        if segment.complete and sent >= segment.produced_ms - 1e-6:
            spoken.append(segment.text)
            continue
        total = max(segment.produced_ms, sent, 1e-6)
        words = segment.text.split()
        heard = int(len(words) * (sent / total))
        if heard:
            spoken.append(" ".join(words[:heard]))
        break
    return " ".join(part.strip() for part in spoken if part.strip())
