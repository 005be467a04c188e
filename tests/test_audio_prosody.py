"""Prosody and voice-quality statistics (preprocessing.audio_prosody), through audio_functionals on synthetic
voices whose melody, level and rhythm are known."""

import numpy as np
import pytest

from preprocessing.audio import audio_functionals, feature_names
from preprocessing.audio_prosody import prosody_names

SR = 16000


def _voice(f0_start, f0_end, seconds=1.5, gain=0.3, pause=0.0):
    """A harmonic 'vowel' (up to 40 harmonics below 7.5 kHz, 1/k amplitudes) gliding from f0_start to f0_end Hz
    (log scale), then ``pause`` seconds of near silence and the same vowel again when pause > 0."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = f0_start * (f0_end / f0_start) ** (t / seconds)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    vowel = sum(np.sin(k * phase) / k for k in range(1, min(40, int(7500 // max(f0_start, f0_end))) + 1))
    y = gain * vowel / np.max(np.abs(vowel))
    if pause:
        y = np.concatenate([y, 1e-4 * np.random.default_rng(0).normal(size=int(pause * SR)), y])
    return y.astype(np.float32)


def _prosody(y):
    values, _ = audio_functionals(y)
    return dict(zip(prosody_names(), values[1795:1825]))


def test_names_follow_the_log_mel_statistics():
    assert feature_names()[1795:1825] == prosody_names() and len(set(prosody_names())) == 30


def test_a_glide_of_an_octave_spans_about_twelve_semitones_whatever_the_voice():
    low, high = _prosody(_voice(100, 200)), _prosody(_voice(200, 400))
    for p in (low, high):
        assert 9.5 < p["f0st_range"] < 12.5 and p["f0st_p10"] < -3 < 3 < p["f0st_p90"]
    assert low["f0st_std"] == pytest.approx(high["f0st_std"], abs=0.5)  # relative to the speaker's own median
    flat = _prosody(_voice(150, 150))
    assert flat["f0st_range"] < 1.0 and flat["hnr_mean"] > 10  # a clean steady vowel: no melody, little noise


def test_level_statistics_do_not_depend_on_the_recording_gain():
    quiet, loud = _prosody(_voice(120, 180, gain=0.05)), _prosody(_voice(120, 180, gain=0.5))
    for name in ("loudv_mean", "loudv_std", "louda_p10", "alpha_mean", "hamm_mean"):
        assert quiet[name] == pytest.approx(loud[name], abs=0.3), name


def test_rhythm_counts_the_voiced_stretches():
    one, two = _prosody(_voice(150, 160, seconds=0.8)), _prosody(_voice(150, 160, seconds=0.8, pause=0.6))
    assert one["voiced_run_rate"] == pytest.approx(1 / one["active_seconds"], rel=0.2)
    assert two["active_seconds"] == pytest.approx(2 * one["active_seconds"], rel=0.15)
    assert two["voiced_run_mean"] == pytest.approx(one["voiced_run_mean"], rel=0.15)
    assert 0.9 < two["voiced_fraction_active"] <= 1.0


def test_silence_and_noise_give_finite_values():
    for y in (np.zeros(SR, np.float32), np.random.default_rng(1).normal(0, 0.1, SR).astype(np.float32)):
        values = np.array(list(_prosody(y).values()))
        assert np.all(np.isfinite(values))
