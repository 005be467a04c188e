"""Audio functionals and the frame-level MFCC sequence: names, values on known signals, edge cases, errors."""

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from preprocessing import audio
from preprocessing.audio_mel import logmel_names, logmel_statistics
from preprocessing.audio_prosody import prosody_names
from preprocessing.audio_voice_encoder import voice_encoder_names
from preprocessing.constants import EARLIER_WIDTHS, FPS, HOP_LENGTH, LEGACY_WIDTH, N_MFCC, SAMPLE_RATE
from preprocessing.errors import ConfigError

from conftest import CREMA_D

SR = SAMPLE_RATE


def tone(freq_hz, *, seconds=2.0, amplitude=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def chirp(f_start, f_end, *, seconds=3.0, amplitude=0.3):
    """Linear sweep from f_start to f_end Hz."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * (f_start * t + 0.5 * (f_end - f_start) / seconds * t ** 2)
    return (amplitude * np.sin(phase)).astype(np.float32)


def noise(*, seconds=2.0, amplitude=0.1, seed=0):
    return (amplitude * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def named(y, **kwargs):
    features, names = audio.audio_functionals(y, **kwargs)
    return dict(zip(names, features.tolist()))


def decode_audio(path):
    """16 kHz mono float32 straight from the ffmpeg binary (no project code involved)."""
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    cmd = [exe, "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", str(SR), "-"]
    return np.frombuffer(subprocess.run(cmd, check=True, capture_output=True).stdout, dtype=np.float32)


SIGNALS = {
    "sine": lambda: tone(220.0),
    "noise": lambda: noise(),
    "silence": lambda: np.zeros(2 * SR, dtype=np.float32),
    "empty": lambda: np.zeros(0, dtype=np.float32),
    "one_sample": lambda: np.array([0.5], dtype=np.float32),
    "shorter_than_hop": lambda: noise(seconds=0.01),
    "shorter_than_window": lambda: tone(300.0, seconds=0.05),
    "constant": lambda: np.full(SR, 0.5, dtype=np.float32),
    "full_scale_square": lambda: np.sign(tone(150.0)).astype(np.float32),
    "float64_input": lambda: noise().astype(np.float64),
}


# --- names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n_mfcc", [1, 13, N_MFCC, audio.N_MELS])
def test_names_match_vector_and_are_unique(n_mfcc):
    names = audio.feature_names(n_mfcc=n_mfcc)
    features, returned = audio.audio_functionals(noise(seconds=1.0), n_mfcc=n_mfcc)
    assert returned == names
    assert features.shape == (len(names),) and features.dtype == np.float32
    assert len(set(names)) == len(names)
    assert len(names) == (3 * n_mfcc + 14) * len(audio.FUNCTIONALS) + 1 + 320 + 30 + 1536


def test_default_vector_is_the_legacy_functionals_then_log_mel_prosody_and_voice_encoder_statistics():
    names = audio.feature_names()
    assert len(names) == 3361 and names[LEGACY_WIDTH - 1] == "pitch_voiced_fraction"
    assert names[LEGACY_WIDTH:1795] == logmel_names() and names[LEGACY_WIDTH] == "logmel00_mean"
    assert names[1795:1825] == prosody_names() and names[1825:] == voice_encoder_names()
    assert EARLIER_WIDTHS == (LEGACY_WIDTH, 1795, 1825)


def test_log_mel_statistics_follow_the_spectrum():
    """A 1 kHz tone: its band is the loudest on average and steady; noise bursts change fastest."""
    t = np.arange(16000) / 16000
    tone_stats = logmel_statistics((0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)).reshape(5, 64)
    means, deltas = tone_stats[0], tone_stats[4]
    loudest = int(np.argmax(means))
    assert 20 <= loudest <= 35  # 1 kHz lies in the lower third of 64 mel bands from 50 Hz to 8 kHz
    bursts = noise(seconds=1.0) * np.repeat(np.tile([1.0, 0.0], 10), 800).astype(np.float32)
    burst_deltas = logmel_statistics(bursts).reshape(5, 64)[4]
    assert np.median(burst_deltas) > 3 * np.median(deltas)  # measured 3.4 against 0.7 (the tone moves only at its ends)


@pytest.mark.parametrize("name", [
    "mfcc00_mean", "mfcc03_mean", "mfcc39_p50", "mfcc03_d_std", "mfcc03_dd_slope", "rms_p90",
    "zcr_kurtosis", "pitch_mean", "spectral_centroid_max", "spectral_bandwidth_min",
    "spectral_rolloff_p10", "spectral_flatness_skewness", "spectral_contrast2_range",
    "spectral_contrast6_std", "pitch_voiced_fraction",
])
def test_expected_names_present(name):
    assert name in audio.feature_names()


def test_silent_functionals_is_zero_vector_of_the_right_length():
    for n_mfcc in (13, N_MFCC):
        silent = audio.silent_functionals(n_mfcc=n_mfcc)
        assert silent.dtype == np.float32 and silent.shape == (len(audio.feature_names(n_mfcc=n_mfcc)),)
        assert not silent.any()


# --- values ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(SIGNALS))
def test_functionals_finite_for_any_signal(kind):
    features, _ = audio.audio_functionals(SIGNALS[kind]())
    assert features.shape == (3361,) and np.all(np.isfinite(features))


def test_functionals_are_deterministic():
    y = noise(seed=3) + tone(180.0)
    first, _ = audio.audio_functionals(y)
    second, _ = audio.audio_functionals(y.copy())
    np.testing.assert_array_equal(first, second)


def test_input_is_not_modified():
    y = tone(200.0) + 0.2
    before = y.copy()
    audio.audio_functionals(y)
    audio.mfcc_sequence(y)
    np.testing.assert_array_equal(y, before)


@pytest.mark.parametrize("freq", [110.0, 220.0, 330.0])
def test_sine_pitch(freq):
    f = named(tone(freq))
    assert freq * 0.97 < f["pitch_mean"] < freq * 1.03
    assert freq * 0.97 < f["pitch_p10"] <= f["pitch_p50"] <= f["pitch_p90"] < freq * 1.03
    assert f["pitch_voiced_fraction"] > 0.9


@pytest.mark.parametrize("kind", ["noise", "silence", "constant"])
def test_unvoiced_signals_have_no_pitch(kind):
    f = named(SIGNALS[kind]())
    assert f["pitch_voiced_fraction"] < 0.1
    if f["pitch_voiced_fraction"] == 0:
        assert f["pitch_mean"] == 0 and f["pitch_std"] == 0


def test_louder_signal_has_higher_rms():
    quiet, loud = named(tone(220.0, amplitude=0.05)), named(tone(220.0, amplitude=0.5))
    assert 19.0 < loud["rms_mean"] - quiet["rms_mean"] < 21.0  # 10x amplitude = +20 dB
    # A sine of amplitude 0.5 has RMS 0.5/sqrt(2): -9.03 dBFS (the median frame is inside the clip).
    assert loud["rms_p50"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.1)


def test_order_of_statistics():
    f = named(noise(seed=5) + chirp(200, 400, seconds=2.0))
    for d in ("mfcc05", "rms", "spectral_centroid", "spectral_contrast3"):
        assert f[f"{d}_min"] <= f[f"{d}_p10"] <= f[f"{d}_p50"] <= f[f"{d}_p90"] <= f[f"{d}_max"]
        assert f[f"{d}_range"] == pytest.approx(f[f"{d}_max"] - f[f"{d}_min"], rel=1e-5, abs=1e-5)
        assert f[f"{d}_std"] >= 0


@pytest.mark.parametrize("f_start,f_end", [(150.0, 400.0), (400.0, 150.0)])
def test_slope_follows_a_chirp(f_start, f_end):
    f = named(chirp(f_start, f_end, seconds=3.0))
    rate = (f_end - f_start) / 3.0  # Hz per second
    assert f["pitch_slope"] == pytest.approx(rate, rel=0.15)
    assert np.sign(f["spectral_centroid_slope"]) == np.sign(rate)


def test_slope_follows_a_loudness_ramp():
    envelope = np.linspace(0.01, 0.5, 3 * SR, dtype=np.float32)
    f = named(noise(seconds=3.0, amplitude=1.0) * envelope)
    assert f["rms_slope"] > 5.0  # dB per second: 34 dB over 3 s
    g = named(noise(seconds=3.0, amplitude=1.0) * envelope[::-1])
    assert g["rms_slope"] < -5.0


def test_constant_series_has_zero_moments():
    f = named(np.zeros(SR, dtype=np.float32))
    for d in ("rms", "mfcc00", "zcr"):
        assert f[f"{d}_std"] == 0 and f[f"{d}_skewness"] == 0 and f[f"{d}_kurtosis"] == 0
        assert f[f"{d}_slope"] == 0
    assert f["rms_mean"] == pytest.approx(audio.DB_FLOOR)


def test_white_noise_moments_and_spectrum():
    f = named(noise(seconds=4.0, seed=7))
    assert 0.4 < f["zcr_mean"] < 0.6  # white noise crosses zero every other sample
    assert 3000 < f["spectral_centroid_mean"] < 5000  # flat spectrum: centre near 4 kHz
    assert f["spectral_flatness_mean"] > 0.3
    assert abs(f["rms_slope"]) < 0.5


# --- MFCC sequence ---------------------------------------------------------------------------

@pytest.mark.parametrize("seconds", [0.04, 0.5, 1.0, 2.37, 4.0])
def test_mfcc_sequence_one_frame_per_video_frame(seconds):
    y = noise(seconds=seconds)
    seq = audio.mfcc_sequence(y)
    assert seq.dtype == np.float32 and seq.shape == (1 + y.size // HOP_LENGTH, N_MFCC)
    assert abs(seq.shape[0] - seconds * FPS) <= 1
    assert np.all(np.isfinite(seq))


@pytest.mark.parametrize("n_frames", [0, 1, 30, 50, 51, 80])
def test_mfcc_sequence_trim_or_pad(n_frames):
    y = tone(250.0, seconds=2.0)  # 51 natural frames
    full = audio.mfcc_sequence(y)
    seq = audio.mfcc_sequence(y, n_frames=n_frames, n_mfcc=N_MFCC)
    assert seq.shape == (n_frames, N_MFCC) and seq.dtype == np.float32
    keep = min(n_frames, full.shape[0])
    np.testing.assert_array_equal(seq[:keep], full[:keep])
    assert not seq[keep:].any()


def test_mfcc_sequence_of_empty_input():
    assert audio.mfcc_sequence(np.zeros(0, dtype=np.float32)).shape == (0, N_MFCC)
    seq = audio.mfcc_sequence(np.zeros(0, dtype=np.float32), n_frames=12, n_mfcc=13)
    assert seq.shape == (12, 13) and not seq.any()


def test_mfcc_sequence_matches_functionals():
    y = noise(seed=11) + tone(170.0)
    seq = audio.mfcc_sequence(y)
    f = named(y)
    for k in (0, 3, 39):
        assert seq[:, k].mean() == pytest.approx(f[f"mfcc{k:02d}_mean"], rel=1e-4, abs=1e-3)
        assert seq[:, k].max() == pytest.approx(f[f"mfcc{k:02d}_max"], rel=1e-4, abs=1e-3)


@pytest.mark.parametrize("kind", sorted(SIGNALS))
@pytest.mark.parametrize("n_frames", [None, 0, 7, 60])
def test_functionals_and_sequence_are_the_two_calls(kind, n_frames):
    """One spectrogram for both (extraction's path) gives exactly what the two functions give."""
    y = SIGNALS[kind]()
    features, seq = audio.functionals_and_sequence(y, n_frames=n_frames)
    np.testing.assert_array_equal(features, audio.audio_functionals(y)[0])
    expected = audio.mfcc_sequence(y, n_frames=n_frames)
    assert seq.dtype == expected.dtype and seq.shape == expected.shape
    np.testing.assert_array_equal(seq, expected)


def test_mfcc_sequence_is_aligned_in_time():
    # Broadband noise for the first second, silence after: the change sits at frame 25 (t = 1 s).
    # (Noise, not a tone: c0 sums log band energies, and a pure tone leaves most bands at the floor.)
    y = np.concatenate([noise(seconds=1.0), np.zeros(SR, dtype=np.float32)])
    c0 = audio.mfcc_sequence(y)[:, 0]
    # Frames 1-24 (up to 0.96 s +- 32 ms) are all noise, frames 26+ (from 1.04 s) all silence;
    # frame 25 straddles the change, as frame 0 straddles the start (half zero padding).
    loud_frames, silent_frames = c0[1:25], c0[26:]
    assert np.ptp(loud_frames) < 20 and np.ptp(silent_frames) < 1
    assert loud_frames.min() > c0[25] > silent_frames.max()
    assert loud_frames.min() > silent_frames.max() + 100


# --- silence ---------------------------------------------------------------------------------

@pytest.mark.parametrize("y,threshold_db,expected", [
    (np.zeros(SR, dtype=np.float32), -60.0, True),
    (np.zeros(0, dtype=np.float32), -60.0, True),
    (tone(440.0, amplitude=10 ** (-80 / 20)), -60.0, True),  # -80 dBFS peak
    (tone(440.0, amplitude=10 ** (-80 / 20)), -90.0, False),
    (tone(440.0, amplitude=10 ** (-20 / 20)), -60.0, False),  # -20 dBFS: normal speech level
    (tone(440.0, amplitude=10 ** (-20 / 20)), -10.0, True),
])
def test_is_silent(y, threshold_db, expected):
    assert audio.is_silent(y, threshold_db=threshold_db) is expected


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("call,match", [
    (lambda: audio.audio_functionals(np.zeros((2, 100), dtype=np.float32)), r"y must be a 1-D.*got shape \(2, 100\)"),
    (lambda: audio.audio_functionals(np.zeros(100, dtype=np.int16)), r"y must be floating point.*got dtype int16"),
    (lambda: audio.audio_functionals(np.array([0.0, np.nan, np.inf])), r"y must be finite.*got 2 NaN/inf"),
    (lambda: audio.audio_functionals(noise(), n_mfcc=0), r"n_mfcc must be an integer in \[1, 64\]: got 0"),
    (lambda: audio.audio_functionals(noise(), n_mfcc=65), r"n_mfcc must be .*got 65"),
    (lambda: audio.audio_functionals(noise(), sr=44100), r"sr must be 16000 Hz.*got 44100"),
    (lambda: audio.feature_names(n_mfcc=2.5), r"n_mfcc must be .*got 2\.5"),
    (lambda: audio.silent_functionals(n_mfcc=True), r"n_mfcc must be .*got True"),
    (lambda: audio.mfcc_sequence(noise(), n_frames=-1), r"n_frames must be None or an integer >= 0: got -1"),
    (lambda: audio.mfcc_sequence(noise(), sr=8000), r"sr must be 16000 Hz.*got 8000"),
    (lambda: audio.mfcc_sequence(np.zeros((100, 1), dtype=np.float32)), r"y must be a 1-D"),
    (lambda: audio.functionals_and_sequence(noise(), n_frames=2.0), r"n_frames must be None or an integer >= 0"),
    (lambda: audio.functionals_and_sequence(noise(), n_mfcc=65), r"n_mfcc must be .*got 65"),
    (lambda: audio.is_silent(np.zeros(10, dtype=np.float32), threshold_db=float("nan")), r"threshold_db must be a finite"),
    (lambda: audio.is_silent(np.zeros((1, 10), dtype=np.float32)), r"y must be a 1-D"),
])
def test_invalid_arguments(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


# --- real speech -----------------------------------------------------------------------------

@pytest.mark.parametrize("clip", sorted(CREMA_D.glob("*.flv")), ids=lambda p: p.stem)
def test_crema_d_clip(clip):
    y = decode_audio(clip)
    assert 1.5 * SR < y.size < 3.5 * SR
    assert not audio.is_silent(y)
    f = named(y)
    assert all(np.isfinite(v) for v in f.values())
    # Adult male speaker (CREMA-D actor 1001): one short sentence in 2-2.4 s, so voiced 15-40 %
    # of frames; F0 in the male speaking range.
    assert 0.1 < f["pitch_voiced_fraction"] < 0.8
    assert 80 < f["pitch_mean"] < 300
    assert -45 < f["rms_max"] < 0
    seq = audio.mfcc_sequence(y)
    assert abs(seq.shape[0] - y.size / SR * FPS) <= 1
