"""Prosody and voice-quality statistics: how the melody, the loudness, the spectral tilt and the rhythm of a voice
move, measured so that they say little about *who* speaks.

30 values per utterance (:func:`prosody_names`), from the arrays :mod:`preprocessing.audio` already computes
(its 64 ms / 40 ms power spectrogram, frame levels, periodicity and YIN F0), so they cost about 1 ms:

========================  ==========================================================================
names                     meaning (unit)
========================  ==========================================================================
f0st_std/p10/p90/mad      F0 of voiced frames in semitones re the utterance's median F0: spread,
                          10th/90th percentile, mean absolute frame-to-frame change (per 40 ms)
f0st_range                5th-95th percentile span of the same (semitones)
hnr_mean/std/p90          harmonics-to-noise ratio of voiced frames, 10 log10(r / (1 - r)) of the
                          periodicity r (dB)
loudv_mean/std/p10/mad    frame level of voiced frames re the loudest voiced frame (dB)
louda_mean/std/p10/mad    the same over active frames (voiced or not)
alpha_mean/std            alpha ratio of voiced frames: energy 50-1000 Hz over 1-5 kHz (dB)
hamm_mean/std             Hammarberg index of voiced frames: strongest bin below 2 kHz over 2-5 kHz (dB)
slope0500_mean/std        spectral slope 0-500 Hz of voiced frames (dB/Hz, least squares)
slope5001500_mean/std     spectral slope 500-1500 Hz of voiced frames (dB/Hz)
alpha_unvoiced_mean       alpha ratio of active unvoiced frames (dB)
active_seconds            duration of the active frames (s)
voiced_fraction_active    share of active frames that are voiced
peak_rate                 level peaks per active second (a syllable-rate proxy, 1/s)
voiced_run_mean           mean length of voiced stretches (s)
voiced_run_rate           voiced stretches per active second (1/s)
========================  ==========================================================================

Active frames are within 40 dB of the loudest frame and at least 10 dB above the clip's background (10th
percentile of frame levels), or, when that bar is higher, within 10 dB of the loudest frame (so a steady
sound keeps its frames). Voiced frames are active frames with a
periodicity of at least 0.5 and a finite F0. Relative measures (semitones re the median, dB re the loudest
frame, band ratios) were chosen because absolute pitch and level mostly tell speakers apart.

Why: appended to the MFCC functionals and the log-mel statistics, these raised the voice's out-of-fold UAR on
unseen speakers (six speaker-disjoint folds of RAVDESS, EmoDB and URDU; docs/DESIGN.md, "Prosody and voice
quality"). A clip without voiced frames gets zeros for the voiced statistics.
"""

import numpy as np

from preprocessing.constants import HOP_LENGTH, SAMPLE_RATE

#: Active frames: within this many dB of the loudest frame ...
ACTIVE_BELOW_PEAK_DB = 40.0
#: ... and this many dB above the background (10th percentile of frame levels) ...
ACTIVE_ABOVE_FLOOR_DB = 10.0
#: ... unless that is higher than this many dB below the loudest frame (a steady sound keeps its frames).
ACTIVE_WITHIN_PEAK_DB = 10.0
#: Voiced frames: periodicity at least this.
VOICED_PERIODICITY = 0.5
#: A level peak counts towards :data:`peak_rate` when this many dB above the background.
PEAK_ABOVE_FLOOR_DB = 15.0

_STATS = {
    "mean": np.mean, "std": np.std,
    "p10": lambda x: np.percentile(x, 10), "p90": lambda x: np.percentile(x, 90),
    "mad": lambda x: np.mean(np.abs(np.diff(x))) if x.size > 1 else 0.0,
}
_GROUPS = (
    ("f0st", ("std", "p10", "p90", "mad")), ("f0st", ("range",)), ("hnr", ("mean", "std", "p90")),
    ("loudv", ("mean", "std", "p10", "mad")), ("louda", ("mean", "std", "p10", "mad")),
    ("alpha", ("mean", "std")), ("hamm", ("mean", "std")), ("slope0500", ("mean", "std")),
    ("slope5001500", ("mean", "std")),
)
_SCALARS = ("alpha_unvoiced_mean", "active_seconds", "voiced_fraction_active", "peak_rate", "voiced_run_mean",
            "voiced_run_rate")


def prosody_names():
    """Names of :func:`prosody_statistics`'s values, in order (30)."""
    return [f"{group}_{stat}" for group, stats in _GROUPS for stat in stats] + list(_SCALARS)


def prosody_statistics(power, level_db, periodicity, f0):
    """The 30 prosody and voice-quality statistics of one utterance.

    Parameters
    ----------
    power : np.ndarray [shape=(N_FFT // 2 + 1, T)]
        Power spectrogram (:func:`preprocessing.audio_frames.power_spectrogram`: 1024-point frames, hop 640
        samples at 16 kHz).
    level_db : np.ndarray [shape=(T,)]
        Frame levels in dBFS (:func:`preprocessing.audio_frames.frame_level_and_zcr`).
    periodicity : np.ndarray [shape=(T,)]
        Voicing strength in [0, ~1] (:func:`preprocessing.audio_frames.periodicity`).
    f0 : np.ndarray [shape=(T,)]
        YIN F0 in Hz per frame.

    Returns
    -------
    np.ndarray [shape=(30,), dtype=float64]
        Finite, in the order of :func:`prosody_names`.
    """
    freqs = np.linspace(0.0, SAMPLE_RATE / 2, power.shape[0])
    floor, peak = np.percentile(level_db, 10), np.max(level_db)
    active = level_db >= min(max(floor + ACTIVE_ABOVE_FLOOR_DB, peak - ACTIVE_BELOW_PEAK_DB), peak - ACTIVE_WITHIN_PEAK_DB)
    voiced = active & (periodicity >= VOICED_PERIODICITY) & np.isfinite(f0)
    any_voiced = bool(voiced.any())
    values = {}

    semitones = 12 * np.log2(f0[voiced] / np.median(f0[voiced])) if any_voiced else np.zeros(1)
    _add(values, "f0st", semitones, ("std", "p10", "p90", "mad"))
    values["f0st_range"] = np.percentile(semitones, 95) - np.percentile(semitones, 5)
    ratio = np.clip(periodicity[voiced], 1e-3, 0.999) if any_voiced else np.full(1, 0.5)
    _add(values, "hnr", 10 * np.log10(ratio / (1 - ratio)), ("mean", "std", "p90"))
    voiced_level = level_db[voiced] if any_voiced else np.zeros(1)
    _add(values, "loudv", voiced_level - voiced_level.max(), ("mean", "std", "p10", "mad"))
    active_level = level_db[active]
    _add(values, "louda", active_level - active_level.max(), ("mean", "std", "p10", "mad"))

    voiced_power = power[:, voiced] if any_voiced else power[:, :1]
    _add(values, "alpha", _band_db(voiced_power, freqs, 50, 1000) - _band_db(voiced_power, freqs, 1000, 5000),
         ("mean", "std"))
    low, high = freqs < 2000, (freqs >= 2000) & (freqs < 5000)
    hammarberg = 10 * np.log10(voiced_power[low].max(axis=0) + 1e-10) - 10 * np.log10(voiced_power[high].max(axis=0)
                                                                                       + 1e-10)
    _add(values, "hamm", hammarberg, ("mean", "std"))
    _add(values, "slope0500", _slope_db(voiced_power, freqs, 0, 500), ("mean", "std"))
    _add(values, "slope5001500", _slope_db(voiced_power, freqs, 500, 1500), ("mean", "std"))

    unvoiced_power = power[:, active & ~voiced]
    values["alpha_unvoiced_mean"] = (np.mean(_band_db(unvoiced_power, freqs, 50, 1000)
                                             - _band_db(unvoiced_power, freqs, 1000, 5000))
                                     if unvoiced_power.shape[1] else 0.0)
    seconds = active.sum() * HOP_LENGTH / SAMPLE_RATE
    per_second = max(seconds, HOP_LENGTH / SAMPLE_RATE)
    values["active_seconds"] = seconds
    values["voiced_fraction_active"] = voiced.sum() / max(active.sum(), 1)
    smooth = np.convolve(level_db, np.ones(3) / 3, mode="same")
    peaks = ((smooth[1:-1] > smooth[:-2]) & (smooth[1:-1] >= smooth[2:]) & active[1:-1]
             & (smooth[1:-1] > floor + PEAK_ABOVE_FLOOR_DB))
    values["peak_rate"] = peaks.sum() / per_second
    edges = np.diff(np.concatenate([[0], voiced.astype(int), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = (ends - starts) * HOP_LENGTH / SAMPLE_RATE if starts.size else np.zeros(1)
    values["voiced_run_mean"] = lengths.mean()
    values["voiced_run_rate"] = starts.size / per_second
    out = np.array([values[name] for name in prosody_names()], np.float64)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def _add(values, group, series, stats):
    for stat in stats:
        values[f"{group}_{stat}"] = _STATS[stat](series)


def _band_db(power, freqs, low_hz, high_hz):
    """Energy per frame between ``low_hz`` and ``high_hz`` (dB)."""
    return 10 * np.log10(power[(freqs >= low_hz) & (freqs < high_hz)].sum(axis=0) + 1e-10)


def _slope_db(power, freqs, low_hz, high_hz):
    """Least-squares slope per frame of the dB spectrum between ``low_hz`` and ``high_hz`` (dB/Hz)."""
    band = (freqs >= low_hz) & (freqs < high_hz)
    centred = freqs[band] - freqs[band].mean()
    db = 10 * np.log10(power[band] + 1e-10)
    return (centred[:, None] * (db - db.mean(axis=0))).sum(axis=0) / (centred ** 2).sum()
