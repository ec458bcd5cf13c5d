"""Resampling with soxr: one-shot and streaming keep the signal, lengths add up."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tokenizer.signals import fit_sine, tone, zero_crossing_frequency
from tokenizer.resample import StreamResampler, resample

RATE_PAIRS = [(24000, 16000), (16000, 24000), (48000, 24000), (22050, 16000)]


def _steady_part(x: np.ndarray) -> np.ndarray:
    """Drop the first and last 10 % where filter edge effects live."""
    edge = x.size // 10
    return x[edge:-edge]


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_sine_keeps_its_frequency_and_amplitude(in_rate: int, out_rate: int) -> None:
    amplitude = 0.5 * 32767
    out = resample(tone(1000.0, 1.0, in_rate, amplitude=0.5), in_rate, out_rate)
    assert out.dtype == np.int16
    steady = _steady_part(out)
    fitted_amplitude, residual = fit_sine(steady, 1000.0, out_rate)
    assert fitted_amplitude == pytest.approx(amplitude, rel=0.01)
    assert residual < 0.01 * amplitude
    assert zero_crossing_frequency(steady, out_rate) == pytest.approx(1000.0, abs=2.0)


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_one_shot_length_follows_the_rate_ratio(in_rate: int, out_rate: int) -> None:
    for n in (1, 7, 480, 12345):
        out = resample(np.zeros(n, dtype=np.int16), in_rate, out_rate)
        assert abs(out.size - n * out_rate / in_rate) <= 1


def test_float32_input_gives_float32_output() -> None:
    x = tone(440.0, 0.5, 24000).astype(np.float32) / np.float32(32768)
    out = resample(x, 24000, 16000)
    assert out.dtype == np.float32
    fitted_amplitude, _ = fit_sine(_steady_part(out), 440.0, 16000)
    assert fitted_amplitude == pytest.approx(0.5, rel=0.01)


def test_other_dtypes_are_refused() -> None:
    with pytest.raises(TypeError, match="int16 or float32"):
        resample(np.zeros(10, dtype=np.float64), 24000, 16000)  # type: ignore[arg-type]


def test_equal_rates_return_the_input_itself() -> None:
    x = tone(440.0, 0.1, 16000)
    assert resample(x, 16000, 16000) is x
    stream = StreamResampler(16000, 16000)
    assert stream.passthrough
    assert stream.process(x) is x
    assert stream.flush().size == 0


def _stream_in_random_pieces(stream: StreamResampler, x: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    outputs = []
    position = 0
    while position < x.size:
        size = int(rng.integers(0, 997))  # includes empty pieces
        outputs.append(stream.process(x[position : position + size]))
        position += size
    outputs.append(stream.flush())
    return np.concatenate(outputs)


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_streaming_in_odd_pieces_matches_one_shot(in_rate: int, out_rate: int) -> None:
    x = tone(440.0, 1.0, in_rate) // 2 + tone(2500.0, 1.0, in_rate) // 4
    streamed = _stream_in_random_pieces(StreamResampler(in_rate, out_rate), x, seed=in_rate)
    one_shot = resample(x, in_rate, out_rate)
    assert abs(streamed.size - round(x.size * out_rate / in_rate)) <= 2
    n = min(streamed.size, one_shot.size)
    difference = streamed[:n].astype(np.int32) - one_shot[:n].astype(np.int32)
    assert np.abs(difference).max() <= 4  # a few LSB of rounding, at 16-bit full scale 32767


def test_streaming_output_lags_at_first_and_flush_delivers_the_rest() -> None:
    stream = StreamResampler(24000, 16000)
    first = stream.process(tone(440.0, 0.02, 24000))
    assert first.size < 320
    total = first.size + stream.flush().size
    assert abs(total - 320) <= 2


def test_lengths_add_up_over_many_20ms_frames() -> None:
    stream = StreamResampler(48000, 16000)
    x = tone(300.0, 3.0, 48000)
    produced = sum(stream.process(x[i : i + 960]).size for i in range(0, x.size, 960))
    produced += stream.flush().size
    assert abs(produced - 16000 * 3) <= 2


@pytest.mark.parametrize("quality", ["LQ", "HQ"])
def test_held_input_is_the_newest_input_not_yet_out(quality: str) -> None:
    stream = StreamResampler(24000, 16000, quality=quality)  # type: ignore[arg-type]
    x = (np.arange(24000) % 30000).astype(np.int16)  # every sample tells where it came from
    received = produced = 0
    for start in range(0, x.size, 480):
        produced += stream.process(x[start : start + 480]).size
        received = start + 480
        held = stream.held_input()
        # What came out plus what is held covers all the input, to within one output sample.
        assert abs(produced + held.size * 16000 / 24000 - received * 16000 / 24000) <= 1
        np.testing.assert_array_equal(held, x[received - held.size : received])
    stream.flush()
    assert stream.held_input().size == 0


def test_equal_rates_hold_nothing_back() -> None:
    stream = StreamResampler(16000, 16000)
    stream.process(tone(440.0, 0.02, 16000))
    assert stream.held_input().size == 0


def test_resampler_is_reusable_after_flush_and_after_reset() -> None:
    stream = StreamResampler(24000, 16000)
    x = tone(440.0, 0.5, 24000)
    first = np.concatenate([stream.process(x), stream.flush()])
    second = np.concatenate([stream.process(x), stream.flush()])
    np.testing.assert_array_equal(first, second)
    stream.process(tone(3000.0, 0.3, 24000))
    stream.reset()
    third = np.concatenate([stream.process(x), stream.flush()])
    np.testing.assert_array_equal(first, third)


def test_empty_input_is_accepted() -> None:
    stream = StreamResampler(24000, 16000)
    out = stream.process(np.zeros(0, dtype=np.int16))
    assert out.size == 0
    assert out.dtype == np.int16
    assert stream.flush().size == 0


def test_stream_refuses_samples_of_another_dtype() -> None:
    stream = StreamResampler(24000, 16000)
    with pytest.raises(TypeError, match="int16"):
        stream.process(np.zeros(10, dtype=np.float32))


def test_stream_reports_its_rates() -> None:
    stream = StreamResampler(24000, 16000)
    assert (stream.in_rate, stream.out_rate) == (24000, 16000)
    assert not stream.passthrough


def test_non_positive_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        StreamResampler(0, 16000)


@pytest.mark.parametrize("quality", ["LQ", "HQ"])
def test_streaming_the_same_audio_always_gives_the_same_samples(quality: str) -> None:
    """The engine's prefix cache matches a turn's audio sample for sample; soxr's own
    streaming int16 path varied by a sample value or two from run to run."""
    speech_like = (
        tone(180.0, 2.0, 24000, amplitude=0.3).astype(np.int32)
        + np.random.default_rng(7).integers(-2000, 2000, 48000)
    ).astype(np.int16)

    def streamed() -> bytes:
        resampler = StreamResampler(24000, 16000, quality=quality)
        pieces = [resampler.process(speech_like[i : i + 480]) for i in range(0, 48000, 480)]
        return np.concatenate([*pieces, resampler.flush()]).tobytes()

    first = streamed()
    assert all(streamed() == first for _ in range(200))
