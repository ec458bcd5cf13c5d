"""Engine audio arithmetic, 25 s item splitting, and the listen-while-thinking chunker."""

from __future__ import annotations

import numpy as np
import pytest

from tokenizer.chunking import (
    MAX_ENGINE_CHUNK_S,
    SpeechChunker,
    audio_embeddings_for_samples,
    audio_prompt_tokens_for_samples,
    engine_mel_frames_for_samples,
    find_low_energy_cut,
    mel_frames_for_samples,
    split_for_engine,
)

RATE = 16_000


def _conv_out(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


def _embeddings_layer_by_layer(n_samples: int) -> int:
    """Output length of each layer in turn, from the layer shapes in StepFun's vLLM model."""
    mel_frames = (n_samples + 479) // 160  # front end: 479 zeros of padding, hop 160
    conv1 = _conv_out(mel_frames, kernel=3, stride=1, padding=1)
    conv2 = _conv_out(conv1, kernel=3, stride=2, padding=1)
    pooled = _conv_out(conv2, kernel=2, stride=2, padding=0)
    return max(0, _conv_out(pooled, kernel=3, stride=2, padding=1))  # adaptor


def _noise(seconds: float, seed: int, level: float = 3000.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, level, round(seconds * RATE)), -32768, 32767).astype(np.int16)


def _rms_around(pcm: np.ndarray, index: int, half: int = 160) -> float:
    window = pcm[max(0, index - half) : index + half].astype(np.float64)
    return float(np.sqrt(np.mean(window**2))) if window.size else 0.0


def test_ten_seconds_cost_1000_mel_frames_125_embeddings_and_127_prompt_tokens() -> None:
    ten_seconds = 10 * RATE
    assert mel_frames_for_samples(ten_seconds) == 1000
    assert engine_mel_frames_for_samples(ten_seconds) == 1002
    assert audio_embeddings_for_samples(ten_seconds) == 125
    assert audio_prompt_tokens_for_samples(ten_seconds) == 127


def test_a_full_25_second_item_costs_313_embeddings() -> None:
    assert audio_embeddings_for_samples(int(MAX_ENGINE_CHUNK_S * RATE)) == 313


@pytest.mark.parametrize(
    ("n", "mel", "embeddings"),
    [(0, 0, 0), (1, 1, 1), (160, 1, 1), (161, 2, 1), (1280, 8, 1), (1281, 9, 2), (3200, 20, 3)],
)
def test_counts_at_the_edges(n: int, mel: int, embeddings: int) -> None:
    assert mel_frames_for_samples(n) == mel
    assert engine_mel_frames_for_samples(n) == mel + 2
    assert audio_embeddings_for_samples(n) == embeddings
    assert audio_prompt_tokens_for_samples(n) == embeddings + 2


def test_vllm_counts_all_padded_frames_so_10_01_seconds_cost_126() -> None:
    # The transformers reference drops the 2 padding frames first and would give 125 here.
    assert mel_frames_for_samples(160_160) == 1001
    assert audio_embeddings_for_samples(160_160) == 126


def test_embedding_count_matches_the_encoder_layers_for_every_length() -> None:
    lengths = [*range(0, 5000), *range(5000, 30 * RATE, 997)]
    assert [audio_embeddings_for_samples(n) for n in lengths] == [
        _embeddings_layer_by_layer(n) for n in lengths
    ]


def test_embedding_rate_is_12_5_per_second_and_never_decreases() -> None:
    counts = np.array([audio_embeddings_for_samples(n) for n in range(0, 30 * RATE, 160)])
    assert (np.diff(counts) >= 0).all()
    assert abs(counts[-1] - 30 * 12.5) <= 2


def test_negative_sample_counts_are_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        audio_embeddings_for_samples(-1)


def test_low_energy_cut_lands_in_a_silent_gap_near_the_target() -> None:
    pcm = _noise(3.0, seed=1)
    gap_start, gap_end = int(1.10 * RATE), int(1.16 * RATE)
    pcm[gap_start:gap_end] = 0
    cut = find_low_energy_cut(pcm, target=RATE, window=int(0.3 * RATE))
    assert gap_start + 160 <= cut <= gap_end - 160  # the whole 20 ms around the cut is silent


def test_low_energy_cut_stays_within_the_window() -> None:
    pcm = _noise(3.0, seed=2)
    pcm[int(2.0 * RATE) : int(2.1 * RATE)] = 0  # out of reach
    cut = find_low_energy_cut(pcm, target=RATE, window=800)
    assert RATE - 800 <= cut <= RATE + 800


def test_low_energy_cut_prefers_the_target_among_equally_quiet_places() -> None:
    assert find_low_energy_cut(np.zeros(RATE, dtype=np.int16), 5000, 2000) == 5000
    assert find_low_energy_cut(np.zeros(0, dtype=np.int16), 5000, 2000) == 0


def test_low_energy_cut_finds_the_quieter_of_two_dips() -> None:
    pcm = _noise(2.0, seed=3)
    pcm[9000:9600] //= 10
    pcm[11000:11600] //= 100
    cut = find_low_energy_cut(pcm, target=10000, window=3000)
    assert 11160 <= cut <= 11440


def test_short_audio_is_a_single_item_and_empty_audio_none() -> None:
    pcm = _noise(10.0, seed=4)
    pieces = split_for_engine(pcm)
    assert len(pieces) == 1
    np.testing.assert_array_equal(pieces[0], pcm)
    assert split_for_engine(pcm[:0]) == []


def test_long_audio_splits_into_the_fewest_items_of_at_most_25_seconds() -> None:
    pcm = _noise(61.0, seed=5)
    pieces = split_for_engine(pcm)
    assert len(pieces) == 3
    assert all(piece.size <= 25 * RATE for piece in pieces)
    assert min(piece.size for piece in pieces) >= 18 * RATE  # no tiny trailing piece
    np.testing.assert_array_equal(np.concatenate(pieces), pcm)


def test_split_prefers_a_pause_near_the_even_split_point() -> None:
    pcm = _noise(40.0, seed=6)
    pause_start, pause_end = int(21.0 * RATE), int(21.3 * RATE)
    pcm[pause_start:pause_end] = 0
    first, second = split_for_engine(pcm)
    assert pause_start + 160 <= first.size <= pause_end - 160
    assert first.size + second.size == pcm.size


def test_split_respects_the_limit_when_there_is_no_slack() -> None:
    pcm = _noise(50.0, seed=7)
    pcm[int(24.0 * RATE) : int(24.5 * RATE)] = 0  # tempting, but the rest would exceed 25 s
    pieces = split_for_engine(pcm)
    assert [piece.size for piece in pieces] == [25 * RATE, 25 * RATE]


def test_split_respects_a_custom_limit() -> None:
    pcm = _noise(10.0, seed=8)
    pieces = split_for_engine(pcm, max_seconds=3.0, search_seconds=0.5)
    assert len(pieces) == 4
    assert all(piece.size <= 3 * RATE for piece in pieces)
    np.testing.assert_array_equal(np.concatenate(pieces), pcm)


def _chunk_in_random_pieces(
    chunker: SpeechChunker, pcm: np.ndarray, seed: int, max_piece: int = 5000
) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    chunks: list[np.ndarray] = []
    position = 0
    while position < pcm.size:
        size = int(rng.integers(0, max_piece + 1))  # empty pieces included
        chunks += chunker.push(pcm[position : position + size])
        position += size
    last = chunker.finish()
    if last is not None:
        chunks.append(last)
    return chunks


@pytest.mark.parametrize("seed", range(5))
def test_chunks_joined_reproduce_the_input_exactly(seed: int) -> None:
    pcm = _noise(5.3 + seed, seed=seed)
    max_piece = 1 + 4000 * seed  # seed 0 pushes at most one sample at a time
    chunks = _chunk_in_random_pieces(SpeechChunker(), pcm, seed, max_piece)
    np.testing.assert_array_equal(np.concatenate(chunks), pcm)
    assert all(chunk.size > 0 for chunk in chunks)


def test_each_closed_chunk_is_near_the_chunk_length_and_none_exceeds_the_limit() -> None:
    chunker = SpeechChunker(chunk_seconds=2.0, search_seconds=0.5, max_seconds=25.0)
    pcm = _noise(20.0, seed=10)
    closed: list[np.ndarray] = []
    for start in range(0, pcm.size, 320):
        closed += chunker.push(pcm[start : start + 320])
    assert len(closed) >= 7
    assert all(1.5 * RATE <= chunk.size <= 2.5 * RATE for chunk in closed)
    last = chunker.finish()
    assert last is not None
    assert last.size < 2.5 * RATE


def test_a_chunk_closes_only_once_the_lookahead_has_arrived() -> None:
    chunker = SpeechChunker(chunk_seconds=2.0, search_seconds=0.5)
    pcm = _noise(2.5, seed=11)
    assert chunker.push(pcm[:-1]) == []
    assert chunker.pending_samples == pcm.size - 1
    closed = chunker.push(pcm[-1:])
    assert len(closed) == 1
    assert chunker.emitted_samples == closed[0].size
    assert chunker.pending_samples == pcm.size - closed[0].size


def test_chunks_are_cut_in_the_pauses_of_real_speech(speech_16k: np.ndarray) -> None:
    chunker = SpeechChunker()
    chunks = _chunk_in_random_pieces(chunker, speech_16k, seed=12, max_piece=640)
    assert len(chunks) >= 4
    np.testing.assert_array_equal(np.concatenate(chunks), speech_16k)
    frames = speech_16k[: speech_16k.size // 320 * 320].reshape(-1, 320).astype(np.float64)
    typical_rms = float(np.median(np.sqrt(np.mean(frames**2, axis=1))))
    cuts = np.cumsum([chunk.size for chunk in chunks[:-1]])
    for cut in cuts:
        assert _rms_around(speech_16k, int(cut)) < 0.05 * typical_rms


def test_finish_without_audio_gives_none_and_reset_forgets_the_turn() -> None:
    chunker = SpeechChunker()
    assert chunker.finish() is None
    chunker.push(_noise(1.0, seed=13))
    chunker.reset()
    assert chunker.pending_samples == 0
    assert chunker.finish() is None


def test_chunks_do_not_alias_the_callers_buffer() -> None:
    chunker = SpeechChunker(chunk_seconds=1.0, search_seconds=0.1)
    buffer = _noise(1.2, seed=14)
    original = buffer.copy()
    closed = chunker.push(buffer)
    buffer[:] = 0
    last = chunker.finish()
    assert last is not None
    np.testing.assert_array_equal(np.concatenate([*closed, last]), original)


@pytest.mark.parametrize(
    ("chunk", "search", "limit"), [(2.0, 2.0, 25.0), (2.0, -0.1, 25.0), (24.0, 2.0, 25.0)]
)
def test_inconsistent_settings_are_refused(chunk: float, search: float, limit: float) -> None:
    with pytest.raises(ValueError):
        SpeechChunker(chunk_seconds=chunk, search_seconds=search, max_seconds=limit)
