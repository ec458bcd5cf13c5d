"""Turn-taking: premature replies at mid-turn pauses vs end-of-turn latency, per turn_detection.

Starts the service (``--engine sim --policy speak-first --tts simulated`` unless
``--serve-arg`` says otherwise) and, for every mode, opens one WebSocket session that
``session.update``s its ``turn_detection`` and then says every turn of the evaluation set
(``benchmarks/turn_taking_set.py``; built first when the folder has no manifest) as a
microphone would: 20 ms frames paced by the wall clock, one continuous stream. After each
turn's true end (its last voiced sample) it streams ``--reply-window-s`` of silence; then it
clears the input buffer if the turn has still not ended (semantic_vad waits up to 0.8-2 s at a
pause it judges mid-turn), cancels any reply still running and streams ``--settle-ms`` more
silence, so every turn starts from an idle session. The modes run concurrently, one session
each (``--parallel N`` caps how many at once), so the run lasts about as long as the set;
they share the machine's CPU with each other and with the server.

Per mode:

- premature replies per minute of speech: ``response.created`` received after the turn's
  audio started and before its true end was sent (the speaker is still mid-turn). Speech
  minutes are the turns' first-voiced-sample-to-true-end spans, mid-turn pauses included;
- reply audio heard over the speaker: seconds of ``response.output_audio.delta`` audio
  received while the turn was still being said (before its true end was sent);
- end-of-turn latency, separately after complete turns and at the end of paused turns:
  arrival of the ``input_audio_buffer.committed`` that ends the turn (speech_stopped when the
  server sends no commits) minus the send time of the 20 ms frame holding the true end; a
  commit whose speech_stopped lies before the turn's last part (a pause's) does not count;
- first-packet latency: the first reply audio delta, of a response created after the true
  end, minus that same send time. With ``--engine sim`` and ``--tts simulated`` these are
  SIMULATED engine and TTS timings and are labelled so;
- missed turns: no such reply audio within ``--reply-window-s`` of the true end.

A mode the server rejects in ``session.update`` (e.g. ``semantic_vad`` before it lands) is
reported as "not supported by this server".

    python benchmarks/turn_taking_set.py          # once: results/turn_taking_set/
    python benchmarks/turn_taking.py --json results/turn_taking.json
    python benchmarks/turn_taking.py --small --modes server_vad_500,semantic_vad_auto
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import real_speech_set, turn_taking_set
from benchmarks.harness.prometheus import bucket_quantile
from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.stats import percentile
from benchmarks.real_speech_set import MID_SENTENCE
from realtime.client import RealtimeClient, RealtimeError, RealtimeServerError
from realtime.client.events import ServerEvent
from tokenizer.pcm import read_wav

MODES: dict[str, dict[str, Any]] = {
    "server_vad_500": {"type": "server_vad", "silence_duration_ms": 500},
    "server_vad_200": {"type": "server_vad", "silence_duration_ms": 200},
    "semantic_vad_low": {"type": "semantic_vad", "eagerness": "low"},
    "semantic_vad_medium": {"type": "semantic_vad", "eagerness": "medium"},
    "semantic_vad_high": {"type": "semantic_vad", "eagerness": "high"},
    "semantic_vad_auto": {"type": "semantic_vad", "eagerness": "auto"},
}
DEFAULT_SERVE_ARGS = ("--engine", "sim", "--policy", "speak-first", "--tts", "simulated")
FRAME_MS = 20
SMALL_SET_DIR = Path("results/turn_taking_set_small")
REAL_SET_DIR = Path("results/real_speech_set_live")
CANCEL_WAIT_S = 2.0
SERVER_METRICS = (
    "step_realtime_turns",
    "step_realtime_speculative_responses",
    "step_realtime_false_interruptions",
    "step_realtime_barge_ins",
    "step_realtime_input_lag_seconds",
    "step_realtime_smart_turn",
)
PAUSE_MATCH_MS = 150  # a speech end this far before a pause's first silent sample is its
OPEN_TIMEOUT_S = 15.0


# -- the evaluation set ----------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    name: str
    kind: str
    text: str
    pcm: npt.NDArray[np.int16]
    segments: list[list[int]]
    true_end: int
    speech_start: int
    pause_labels: list[str]
    """Per pause (gap between segments), from the text: mid_clause, clause_boundary,
    sentence_end or in_word (real_speech_set.py); the espeak-ng set's pauses are all at
    clause boundaries."""


def load_set(directory: Path) -> tuple[list[Turn], int, dict[str, Any]]:
    manifest = json.loads((directory / "manifest.json").read_text())
    rate = int(manifest["sample_rate"])
    turns = []
    for entry in manifest["turns"]:
        pcm, file_rate = read_wav(directory / entry["file"])
        if file_rate != rate:
            raise ValueError(f"{entry['file']}: {file_rate} Hz, the manifest says {rate}")
        labels = entry.get("pause_labels", ["clause_boundary"] * (len(entry["segments"]) - 1))
        turns.append(
            Turn(entry["name"], entry["kind"], entry["text"], pcm, entry["segments"],
                 int(entry["true_end"]), int(entry["speech_start"]), labels)
        )  # fmt: skip
    return turns, rate, manifest


def stretch_pauses(turn: Turn, rate: int, at_least_ms: int) -> Turn:
    """The turn with each mid-sentence pause held at least ``at_least_ms`` (silence inserted
    in the middle of the gap): the speaker's words and prosody as they were, the hesitation
    longer."""
    pieces, segments, shift, cursor = [], [], 0, 0
    for index, (start, end) in enumerate(turn.segments):
        segments.append([start + shift, end + shift])
        if index == len(turn.segments) - 1 or turn.pause_labels[index] not in MID_SENTENCE:
            continue
        gap = turn.segments[index + 1][0] - end
        extra = at_least_ms * rate // 1000 - gap
        if extra > 0:
            middle = end + gap // 2
            pieces += [turn.pcm[cursor:middle], np.zeros(extra, dtype=np.int16)]
            cursor, shift = middle, shift + extra
    pieces.append(turn.pcm[cursor:])
    pcm = np.concatenate(pieces)
    return Turn(turn.name, turn.kind, turn.text, pcm, segments, turn.true_end + shift,
                turn.speech_start, turn.pause_labels)  # fmt: skip


# -- one session ----------------------------------------------------------------------------


@dataclass
class Received:
    """What the analysis needs of one server event (audio deltas reduced to a length)."""

    at: float
    type: str
    response_id: str | None = None
    item_id: str | None = None
    audio_samples: int = 0
    audio_end_ms: int | None = None
    status: str | None = None
    reason: str | None = None
    simulated: bool | None = None
    silence_ms: float | None = None  # response.done: the silence the server waited
    speculative: bool = False  # response.done: the reply began at a pause, before the end
    message: str | None = None


def base64_samples(data: str) -> int:
    """PCM16 samples in a base64 payload, without decoding it."""
    padding = len(data) - len(data.rstrip("="))
    return (len(data) * 3 // 4 - padding) // 2


def reduce_event(event: ServerEvent) -> Received:
    raw = event.raw
    record = Received(event.received_at, event.type)
    if event.type in ("response.created", "response.done"):
        response = raw.get("response") or {}
        record.response_id = response.get("id")
        record.status = response.get("status")
        details = response.get("status_details") or {}
        record.reason = details.get("reason") if isinstance(details, dict) else None
        x_turn = response.get("x_turn") or {}
        if isinstance(x_turn, dict):
            record.simulated = x_turn.get("simulated")
            timings = x_turn.get("timings") or {}
            record.silence_ms = timings.get("silence_window_ms")
            record.speculative = "speculative_start" in (timings.get("stages_ms") or {})
    elif event.type == "response.output_audio.delta":
        record.response_id = raw.get("response_id")
        record.audio_samples = base64_samples(str(raw.get("delta", "")))
    elif event.type.startswith("input_audio_buffer."):
        record.item_id = raw.get("item_id")
        if event.type == "input_audio_buffer.speech_stopped":
            record.audio_end_ms = raw.get("audio_end_ms")
    elif event.type == "error":
        error = raw.get("error") or {}
        record.message = f"{error.get('code')}: {error.get('message')}"
    return record


@dataclass
class TurnTiming:
    """When one turn went out (``time.monotonic()``) and where it sits in the input stream."""

    started_at: float  # its first frame sent
    true_end_at: float  # the frame holding its last voiced sample sent
    finished_at: float = 0.0  # its last frame (settle silence included) sent
    stream_offset: int = 0  # input samples sent before this turn
    stream_t0: float = 0.0  # when the stream started: sample n is due at t0 + n / rate
    send_lag_ms: float = 0.0  # worst lateness of a frame against the wall clock
    cleared: bool = False  # not ended within the reply window: input_audio_buffer.clear sent


class Microphone:
    """One continuous input stream, 20 ms frames on a single monotonic schedule."""

    def __init__(self, client: RealtimeClient, rate: int) -> None:
        self.client = client
        self.rate = rate
        self.frame = rate * FRAME_MS // 1000
        self.sent = 0  # samples
        self.start = time.monotonic()
        self.worst_lag_s = 0.0

    async def play(self, pcm: npt.NDArray[np.int16], mark: int | None = None) -> float | None:
        """Send ``pcm`` (padded with silence to whole frames); the send time of the frame
        holding sample ``mark - 1`` (the sample just before ``mark``) when given."""
        if len(pcm) % self.frame:
            pad = np.zeros(self.frame - len(pcm) % self.frame, dtype=np.int16)
            pcm = np.concatenate([pcm, pad])
        marked_at: float | None = None
        for offset in range(0, len(pcm), self.frame):
            due = self.start + (self.sent + self.frame) / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.worst_lag_s = max(self.worst_lag_s, -delay)
            await self.client.append_audio(pcm[offset : offset + self.frame])
            now = time.monotonic()
            self.sent += self.frame
            if mark is not None and offset < mark <= offset + self.frame:
                marked_at = now
        return marked_at

    async def silence(self, ms: float) -> None:
        await self.play(np.zeros(max(1, round(self.rate * ms / 1000)), dtype=np.int16))


@dataclass
class SessionRun:
    mode: str
    turn_detection: dict[str, Any]
    status: str = "ok"  # ok | unsupported | failed
    reason: str | None = None
    confirmed_turn_detection: Any = None
    output_rate: int = 24_000
    events: list[Received] = field(default_factory=list)
    timings: list[TurnTiming] = field(default_factory=list)
    worst_send_lag_ms: float = 0.0


async def run_session(url: str, mode: str, turns: list[Turn], rate: int,
                      args: argparse.Namespace) -> SessionRun:  # fmt: skip
    run = SessionRun(mode, MODES[mode])
    try:
        client = await RealtimeClient.connect(url, open_timeout=OPEN_TIMEOUT_S)
    except RealtimeError as exc:
        run.status, run.reason = "failed", str(exc)
        return run
    active: set[str] = set()
    last_commit_at = [0.0]

    async def record() -> None:
        async for event in client.events():
            received = reduce_event(event)
            run.events.append(received)
            if received.type == "input_audio_buffer.committed":
                last_commit_at[0] = received.at
            elif received.type == "response.created" and received.response_id:
                active.add(received.response_id)
            elif received.type == "response.done":
                active.discard(received.response_id or "")

    recorder: asyncio.Task[None] | None = None
    try:
        update = {"audio": {"input": {"format": {"type": "audio/pcm", "rate": rate},
                                      "turn_detection": run.turn_detection}}}  # fmt: skip
        try:
            session = await client.update_session(update, timeout=OPEN_TIMEOUT_S)
        except RealtimeServerError as exc:
            run.status = "unsupported"
            run.reason = exc.event.error.describe()
            return run
        run.confirmed_turn_detection = (
            session.get("audio", {}).get("input", {}).get("turn_detection")
        )
        run.output_rate = client.output_rate
        recorder = asyncio.create_task(record())
        mic = Microphone(client, rate)
        window = round(args.reply_window_s * rate)
        for turn in turns:
            mic.worst_lag_s = 0.0
            offset = mic.sent
            started_at = time.monotonic()
            tail = max(0, window - (len(turn.pcm) - turn.true_end))
            audio = np.concatenate([turn.pcm, np.zeros(tail, dtype=np.int16)])
            true_end_at = await mic.play(audio, mark=turn.true_end)
            assert true_end_at is not None
            timing = TurnTiming(started_at, true_end_at, stream_offset=offset, stream_t0=mic.start)
            if last_commit_at[0] < true_end_at:
                # The turn has not ended within the reply window (semantic_vad's longest
                # pauses are 2-8 s): drop it, so that the next turn starts afresh.
                await client.clear()
                timing.cleared = True
            if active:  # a reply still running: stop it, as a listener who heard enough
                await client.cancel_response()
                deadline = time.monotonic() + CANCEL_WAIT_S
                while active and time.monotonic() < deadline:
                    await mic.play(np.zeros(mic.frame, dtype=np.int16))
            await mic.silence(args.settle_ms)
            timing.finished_at = time.monotonic()
            timing.send_lag_ms = 1000.0 * mic.worst_lag_s
            run.timings.append(timing)
            run.worst_send_lag_ms = max(run.worst_send_lag_ms, timing.send_lag_ms)
        await asyncio.sleep(0.2)  # the last events in flight
    except (RealtimeError, OSError) as exc:
        run.status, run.reason = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        await client.close()
        if recorder is not None:
            with contextlib.suppress(asyncio.CancelledError, RealtimeError):
                await asyncio.wait_for(recorder, 5.0)
    return run


# -- analysis -------------------------------------------------------------------------------


@dataclass
class PauseResult:
    """One mid-turn pause, as the server saw it."""

    pause_ms: float
    endpointed: bool  # a speech_stopped put the end of speech at this pause
    stopped_after_ms: float | None  # its arrival, from when the pause began (wall clock)


@dataclass
class TurnResult:
    name: str
    kind: str
    pauses: list[PauseResult]
    premature_replies: int
    premature_by_label: dict[str, int]
    answered_speculatively: bool | None  # the turn's reply was its speculative one
    audio_over_speaker_s: float
    end_of_turn_ms: float | None
    speech_stopped_ms: float | None
    server_silence_ms: float | None  # x_turn: silence after the voice when the turn ended
    first_packet_ms: float | None
    missed: bool
    not_ended_cleared: bool
    premature_still_playing: bool
    send_lag_ms: float


def pct(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 1) if values else None


def analyse_turn(turn: Turn, timing: TurnTiming, events: list[Received], rate: int,
                 output_rate: int, reply_window_s: float) -> TurnResult:  # fmt: skip
    t0, t_end, t1 = timing.started_at, timing.true_end_at, timing.finished_at
    mine = [e for e in events if t0 <= e.at < t1]
    before_end = [e for e in mine if e.at <= t_end]
    after_end = [e for e in mine if e.at > t_end]
    premature = {e.response_id for e in before_end if e.type == "response.created"}
    # Each premature reply belongs to the last pause that began before it was created.
    pause_due = [timing.stream_t0 + (timing.stream_offset + end) / rate
                 for (_, end) in turn.segments[:-1]]  # fmt: skip
    by_label: dict[str, int] = {}
    for e in before_end:
        if e.type == "response.created":
            began = [i for i, due in enumerate(pause_due) if due <= e.at]
            label = turn.pause_labels[began[-1]] if began else "before_any_pause"
            by_label[label] = by_label.get(label, 0) + 1
    audio_over = sum(e.audio_samples for e in before_end) / output_rate

    # The commit that ends the turn: its speech_stopped lies in the turn's last part.
    last_part_ms = 1000.0 * (timing.stream_offset + turn.segments[-1][0]) / rate
    stopped_end: dict[str, int | None] = {}
    stopped_at: dict[str, float] = {}
    for e in mine:
        if e.type == "input_audio_buffer.speech_stopped" and e.item_id:
            stopped_end[e.item_id] = e.audio_end_ms
            stopped_at[e.item_id] = e.at

    def ends_turn(e: Received) -> bool:
        audio_end = stopped_end.get(e.item_id or "")
        return audio_end is None or audio_end >= last_part_ms

    pauses = []
    for (_, end), (start, _) in itertools.pairwise(turn.segments):
        end_ms = 1000.0 * (timing.stream_offset + end) / rate
        start_ms = 1000.0 * (timing.stream_offset + start) / rate
        stop = next(
            (e for e in mine
             if e.type == "input_audio_buffer.speech_stopped" and e.audio_end_ms is not None
             and end_ms - PAUSE_MATCH_MS <= e.audio_end_ms < start_ms),
            None,
        )  # fmt: skip
        due = timing.stream_t0 + (timing.stream_offset + end) / rate
        after = 1000.0 * (stop.at - due) if stop else None
        pauses.append(PauseResult(round((start_ms - end_ms), 1), stop is not None, after))

    kinds = {e.type for e in events}
    marker = (
        "input_audio_buffer.committed"
        if "input_audio_buffer.committed" in kinds
        else "input_audio_buffer.speech_stopped"
    )
    commit = next((e for e in after_end if e.type == marker and ends_turn(e)), None)
    eot_ms = 1000.0 * (commit.at - t_end) if commit else None
    stop_at = stopped_at.get(commit.item_id or "") if commit else None
    stop_ms = 1000.0 * (stop_at - t_end) if stop_at is not None and stop_at > t_end else None

    created_after = {e.response_id for e in after_end if e.type == "response.created"}
    first_audio = next(
        (e for e in after_end
         if e.type == "response.output_audio.delta" and e.response_id in created_after),
        None,
    )  # fmt: skip
    reply_id = first_audio.response_id if first_audio else None
    reply_done = next(
        (e for e in mine if e.type == "response.done" and e.response_id == reply_id), None
    )
    speculative = reply_done.speculative if reply_done is not None else None
    in_window = first_audio is not None and first_audio.at - t_end <= reply_window_s
    fp_ms = 1000.0 * (first_audio.at - t_end) if first_audio and in_window else None
    still_playing = any(
        e.type == "response.output_audio.delta" and e.response_id in premature for e in after_end
    )
    return TurnResult(
        turn.name, turn.kind, pauses, len(premature), by_label, speculative, audio_over,
        eot_ms, stop_ms,
        reply_done.silence_ms if reply_done else None, fp_ms,
        missed=not in_window, not_ended_cleared=timing.cleared,
        premature_still_playing=still_playing,
        send_lag_ms=timing.send_lag_ms,
    )  # fmt: skip


def summarize(run: SessionRun, turns: list[Turn], rate: int, reply_window_s: float
              ) -> dict[str, Any]:  # fmt: skip
    summary: dict[str, Any] = {
        "mode": run.mode,
        "turn_detection": run.turn_detection,
        "status": run.status,
        "reason": run.reason,
    }
    if run.status == "unsupported" or not run.timings:
        return summary
    results = [
        analyse_turn(turn, timing, run.events, rate, run.output_rate, reply_window_s)
        for turn, timing in zip(turns, run.timings, strict=False)
    ]
    done = turns[: len(results)]
    speech_min = sum((t.true_end - t.speech_start) / rate for t in done) / 60.0
    premature = sum(r.premature_replies for r in results)
    mid_sentence = sum(r.premature_by_label.get(label, 0) for r in results for label in
                       MID_SENTENCE)  # fmt: skip
    answered = [r.answered_speculatively for r in results if r.answered_speculatively is not None]

    def latencies(kind: str, name: str) -> list[float]:
        return [
            getattr(r, name) for r in results if r.kind == kind and getattr(r, name) is not None
        ]

    eot_complete = latencies("complete", "end_of_turn_ms")
    eot_paused = latencies("paused", "end_of_turn_ms")
    first_packet = [r.first_packet_ms for r in results if r.first_packet_ms is not None]
    simulated = any(e.simulated for e in run.events if e.type == "response.done")
    all_pauses = [p for r in results for p in r.pauses]
    endpointed = [p.pause_ms for p in all_pauses if p.endpointed]
    cancelled = [e for e in run.events if e.type == "response.done" and e.status == "cancelled"]
    summary.update(
        confirmed_turn_detection=run.confirmed_turn_detection,
        turns=len(results),
        turns_planned=len(turns),
        speech_minutes=round(speech_min, 3),
        premature_replies=premature,
        premature_per_min=round(premature / speech_min, 2) if speech_min else None,
        premature_mid_sentence=mid_sentence,
        premature_mid_sentence_per_min=round(mid_sentence / speech_min, 2) if speech_min else None,
        premature_by_label={
            label: sum(r.premature_by_label.get(label, 0) for r in results)
            for label in sorted({k for r in results for k in r.premature_by_label})
        },
        replies_answered_by_speculative_start=f"{sum(answered)}/{len(answered)}",
        turns_with_premature_reply=sum(r.premature_replies > 0 for r in results),
        audio_over_speaker_s=round(sum(r.audio_over_speaker_s for r in results), 2),
        pauses_endpointed=len(endpointed),
        mid_turn_pauses=len(all_pauses),
        shortest_endpointed_pause_ms=min(endpointed, default=None),
        longest_pause_not_endpointed_ms=max(
            (p.pause_ms for p in all_pauses if not p.endpointed), default=None
        ),
        end_of_turn_complete_ms={"p50": pct(eot_complete, 50), "p90": pct(eot_complete, 90),
                                 "n": len(eot_complete)},
        end_of_turn_paused_ms={"p50": pct(eot_paused, 50), "p90": pct(eot_paused, 90),
                               "n": len(eot_paused)},
        first_packet_ms={"p50": pct(first_packet, 50), "p90": pct(first_packet, 90),
                         "n": len(first_packet), "simulated": simulated},
        missed_turns=sum(r.missed for r in results),
        turns_not_ended_in_window=sum(r.not_ended_cleared for r in results),
        premature_reply_still_playing_after_end=sum(r.premature_still_playing for r in results),
        responses_cancelled={
            reason: sum(e.reason == reason for e in cancelled)
            for reason in sorted({str(e.reason) for e in cancelled})
        },
        errors=sorted({e.message or "" for e in run.events if e.type == "error"})[:5],
        worst_send_lag_ms=round(run.worst_send_lag_ms, 1),
        per_turn=[asdict(r) for r in results],
    )  # fmt: skip
    return summary


# -- report ---------------------------------------------------------------------------------


def fmt_pair(values: dict[str, Any]) -> str:
    p50, p90 = values.get("p50"), values.get("p90")
    return "-" if p50 is None else f"{p50:.0f}/{p90:.0f}"


def set_totals(turns: list[Turn], rate: int) -> dict[str, Any]:
    return {
        "turns": len(turns),
        "paused": sum(t.kind == "paused" for t in turns),
        "complete": sum(t.kind == "complete" for t in turns),
        "mid_turn_pauses": sum(len(t.segments) - 1 for t in turns),
        "mid_sentence_pauses": sum(
            label in MID_SENTENCE for t in turns for label in t.pause_labels
        ),
        "speech_s": round(sum((t.true_end - t.speech_start) / rate for t in turns), 3),
    }


def print_table(
    summaries: list[dict[str, Any]], totals: dict[str, Any], wall_s: float, parallel: int
) -> None:
    print(
        f"\nturn-taking over {totals['turns']} turns ({totals['paused']} paused with "
        f"{totals['mid_turn_pauses']} mid-turn pauses, {totals['mid_sentence_pauses']} of them "
        f"mid-sentence, {totals['complete']} complete), {totals['speech_s'] / 60:.2f} min of "
        f"speech; {len(summaries)} modes, one "
        f"session each, {parallel} at once, in {wall_s:.0f} s: concurrent sessions share the "
        f"CPU with each other and with the server"
    )
    simulated = any(s.get("first_packet_ms", {}).get("simulated") for s in summaries)
    fp_label = "first pkt p50/p90" + (" SIMULATED" if simulated else "")
    header = (f"{'mode':<20} {'turns':>5} {'premature/min':>13} {'mid-sent./min':>13} "
              f"{'spec.':>7} {'pauses ended':>12} "
              f"{'over spkr s':>11} {'EOT complete':>12} {'EOT paused':>10} {fp_label:>27} "
              f"{'missed':>6} {'unended':>7} {'lag':>5}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for s in summaries:
        if s["status"] == "unsupported":
            print(f"{s['mode']:<20} not supported by this server ({s['reason']})")
            continue
        if "turns" not in s:
            print(f"{s['mode']:<20} failed: {s['reason']}")
            continue
        premature = f"{s['premature_per_min']:.2f} ({s['premature_replies']})"
        mid = f"{s['premature_mid_sentence_per_min']:.2f} ({s['premature_mid_sentence']})"
        ended = f"{s['pauses_endpointed']}/{s['mid_turn_pauses']}"
        print(
            f"{s['mode']:<20} {s['turns']:>5} {premature:>13} {mid:>13} "
            f"{s['replies_answered_by_speculative_start']:>7} {ended:>12} "
            f"{s['audio_over_speaker_s']:>11.2f} "
            f"{fmt_pair(s['end_of_turn_complete_ms']):>12} "
            f"{fmt_pair(s['end_of_turn_paused_ms']):>10} {fmt_pair(s['first_packet_ms']):>27} "
            f"{s['missed_turns']:>6} {s['turns_not_ended_in_window']:>7} "
            f"{s['worst_send_lag_ms']:>5.0f}"
        )
        if s["status"] != "ok":
            print(f"{'':<20} {s['status']}: {s['reason']}")
    legend = (
        "premature/min: response.created received mid-turn, per minute of speech (count); "
        "mid-sent.: those made in a mid-sentence pause (mid_clause, clause_boundary)",
        "spec.: turns whose reply was the one started speculatively at the final pause / "
        "turns answered",
        "pauses ended: mid-turn pauses in which the server put a speech_stopped",
        "over spkr s: seconds of reply audio received mid-turn (the server sends audio up to "
        "--audio-lead-ms ahead of playback)",
        "EOT: the commit that ends the turn, ms after the frame with the true end was sent, "
        "p50/p90, after complete turns and at the end of paused turns",
        "first pkt: first reply audio after the true end, ms p50/p90"
        + (": SIMULATED engine and TTS timings" if simulated else ""),
        "missed: turns with no reply audio within the reply window; unended: of those, turns "
        "not even ended (no commit) within it; "
        "lag: worst lateness of a 20 ms frame against the wall clock, ms",
    )
    for line in legend:
        print(f"  {line}")


async def run_modes(
    url: str,
    metrics_url: str,
    modes: list[str],
    turns: list[Turn],
    rate: int,
    args: argparse.Namespace,
) -> tuple[list[SessionRun], dict[str, Any]]:
    """One session per mode, at most ``--parallel`` at once; then the server's metrics."""
    audio_s = sum(len(t.pcm) / rate + args.reply_window_s + args.settle_ms / 1000 for t in turns)
    parallel = args.parallel or len(modes)
    rounds = -(-len(modes) // parallel)
    budget_s = rounds * (1.5 * audio_s + CANCEL_WAIT_S * len(turns) + 60)
    gate = asyncio.Semaphore(parallel)

    async def one(mode: str) -> SessionRun:
        async with gate:
            return await run_session(url, mode, turns, rate, args)

    tasks = [asyncio.create_task(one(mode)) for mode in modes]
    done, pending = await asyncio.wait(tasks, timeout=budget_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    runs = []
    for mode, task in zip(modes, tasks, strict=True):
        if task in done and task.exception() is None:
            runs.append(task.result())
        else:
            why = "timed out" if task in pending else repr(task.exception())
            runs.append(SessionRun(mode, MODES[mode], status="failed", reason=why))
    return runs, scrape_metrics(metrics_url)


def scrape_metrics(metrics_url: str) -> dict[str, Any]:
    """The server's turn-taking counters and histograms (all sessions of the run together)."""
    try:
        text = httpx.get(metrics_url, timeout=5.0).text
    except httpx.HTTPError as exc:
        return {"error": str(exc)}
    out: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(SERVER_METRICS):
            continue
        if family.type == "counter":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                    out[f"{family.name}{{{label}}}" if label else family.name] = sample.value
        elif family.type == "histogram":
            buckets = sorted((float(s.labels["le"]), s.value) for s in family.samples
                             if s.name.endswith("_bucket"))  # fmt: skip
            count = next((s.value for s in family.samples if s.name.endswith("_count")), 0.0)
            total = next((s.value for s in family.samples if s.name.endswith("_sum")), 0.0)
            out[family.name] = {
                "count": count,
                "mean": total / count if count else None,
                "p50_le": bucket_quantile(buckets, count, 0.5) if count else None,
                "p90_le": bucket_quantile(buckets, count, 0.9) if count else None,
            }
    return out


def print_server_metrics(metrics: dict[str, Any]) -> None:
    if "error" in metrics:
        print(f"THE SERVICE DID NOT ANSWER /metrics ({metrics['error']}): it stopped or hangs")
        return
    if not metrics:
        return
    print("server metrics over the whole run (all modes together):")
    for name, value in metrics.items():
        if isinstance(value, dict):
            mean = "-" if value["mean"] is None else f"{value['mean']:.4f}"
            print(f"  {name}: n={value['count']:.0f} mean={mean} "
                  f"p50<={value['p50_le']} p90<={value['p90_le']}")  # fmt: skip
        else:
            print(f"  {name}: {value:.0f}")


async def main_async(args: argparse.Namespace) -> int:
    set_dir: Path = args.set or (SMALL_SET_DIR if args.small else turn_taking_set.DEFAULT_OUT)
    if args.real:
        set_dir = args.set or REAL_SET_DIR
        if not (set_dir / "manifest.json").exists():
            print(f"building the real-speech set in {set_dir}", file=sys.stderr)
            real_speech_set.main(["--live-subset", "--out", str(set_dir)])
    if not (set_dir / "manifest.json").exists():
        print(f"building the evaluation set in {set_dir}", file=sys.stderr)
        turn_taking_set.build_set(
            set_dir, seed=turn_taking_set.DEFAULT_SEED, rate=16_000, small=args.small
        )
    turns, rate, manifest = load_set(set_dir)
    if args.limit:
        turns = turns[: args.limit]
    if args.stretch_pauses_ms:
        turns = [stretch_pauses(t, rate, args.stretch_pauses_ms) for t in turns]
    totals = set_totals(turns, rate)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"unknown modes {unknown}; known: {', '.join(MODES)}")
    serve_args = [*DEFAULT_SERVE_ARGS, *args.serve_arg]
    audio_s = sum(len(t.pcm) / rate + args.reply_window_s + args.settle_ms / 1000 for t in turns)
    print(f"{len(turns)} turns, about {audio_s:.0f} s per session; modes: {', '.join(modes)}",
          file=sys.stderr)  # fmt: skip
    started = time.monotonic()
    load_before = os.getloadavg()
    server_exit: int | None = None
    if args.url:
        metrics_url = args.url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
        metrics_url = metrics_url.split("/v1/", 1)[0] + "/metrics"
        runs, server_metrics = await run_modes(args.url, metrics_url, modes, turns, rate, args)
    else:
        env = None
        if args.server_tree is not None:  # that tree's realtime package, not this checkout's
            env = {"PYTHONPATH": str(args.server_tree.resolve()), "PYTHONSAFEPATH": "1"}
        with ServiceProcess(*serve_args, log_path=Path(args.log), env=env) as service:
            metrics_url = f"{service.http_url}/metrics"
            runs, server_metrics = await run_modes(
                service.ws_url, metrics_url, modes, turns, rate, args
            )
            server_exit = service.exit_code
    wall_s = time.monotonic() - started
    summaries = [summarize(run, turns, rate, args.reply_window_s) for run in runs]
    print_table(summaries, totals, wall_s, min(args.parallel or len(modes), len(modes)))
    print_server_metrics(server_metrics)
    if server_exit is not None:
        print(f"THE SERVICE EXITED DURING THE RUN with code {server_exit} "
              f"(negative: killed by that signal); its log: {args.log}")  # fmt: skip
    if args.json:
        report = {
            "benchmark": "benchmarks/turn_taking.py",
            "serve_args": serve_args,
            "set": {
                "dir": str(set_dir),
                "seed": manifest.get("seed"),
                "real_speech": bool(manifest.get("real_speech")),
                "sources": manifest.get("sources"),
                "stretch_pauses_ms": args.stretch_pauses_ms,
                **totals,
            },
            "reply_window_s": args.reply_window_s,
            "settle_ms": args.settle_ms,
            "concurrent_sessions": min(args.parallel or len(modes), len(modes)),
            "wall_s": round(wall_s, 1),
            "server_metrics": server_metrics,
            "server_exit_code": server_exit,
            "cpu_count": os.cpu_count(),
            "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            "modes": summaries,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"results -> {args.json}", file=sys.stderr)
    return 0 if all(s["status"] != "failed" for s in summaries) else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", type=Path, default=None,
                        help="evaluation set folder (default: results/turn_taking_set, or "
                        "results/turn_taking_set_small with --small); built when missing",
                        )  # fmt: skip
    parser.add_argument("--small", action="store_true", help="the small set, for a quick run")
    parser.add_argument(
        "--real",
        action="store_true",
        help=f"real human speech ({REAL_SET_DIR}, built by "
        "benchmarks/real_speech_set.py --live-subset from the recordings "
        "scripts/fetch-real-speech.sh fetched): what defaults are chosen on",
    )
    parser.add_argument("--stretch-pauses-ms", type=int, default=0,
                        help="hold every mid-sentence pause at least this long (a hesitant "
                        "caller; the words stay the speaker's)")  # fmt: skip
    parser.add_argument("--limit", type=int, default=0, help="only the first N turns")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated, of: " + ", ".join(MODES))  # fmt: skip
    parser.add_argument("--reply-window-s", type=float, default=3.0,
                        help="silence streamed after each true end; a turn with no reply "
                        "audio within it is missed (default: %(default)s)")  # fmt: skip
    parser.add_argument("--settle-ms", type=float, default=500.0,
                        help="silence after cancelling a running reply, before the next turn",
                        )  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--log", default="/tmp/step-realtime-turn-taking-serve.log")
    parser.add_argument("--parallel", type=int, default=0,
                        help="sessions at once (default: every mode at once)")  # fmt: skip
    parser.add_argument("--url", default=None,
                        help="a running service's WebSocket URL (ws://HOST:PORT/v1/realtime) "
                        "instead of starting one",
                        )  # fmt: skip
    parser.add_argument("--server-tree", type=Path, default=None,
                        help="run the service from this source tree (e.g. `git archive HEAD` "
                        "unpacked) instead of this checkout")  # fmt: skip
    parser.add_argument("--serve-arg", action="append", default=[],
                        help="extra argument for `step-realtime serve` (repeatable; later "
                        "ones override the defaults)")  # fmt: skip
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
