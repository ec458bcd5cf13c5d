"""Specification of the in-process CosyVoice glue: text fed as a generator, framing, cancelling."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.tts.cosyvoice_model_fake import CosyVoice, CosyVoice2, CosyVoice3, FakeCosyVoice
from tests.tts.speech_code import decode_text
from tests.tts.waiting import wait_until
from tts.base import SpeechChunk, TtsError
from tts.cosyvoice_inprocess import CosyVoiceInProcessTts, model_version
from tts.cosyvoice_voices import END_OF_PROMPT, PromptVoice, SpeakerVoice, VoiceBook

TIMEOUT_S = 20.0
REPLY = (
    "Well, let me think about that for a moment, because it matters. The weather today "
    "is sunny in the morning and cloudy later on. In the evening some rain may come in "
    "from the west, so take an umbrella. Have a lovely day!"
)
SPEAKERS = VoiceBook([SpeakerVoice("en", "英文女"), SpeakerVoice("zh", "中文女")], default="en")


async def deltas(text: str) -> AsyncIterator[str]:
    for word in text.split(" "):
        yield word + " "
        await asyncio.sleep(0)


async def collect(
    tts: CosyVoiceInProcessTts, text: AsyncIterator[str], voice: str | None = None
) -> list[SpeechChunk]:
    async with contextlib.aclosing(tts.speak(text, voice=voice)) as chunks:
        return [chunk async for chunk in chunks]


def segments_of(chunks: list[SpeechChunk]) -> list[tuple[str, np.ndarray]]:
    texts: dict[int, str] = {}
    audio: dict[int, list[np.ndarray]] = {}
    for chunk in chunks:
        assert texts.setdefault(chunk.segment_index, chunk.segment_text) == chunk.segment_text
        audio.setdefault(chunk.segment_index, []).append(chunk.pcm)
    assert list(texts) == list(range(len(texts)))
    return [(texts[index], np.concatenate(audio[index])) for index in texts]


@pytest.fixture
def model() -> Iterator[CosyVoice2]:
    fake = CosyVoice2(speakers=("英文女", "中文女"))
    yield fake
    fake.stopped.set()


@pytest.fixture
async def tts(model: CosyVoice2) -> AsyncIterator[CosyVoiceInProcessTts]:
    backend = CosyVoiceInProcessTts(model, SPEAKERS)
    yield backend
    await backend.aclose()


@pytest.fixture
def prompt_wav(tmp_path: Path) -> Path:
    path = tmp_path / "prompt.wav"
    path.write_bytes(b"RIFF")  # the fake model never reads it
    return path


async def test_each_segment_speaks_exactly_its_text_and_all_of_the_reply_is_spoken(
    tts: CosyVoiceInProcessTts,
) -> None:
    chunks = await asyncio.wait_for(collect(tts, deltas(REPLY)), TIMEOUT_S)
    segments = segments_of(chunks)
    for text, pcm in segments:
        assert decode_text(pcm) == text
    assert " ".join(text for text, _ in segments) == " ".join(REPLY.split())
    assert [chunk.segment_end for chunk in chunks].count(True) == len(segments)


async def test_the_reply_text_goes_in_as_a_generator_with_streaming_on(
    tts: CosyVoiceInProcessTts, model: CosyVoice2
) -> None:
    async with contextlib.aclosing(tts.speak(deltas(REPLY), speed=1.25)) as chunks:
        [chunk async for chunk in chunks]
    assert model.calls
    assert all(call.text_was_generator and call.stream for call in model.calls)
    assert {call.speed for call in model.calls} == {1.25}
    assert {call.method for call in model.calls} == {"sft"}


async def test_synthesis_starts_on_the_first_clause_before_the_rest_of_the_reply_exists(
    tts: CosyVoiceInProcessTts, model: CosyVoice2
) -> None:
    rest_may_come = asyncio.Event()
    first_clause = "Well, let me think about that for a moment, because it matters."

    async def slow_text() -> AsyncIterator[str]:
        yield first_clause + " "
        await rest_may_come.wait()
        yield "The weather today is sunny in the morning and cloudy later on."

    async with contextlib.aclosing(tts.speak(slow_text())) as chunks:
        first = await asyncio.wait_for(anext(chunks), TIMEOUT_S)
        assert not rest_may_come.is_set()
        assert len(first.pcm) == 960  # 40 ms at 24 kHz, although a hop is 25 tokens long
        rest_may_come.set()
        later = [chunk async for chunk in chunks]
    segments = segments_of([first, *later])
    assert segments[0][0].startswith("Well, let me think about that for a moment,")
    assert " ".join(text for text, _ in segments).endswith("cloudy later on.")


async def test_audio_is_cut_into_40_ms_chunks(tts: CosyVoiceInProcessTts) -> None:
    chunks = await asyncio.wait_for(collect(tts, deltas(REPLY)), TIMEOUT_S)
    assert all(len(chunk.pcm) == 960 for chunk in chunks if not chunk.segment_end)
    assert all(len(chunk.pcm) < 960 for chunk in chunks if chunk.segment_end)


async def test_a_different_output_rate_is_resampled_in_the_backend(model: CosyVoice2) -> None:
    tts = CosyVoiceInProcessTts(model, SPEAKERS, output_rate=16_000)
    try:
        chunks = await asyncio.wait_for(collect(tts, deltas(REPLY)), TIMEOUT_S)
    finally:
        await tts.aclose()
    assert tts.sample_rate == 16_000
    assert all(len(chunk.pcm) == 640 for chunk in chunks if not chunk.segment_end)
    segments = segments_of(chunks)
    spoken_chars = sum(len(text) for text, _ in segments)  # no audio for the gaps between them
    total = sum(len(pcm) for _, pcm in segments)
    assert abs(total - spoken_chars * 480 * 2 / 3) < 50 * len(segments)


async def test_each_reply_starts_with_the_first_hop_length_again(
    tts: CosyVoiceInProcessTts, model: CosyVoice2
) -> None:
    # Upstream grows the shared hop length (25 -> 50 -> 100 tokens) and never resets it.
    first_calls = []
    for _ in range(3):
        first_calls.append(len(model.calls))
        await asyncio.wait_for(collect(tts, deltas(REPLY)), TIMEOUT_S)
    assert [model.calls[index].hops[0] for index in first_calls] == [25, 25, 25]
    assert any(hop > 25 for call in model.calls for hop in call.hops)


async def test_text_is_normalised_for_the_model_but_the_transcript_keeps_it(
    tts: CosyVoiceInProcessTts,
) -> None:
    chunks = await asyncio.wait_for(
        collect(tts, deltas("We have 2 cats at home, and they are lovely animals to live with.")),
        TIMEOUT_S,
    )
    text, pcm = segments_of(chunks)[0]
    assert "2 cats" in text
    assert "two cats" in decode_text(pcm)


async def test_utterances_stop_taking_text_at_their_length_cap(model: CosyVoice2) -> None:
    model.seconds_per_token = 0.002  # the text is all there long before the first audio
    tts = CosyVoiceInProcessTts(model, SPEAKERS, max_utterance_chars=70)
    try:
        chunks = await asyncio.wait_for(collect(tts, deltas(REPLY)), TIMEOUT_S)
    finally:
        await tts.aclose()
    segments = segments_of(chunks)
    assert len(segments) >= 3
    # A single sentence longer than the cap is the only thing its utterance takes.
    assert all(len(text) <= 70 or ". " not in text for text, _ in segments)
    assert any(len(text) > 40 for text, _ in segments)
    assert " ".join(text for text, _ in segments) == " ".join(REPLY.split())


async def test_the_session_voice_picks_a_speaker_and_unknown_names_get_the_default(
    tts: CosyVoiceInProcessTts, model: CosyVoice2
) -> None:
    await asyncio.wait_for(collect(tts, deltas("Hello there, my friend."), voice="zh"), TIMEOUT_S)
    await asyncio.wait_for(
        collect(tts, deltas("Hello there, my friend."), voice="alloy"), TIMEOUT_S
    )
    assert [call.speaker for call in model.calls] == ["中文女", "英文女"]


async def test_a_zero_shot_voice_is_registered_once_with_the_cosyvoice3_marker(
    prompt_wav: Path,
) -> None:
    model = CosyVoice3()
    voice = PromptVoice("clone", prompt_wav, "The words spoken in the prompt recording.")
    tts = CosyVoiceInProcessTts(model, VoiceBook([voice], "clone"))
    try:
        for _ in range(2):
            chunks = await asyncio.wait_for(
                collect(tts, deltas("Hello there, my friend.")), TIMEOUT_S
            )
            assert decode_text(segments_of(chunks)[0][1]) == "Hello there, my friend."
    finally:
        model.stopped.set()
        await tts.aclose()
    assert len(model.registered) == 1
    prompt_text, wav, speaker_id = model.registered[0]
    assert END_OF_PROMPT in prompt_text and prompt_text.endswith(voice.prompt_text or "")
    assert wav == str(prompt_wav)
    assert [call.speaker for call in model.calls] == [speaker_id, speaker_id]
    assert {call.method for call in model.calls} == {"zero_shot"}


async def test_closing_the_speech_ends_the_text_generator_and_the_models_generator(
    model: CosyVoice2,
) -> None:
    tts = CosyVoiceInProcessTts(model, SPEAKERS)
    endless = asyncio.Event()

    async def unfinished_text() -> AsyncIterator[str]:
        yield REPLY + " "
        await endless.wait()  # the engine has more to say, but the user barged in
        yield "never"

    try:
        async with contextlib.aclosing(tts.speak(unfinished_text())) as chunks:
            await asyncio.wait_for(anext(chunks), TIMEOUT_S)
        await wait_until(
            lambda: not tts._threads and not any(t.is_alive() for t in model.llm_threads),
            TIMEOUT_S,
        )
    finally:
        await tts.aclose()
    assert model.calls[0].closed_early
    assert "never" not in "".join(call.consumed for call in model.calls)


async def test_a_model_error_becomes_a_tts_error_after_the_audio_before_it(
    tts: CosyVoiceInProcessTts, model: CosyVoice2
) -> None:
    model.raise_at_hop = 1
    received: list[SpeechChunk] = []
    with pytest.raises(TtsError, match="CUDA out of memory"):
        async with asyncio.timeout(TIMEOUT_S):
            async for chunk in tts.speak(deltas(REPLY)):
                received.append(chunk)
    assert received
    segments = segments_of(received)
    for text, pcm in segments:
        assert text.startswith(decode_text(pcm))  # what came before the failure is right
    assert not received[-1].segment_end


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_a_dead_model_thread_is_caught_by_the_watchdog(model: CosyVoice2) -> None:
    model.fail_llm_after_tokens = 5
    tts = CosyVoiceInProcessTts(model, SPEAKERS, stall_timeout_s=0.3)
    try:
        with pytest.raises(TtsError, match=r"produced no audio for segment 0 in 0\.3 s"):
            await asyncio.wait_for(collect(tts, deltas(REPLY)), TIMEOUT_S)
    finally:
        model.stopped.set()
        await tts.aclose()


async def test_a_model_waiting_for_slow_reply_text_is_not_a_stall(model: CosyVoice2) -> None:
    tts = CosyVoiceInProcessTts(model, SPEAKERS, stall_timeout_s=0.4)

    async def slow_text() -> AsyncIterator[str]:
        for clause in ("Hello there, my friend,", "how are you,", "and how was the trip?"):
            yield clause + " "
            await asyncio.sleep(0.6)

    try:
        chunks = await asyncio.wait_for(collect(tts, slow_text()), TIMEOUT_S)
    finally:
        await tts.aclose()
    spoken = " ".join(text for text, _ in segments_of(chunks))
    assert spoken == "Hello there, my friend, how are you, and how was the trip?"


def test_model_versions_come_from_upstream_class_names() -> None:
    assert [model_version(cls()) for cls in (CosyVoice, CosyVoice2, CosyVoice3)] == [1, 2, 3]
    with pytest.raises(ValueError):
        model_version(FakeCosyVoice())


@pytest.mark.parametrize(
    ("model", "voices", "problem"),
    [
        (CosyVoice(("a",)), VoiceBook([SpeakerVoice("a", "a")], "a"), "CosyVoice 2 or 3"),
        (CosyVoice3(("a",)), VoiceBook([SpeakerVoice("a", "a")], "a"), "zero-shot prompt voice"),
        (CosyVoice2(("a",)), VoiceBook([SpeakerVoice("b", "b")], "b"), "no speaker 'b'"),
        (CosyVoice2(), VoiceBook([PromptVoice("x", Path("x.wav"))], "x"), "HTTP backend"),
    ],
)
def test_voices_the_model_cannot_stream_are_refused_at_startup(
    model: FakeCosyVoice, voices: VoiceBook, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        CosyVoiceInProcessTts(model, voices)
