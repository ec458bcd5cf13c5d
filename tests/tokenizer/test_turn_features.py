"""Smart Turn's features: the last 8 s, zero-padded at the start, normalised, 80-bin log-mel."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.harness.speech import synthesize
from tokenizer.turn_features import (
    SMART_TURN_FRAMES,
    SMART_TURN_N_MELS,
    SMART_TURN_WINDOW_SAMPLES,
    smart_turn_feature_batch,
    smart_turn_features,
    smart_turn_window,
)

WINDOW = 128_000
SHAPE = (80, 800)


def _noise(samples: int, seed: int, rms: float = 3000.0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, rms, samples)
    return np.clip(np.round(noise), -32768, 32767).astype(np.int16)


def _reference_features(pcm: np.ndarray) -> np.ndarray:
    """Smart Turn's features written out plainly in float64, one frame at a time: the last
    8 s zero-padded at the start, zero mean / unit variance, periodic Hann, centred STFT
    with reflect padding (last frame dropped), Slaney mel filters from their definition,
    log10 clamped at 1e-10, floored at max - 8, (x + 4) / 4."""
    audio = pcm.astype(np.float64) / 32768.0
    audio = audio[-WINDOW:]
    audio = np.concatenate([np.zeros(WINDOW - audio.size), audio])
    audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)

    def hz_to_mel(hz: float) -> float:
        return 3 * hz / 200 if hz < 1000 else 15 + np.log(hz / 1000) * 27 / np.log(6.4)

    def mel_to_hz(mel: float) -> float:
        return 200 * mel / 3 if mel < 15 else 1000 * np.exp((mel - 15) * np.log(6.4) / 27)

    edges = [mel_to_hz(m) for m in np.linspace(0.0, hz_to_mel(8000.0), 82)]
    bin_hz = np.arange(201) * 8000.0 / 200
    filters = np.zeros((80, 201))
    for m in range(80):
        low, centre, high = edges[m], edges[m + 1], edges[m + 2]
        for k, hz in enumerate(bin_hz):
            if low < hz <= centre:
                filters[m, k] = (hz - low) / (centre - low)
            elif centre < hz < high:
                filters[m, k] = (high - hz) / (high - centre)
        filters[m] *= 2.0 / (high - low)

    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    padded = np.pad(audio, 200, mode="reflect")
    log_mel = np.empty((80, 800))
    for t in range(800):
        spectrum = np.fft.rfft(padded[t * 160 : t * 160 + 400] * window)
        log_mel[:, t] = np.log10(np.maximum(filters @ np.abs(spectrum) ** 2, 1e-10))
    return (np.maximum(log_mel, log_mel.max() - 8.0) + 4.0) / 4.0


def test_constants_are_the_models_input_geometry() -> None:
    assert SMART_TURN_WINDOW_SAMPLES == WINDOW
    assert (SMART_TURN_N_MELS, SMART_TURN_FRAMES) == SHAPE


@pytest.mark.parametrize("samples", [1, 160, 16_000, 127_999, 128_000, 128_001, 200_000])
def test_any_length_gives_80_by_800_float32(samples: int) -> None:
    features = smart_turn_features(_noise(samples, seed=samples))
    assert features.shape == SHAPE
    assert features.dtype == np.float32
    assert np.isfinite(features).all()


@pytest.mark.parametrize("samples", [4_000, 50_000, 128_000, 170_000])
def test_features_agree_with_a_plain_float64_reference(samples: int) -> None:
    pcm = _noise(samples, seed=7)
    pcm[: samples // 3] //= 8  # a quieter start, so frames differ in level
    np.testing.assert_allclose(smart_turn_features(pcm), _reference_features(pcm), atol=1e-4)


def test_speech_features_agree_with_the_reference() -> None:
    speech = synthesize("Can you tell me what the weather is like today?")
    np.testing.assert_allclose(smart_turn_features(speech), _reference_features(speech), atol=1e-4)


def test_a_short_turn_is_padded_at_the_start_so_its_end_is_the_windows_end() -> None:
    pcm = _noise(48_000, seed=1)
    window = smart_turn_window(pcm)
    assert window.shape == (WINDOW,) and window.dtype == np.float32
    # The padding is the normalised zero: one constant value over the first 80 000 samples.
    padding = window[: WINDOW - pcm.size]
    assert np.all(padding == padding[0])
    # The audio is the end of the window, an affine image of the input.
    audio = pcm.astype(np.float64) / 32768.0
    slope = np.std(window[-pcm.size :]) / np.std(audio)
    np.testing.assert_allclose(window[-pcm.size :], padding[0] + slope * audio, atol=1e-4)
    # In the features: the padded frames are all alike and quieter than the audio's frames.
    features = smart_turn_features(pcm)
    assert np.all(features[:, 10:490] == features[:, 10:11])
    assert features[:, 510:].mean() > features[:, 10:490].mean() + 1.0


def test_only_the_last_8_seconds_count() -> None:
    pcm = _noise(200_000, seed=2)
    np.testing.assert_array_equal(smart_turn_features(pcm), smart_turn_features(pcm[-WINDOW:]))
    changed = pcm.copy()
    changed[: 200_000 - WINDOW] = 0
    np.testing.assert_array_equal(smart_turn_features(changed), smart_turn_features(pcm))


def test_window_is_normalised_to_zero_mean_and_unit_variance() -> None:
    pcm = (_noise(60_000, seed=3) // 2 + 1000).astype(np.int16)  # a DC offset, too
    window = smart_turn_window(pcm).astype(np.float64)
    padded = np.concatenate([np.zeros(WINDOW - pcm.size), pcm / 32768.0])
    assert window.mean() == pytest.approx(0.0, abs=1e-5)
    # unit variance but for the 1e-7 added to the variance before dividing
    expected_std = np.sqrt(padded.var() / (padded.var() + 1e-7))
    assert window.std() == pytest.approx(expected_std, abs=1e-6)
    assert expected_std < 1.0 - 1e-5


def test_loudness_does_not_matter() -> None:
    loud = _noise(40_000, seed=4).astype(np.float32) / 32768.0
    quiet = loud / np.float32(4.0)  # 12 dB down (much more and the 1e-7 starts to count)
    np.testing.assert_allclose(smart_turn_features(loud), smart_turn_features(quiet), atol=1e-4)


def test_silence_is_the_floor_everywhere() -> None:
    # All zeros normalise to all zeros: every mel power is clamped at 1e-10.
    for pcm in (np.zeros(16_000, dtype=np.int16), np.zeros(0, dtype=np.int16)):
        np.testing.assert_allclose(smart_turn_features(pcm), np.full(SHAPE, -1.5), atol=1e-6)


def test_int16_and_float32_inputs_agree() -> None:
    pcm = _noise(30_000, seed=5)
    np.testing.assert_allclose(
        smart_turn_features(pcm),
        smart_turn_features(pcm.astype(np.float32) / 32768.0),
        atol=1e-6,
    )


def test_batch_stacks_the_features_of_each_turn() -> None:
    turns = [_noise(n, seed=n) for n in (1_000, 64_000, 150_000)]
    batch = smart_turn_feature_batch(turns)
    assert batch.shape == (3, *SHAPE) and batch.dtype == np.float32
    for index, pcm in enumerate(turns):
        np.testing.assert_array_equal(batch[index], smart_turn_features(pcm))
    assert smart_turn_feature_batch([]).shape == (0, *SHAPE)


def test_rejects_what_is_not_mono_int16_or_float32() -> None:
    with pytest.raises(ValueError, match="mono"):
        smart_turn_features(np.zeros((2, 100), dtype=np.int16))
    with pytest.raises(TypeError, match="int16 or float32"):
        smart_turn_features(np.zeros(100, dtype=np.float64))
