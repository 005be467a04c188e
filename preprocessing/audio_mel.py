"""Log-mel band statistics: the spectral envelope of a voice and how fast it moves.

64 mel bands (50 Hz - 8 kHz) on short speech frames (25 ms Hann window, 10 ms hop,
512-point FFT), natural log of the band power (floor 1e-6), then five statistics per
band over the utterance (:data:`MEL_STATS`): mean, standard deviation, 10th and 90th
percentiles, and the standard deviation of the frame-to-frame difference (how fast
the band changes, per 10 ms). 64 x 5 = 320 values, named ``logmelKK_<stat>``.

Why, beside the MFCC functionals of :mod:`preprocessing.audio`: MFCCs are a
truncated cosine transform of 40 ms frames, so spreads and fast changes of single
bands are lost. Added to the 1,475 functionals, these 320 values raised speaker-
independent voice UAR with every classifier tried (logistic regression, RBF SVM,
MLP), by 2-5 points on RAVDESS, EmoDB and URDU (six speaker-disjoint folds over the
52 speakers; docs/DESIGN.md, "Voice features").

:func:`preprocessing.audio.audio_functionals` appends them after its own values, so
the first 1,475 values are unchanged and models fitted on them keep working.
"""

import librosa
import numpy as np

from preprocessing.constants import SAMPLE_RATE

#: Mel bands, their frequency range in Hz, and the framing (samples at 16 kHz).
MEL_BANDS = 64
MEL_FMIN_HZ = 50.0
MEL_FMAX_HZ = 8000.0
MEL_N_FFT = 512
MEL_WINDOW = 400   # 25 ms
MEL_HOP = 160      # 10 ms
#: Floor added to the band power before the log.
MEL_FLOOR = 1e-6

#: Statistics per band, in vector order.
MEL_STATS = ("mean", "std", "p10", "p90", "delta_std")


def logmel_names():
    """Names of :func:`logmel_statistics`'s values, stat-major: ``logmel00_mean`` ... ``logmel63_delta_std`` (320)."""
    return [f"logmel{band:02d}_{stat}" for stat in MEL_STATS for band in range(MEL_BANDS)]


def logmel_statistics(y):
    """Five statistics of each log-mel band over a 16 kHz mono signal.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,), dtype=float32]
        Finite samples at :data:`~preprocessing.constants.SAMPLE_RATE`; at least one
        window long (callers pad, as :func:`preprocessing.audio_frames.pad_to_window`).

    Returns
    -------
    np.ndarray [shape=(320,), dtype=float64]
        In the order of :func:`logmel_names`; log band power in nepers of power
        (natural log), the delta spread per 10 ms frame; 0 where a band is constant.
    """
    power = librosa.feature.melspectrogram(
        y=np.asarray(y, np.float32), sr=SAMPLE_RATE, n_fft=MEL_N_FFT, hop_length=MEL_HOP, win_length=MEL_WINDOW,
        n_mels=MEL_BANDS, fmin=MEL_FMIN_HZ, fmax=MEL_FMAX_HZ)
    logmel = np.log(power.astype(np.float64) + MEL_FLOOR)          # (bands, frames)
    low, high = np.percentile(logmel, (10.0, 90.0), axis=1)
    change = np.diff(logmel, axis=1).std(axis=1) if logmel.shape[1] > 1 else np.zeros(MEL_BANDS)
    return np.concatenate([logmel.mean(axis=1), logmel.std(axis=1), low, high, change])
