"""Step-Audio's log-mel front end: filterbank, framing, scaling, and the streaming version."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tokenizer.signals import tone
from tokenizer.mel import (
    HOP_LENGTH,
    N_MELS,
    STEP_AUDIO_PADDING,
    LogMelStream,
    hann_window,
    hz_to_mel,
    log10_mel_spectrogram,
    log_mel_spectrogram,
    mel_band_edges_hz,
    mel_filterbank,
    mel_to_hz,
)


@pytest.fixture(scope="module")
def filters() -> np.ndarray:
    return mel_filterbank()


def _noisy_tone(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 800, round(seconds * 16000))
    return np.clip(tone(440.0, seconds, 16000, 0.3) + noise, -32768, 32767).astype(np.int16)


def test_filterbank_matches_librosa_slaney_reference_values(filters: np.ndarray) -> None:
    # Values printed by librosa 0.11: librosa.filters.mel(sr=16000, n_fft=400, n_mels=128),
    # the matrix Whisper and Step-Audio load.
    assert filters.shape == (128, 201)
    assert filters.dtype == np.float32
    assert float(filters.sum()) == pytest.approx(3.190985679626465, rel=1e-6)
    assert filters[0, 1] == pytest.approx(0.012373986653983593, rel=1e-5)
    assert filters[41, 25] == pytest.approx(0.010202637873589993, rel=1e-5)
    assert filters[42, 25] == pytest.approx(0.03161146119236946, rel=1e-5)
    assert filters[127, 195] == pytest.approx(0.005041601601988077, rel=1e-5)
    assert filters[10, 5] == 0.0
    assert float(filters.max()) == pytest.approx(0.04168175, rel=1e-5)


def _two_tones_fading_out() -> np.ndarray:
    t = np.arange(8000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    x[4000:] *= np.linspace(1, 0.01, 4000).astype(np.float32)
    return x


@pytest.mark.parametrize(
    ("padding", "frames", "means", "bin_18", "bin_87"),
    [
        (
            0,
            [0, 1, 25, 48, 49],
            [0.46933, -0.00427, -0.47408, -0.51354, -0.52247],
            [0.63903, 1.37169, 1.37282, 0.84905, 0.72057],
            [0.9343, 1.02373, 1.02328, 0.50114, 0.37739],
        ),
        (
            STEP_AUDIO_PADDING,
            [0, 25, 49, 50, 51],
            [0.46933, -0.47408, -0.52261, -0.4703, -0.62557],
            [0.63903, 1.37282, 0.72093, 0.41848, -0.62557],
            [0.9343, 1.02328, 0.37734, 0.10516, -0.62557],
        ),
    ],
)
def test_features_match_a_librosa_whisper_reference(
    padding: int,
    frames: list[int],
    means: list[float],
    bin_18: list[float],
    bin_87: list[float],
    filters: np.ndarray,
) -> None:
    # Reference: librosa 0.11 stft(n_fft=400, hop_length=160, window="hann", center=True,
    # pad_mode="reflect") of the zero-padded signal, last frame dropped, |X|^2, the librosa
    # mel filters, then Whisper's log10 / max - 8 / (x + 4) / 4. Frames 0 and the last ones
    # check the reflect padding at both ends.
    features = log_mel_spectrogram(_two_tones_fading_out(), padding, filters)
    assert features.shape == (128, (8000 + padding) // 160)
    np.testing.assert_allclose(features[:, frames].mean(axis=0), means, atol=2e-5)
    np.testing.assert_allclose(features[18, frames], bin_18, atol=2e-5)
    np.testing.assert_allclose(features[87, frames], bin_87, atol=2e-5)


def test_slaney_scale_is_linear_below_1khz_and_logarithmic_above() -> None:
    assert hz_to_mel(1000.0) == pytest.approx(15.0)
    assert hz_to_mel(500.0) == pytest.approx(7.5)
    assert hz_to_mel(6400.0) == pytest.approx(42.0)  # 27 mel per factor 6.4 above 1 kHz
    frequencies = np.array([0.0, 100.0, 999.0, 1000.0, 4321.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(frequencies)), frequencies, atol=1e-9)


def test_band_edges_match_librosa_mel_frequencies() -> None:
    edges = mel_band_edges_hz()
    assert edges.size == N_MELS + 2
    # librosa.mel_frequencies(130, fmin=0, fmax=8000)[40:45]
    np.testing.assert_allclose(
        edges[40:45], [935.31039735, 958.69315729, 982.07591722, 1005.64528123, 1030.19025724]
    )


def test_window_is_periodic_hann() -> None:
    window = hann_window()
    assert window[0] == 0.0
    assert window[200] == pytest.approx(1.0)
    assert window[100] == pytest.approx(0.5, abs=1e-6)
    assert window[399] == pytest.approx(window[1])


@pytest.mark.parametrize("n", [0, 159, 160, 161, 16000, 16080, 47999])
def test_frame_count_is_length_over_hop(n: int, filters: np.ndarray) -> None:
    features = log_mel_spectrogram(np.zeros(n, dtype=np.int16), filters=filters)
    assert features.shape == (N_MELS, n // HOP_LENGTH)


def test_step_audio_padding_adds_two_frames_for_ten_seconds(filters: np.ndarray) -> None:
    features = log_mel_spectrogram(np.zeros(160_000, dtype=np.int16), STEP_AUDIO_PADDING, filters)
    assert features.shape == (128, 1002)


@pytest.mark.parametrize("freq_hz", [250.0, 700.0, 1000.0, 2000.0, 3000.0, 6000.0])
def test_tone_peaks_in_the_mel_bin_whose_band_contains_it(
    freq_hz: float, filters: np.ndarray
) -> None:
    features = log_mel_spectrogram(tone(freq_hz, 0.5, 16000), filters=filters)
    peak_bin = int(np.bincount(features.argmax(axis=0)).argmax())
    edges = mel_band_edges_hz()
    assert edges[peak_bin] < freq_hz < edges[peak_bin + 2]


def test_1khz_tone_peaks_in_bin_42(filters: np.ndarray) -> None:
    # Bin 42 spans 982-1031 Hz with its centre at 1005.6 Hz (librosa band edges above).
    features = log_mel_spectrogram(tone(1000.0, 0.5, 16000), filters=filters)
    assert set(features.argmax(axis=0)[2:-2].tolist()) == {42}


def test_whisper_scaling_puts_the_maximum_at_its_value_and_floors_8_decades_below(
    filters: np.ndarray,
) -> None:
    audio = _noisy_tone(1.0, seed=3)
    raw = log10_mel_spectrogram(audio, filters=filters)
    scaled = log_mel_spectrogram(audio, filters=filters)
    peak = float(raw.max())
    assert float(scaled.max()) == pytest.approx((peak + 4) / 4, abs=1e-5)
    assert float(scaled.min()) >= (peak - 8 + 4) / 4 - 1e-5
    unclamped = raw > peak - 8
    np.testing.assert_allclose(scaled[unclamped], (raw[unclamped] + 4) / 4, atol=1e-5)


def test_digital_silence_scales_to_minus_1_5(filters: np.ndarray) -> None:
    features = log_mel_spectrogram(np.zeros(1600, dtype=np.int16), filters=filters)
    np.testing.assert_allclose(features, (-10 + 4) / 4, atol=1e-6)  # log10(1e-10) == -10


def test_int16_and_float32_inputs_agree(filters: np.ndarray) -> None:
    audio = _noisy_tone(0.5, seed=4)
    as_float = audio.astype(np.float32) / 32768
    np.testing.assert_allclose(
        log_mel_spectrogram(audio, filters=filters),
        log_mel_spectrogram(as_float, filters=filters),
        atol=1e-6,
    )


def _stream_in_random_pieces(stream: LogMelStream, audio: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    outputs = []
    position = 0
    while position < audio.size:
        size = int(rng.integers(0, 700))
        frames = stream.push(audio[position : position + size])
        assert frames.shape[0] == N_MELS
        outputs.append(frames)
        position += size
    outputs.append(stream.flush())
    return np.concatenate(outputs, axis=1)


@pytest.mark.parametrize("padding", [0, STEP_AUDIO_PADDING])
def test_streaming_unscaled_frames_equal_one_shot(padding: int, filters: np.ndarray) -> None:
    audio = _noisy_tone(1.37, seed=5)
    streamed = _stream_in_random_pieces(LogMelStream(padding, False, filters), audio, seed=1)
    one_shot = log10_mel_spectrogram(audio, padding, filters)
    assert streamed.shape == one_shot.shape == (128, (audio.size + padding) // 160)
    np.testing.assert_allclose(streamed, one_shot, atol=1e-5)


def test_streaming_scaled_frames_equal_one_shot_once_the_loudest_frame_is_seen(
    filters: np.ndarray,
) -> None:
    audio = _noisy_tone(1.0, seed=6)
    audio[:3200] = tone(440.0, 0.2, 16000, amplitude=0.9)  # the loudest part comes first
    streamed = _stream_in_random_pieces(LogMelStream(filters=filters), audio, seed=2)
    np.testing.assert_allclose(streamed, log_mel_spectrogram(audio, filters=filters), atol=1e-5)


def test_stream_returns_each_frame_as_soon_as_its_window_is_complete(filters: np.ndarray) -> None:
    stream = LogMelStream(filters=filters)
    # Frame 0 reflects samples 1..200 to its left, so it needs 201 samples; frame t >= 1 is
    # centred on sample 160 t and needs the samples before 160 t + 200.
    assert stream.push(np.zeros(200, dtype=np.int16)).shape[1] == 0
    assert stream.push(np.zeros(1, dtype=np.int16)).shape[1] == 1
    assert stream.push(np.zeros(158, dtype=np.int16)).shape[1] == 0
    assert stream.push(np.zeros(1, dtype=np.int16)).shape[1] == 1
    assert stream.frames_emitted == 2
    # 20 ms pushes give two frames each once running
    assert stream.push(np.zeros(320, dtype=np.int16)).shape[1] == 2


@pytest.mark.parametrize("n", [1, 2, 150, 160, 200, 201, 399, 400, 401, 1000])
@pytest.mark.parametrize("padding", [0, STEP_AUDIO_PADDING])
def test_stream_handles_very_short_signals(n: int, padding: int, filters: np.ndarray) -> None:
    audio = np.random.default_rng(n).normal(0, 0.1, n).astype(np.float32)
    stream = LogMelStream(padding, False, filters)
    streamed = np.concatenate(
        [stream.push(audio[: n // 2]), stream.push(audio[n // 2 :]), stream.flush()], axis=1
    )
    np.testing.assert_allclose(streamed, log10_mel_spectrogram(audio, padding, filters), atol=1e-4)


def test_flush_starts_a_new_signal_and_reset_forgets_the_old_one(filters: np.ndarray) -> None:
    first = _noisy_tone(0.3, seed=8)
    second = _noisy_tone(0.4, seed=9)
    stream = LogMelStream(normalize=False, filters=filters)
    np.concatenate([stream.push(first), stream.flush()], axis=1)
    again = np.concatenate([stream.push(second), stream.flush()], axis=1)
    np.testing.assert_allclose(again, log10_mel_spectrogram(second, filters=filters), atol=1e-5)
    stream.push(first)
    stream.reset()
    assert stream.frames_emitted == 0
    after_reset = np.concatenate([stream.push(second), stream.flush()], axis=1)
    np.testing.assert_allclose(after_reset, again, atol=1e-6)


def test_speech_features_have_the_expected_shape(speech_16k: np.ndarray) -> None:
    features = log_mel_spectrogram(speech_16k, STEP_AUDIO_PADDING)
    assert features.shape == (128, (speech_16k.size + 479) // 160)
    assert np.isfinite(features).all()
    # speech energy sits in the lower half of the mel range
    assert features[:64].mean() > features[64:].mean()
