"""Frame-level audio analysis of a 16 kHz mono waveform, and the statistics that summarise a series.

The building blocks of :mod:`preprocessing.audio` (whose docstring explains the
choices), plus the two frame-level products it re-exports: :func:`mfcc_sequence`
(one MFCC row per 25 fps video frame) and :func:`is_silent`. All analysis uses
one kind of frame: centred (zero padding of ``N_FFT // 2`` on each side),
:data:`N_FFT` = 1024 samples with a Hann window, hop
:data:`~preprocessing.constants.HOP_LENGTH` = 640 samples, so frame ``i`` is
centred on sample ``640 * i`` (time ``i / 25`` s).

The helpers without ``check`` in their name expect a waveform that
:func:`check_signal` accepted.
"""

import functools
import numbers

import librosa
import numpy as np
import scipy.signal
import scipy.sparse

from preprocessing.constants import HOP_LENGTH, N_MFCC, SAMPLE_RATE
from preprocessing.errors import ConfigError

#: Analysis window and FFT size in samples (64 ms at 16 kHz); see the module docstring.
N_FFT = 1024

#: Mel bands behind the MFCCs; 64 bands over 0-8 kHz leave no empty filter at N_FFT=1024.
N_MELS = 64

#: Pitch search range in Hz: covers adult and child speaking voices.
PITCH_FMIN_HZ = 60.0
PITCH_FMAX_HZ = 500.0

#: Floor of every dB value (power 1e-10): keeps digital silence finite.
DB_FLOOR = -100.0

#: Statistics applied to each descriptor's time series, in vector order.
#: ``slope`` is the least-squares linear trend per second; ``kurtosis`` is excess
#: kurtosis (0 for a normal distribution); both moments are 0 for a constant series.
FUNCTIONALS = ("mean", "std", "min", "max", "range", "p10", "p50", "p90", "skewness", "kurtosis", "slope")

_PERCENTILES = (10.0, 50.0, 90.0)


def pad_to_window(y):
    """Zero-pad at the end so the signal holds at least one window."""
    if y.size < N_FFT:
        y = np.pad(y, (0, N_FFT - y.size))
    return y


def power_spectrogram(y):
    """Power spectrogram [shape=(1 + N_FFT // 2, 1 + len(y) // HOP_LENGTH)], centred Hann frames."""
    stft = librosa.stft(y, n_fft=N_FFT, hop_length=HOP_LENGTH, window="hann", center=True, pad_mode="constant")
    return (stft.real ** 2 + stft.imag ** 2).astype(np.float32)


@functools.lru_cache(maxsize=1)
def mel_filterbank():
    """The :data:`N_MELS`-band mel filterbank of the MFCCs, sparse [shape=(N_MELS, 1 + N_FFT // 2)].

    Built once per process (``librosa.filters.mel`` costs 0.4 ms a call, twice per clip); the same
    values every call. Callers must not modify it.
    """
    return scipy.sparse.csr_array(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS))


def mfcc_from_power(power, n_mfcc):
    """MFCCs [shape=(n_mfcc, n_frames)] from a power spectrogram."""
    # The filterbank is sparse (each bin feeds at most two bands). A sparse product
    # also stays off the multi-threaded BLAS, whose thread hand-offs cost more
    # than this small product when extraction workers already fill every core.
    mel_db = librosa.power_to_db(mel_filterbank() @ power, ref=1.0, amin=10.0 ** (DB_FLOOR / 10.0), top_db=None)
    return librosa.feature.mfcc(S=mel_db, n_mfcc=n_mfcc)


def frame_level_and_zcr(y):
    """RMS level in dBFS and zero-crossing rate per centred frame, each [shape=(n_frames,)]."""
    padded = np.pad(y, (N_FFT // 2, N_FFT // 2))
    frames = librosa.util.frame(padded, frame_length=N_FFT, hop_length=HOP_LENGTH, axis=0)
    mean_square = np.mean(frames.astype(np.float64) ** 2, axis=1)
    rms_db = 10.0 * np.log10(np.maximum(mean_square, 10.0 ** (DB_FLOOR / 10.0)))
    negative = np.signbit(frames)
    zcr = np.mean(negative[:, 1:] != negative[:, :-1], axis=1)
    return rms_db, zcr


def periodicity(power):
    """Voicing strength per frame in [0, ~1] from the power spectrogram.

    The autocorrelation of each windowed frame is the inverse FFT of its power
    spectrum; dividing by the Hann window's own autocorrelation removes the
    taper (Boersma 1993). The result is the highest local maximum of the
    normalised autocorrelation at lags between 1/PITCH_FMAX and 1/PITCH_FMIN.
    Bins below PITCH_FMIN are left out first, so a DC offset or rumble (which
    correlates with itself at every lag) does not count as voicing.
    """
    window = scipy.signal.get_window("hann", N_FFT, fftbins=True)
    window_ac = np.fft.irfft(np.abs(np.fft.rfft(window)) ** 2, n=N_FFT)
    spectrum = power.astype(np.float64)  # a copy: the caller's spectrogram is not touched
    spectrum[: int(np.ceil(PITCH_FMIN_HZ * N_FFT / SAMPLE_RATE))] = 0.0
    frame_ac = np.fft.irfft(spectrum, n=N_FFT, axis=0)
    lo = int(np.floor(SAMPLE_RATE / PITCH_FMAX_HZ))
    hi = int(np.ceil(SAMPLE_RATE / PITCH_FMIN_HZ))
    lags = slice(lo - 1, hi + 2)
    energy = frame_ac[0]
    safe = np.where(energy > 0, energy, 1.0)
    ratio = (frame_ac[lags] / safe) / (window_ac[lags, None] / window_ac[0])
    inner = ratio[1:-1]
    is_peak = (inner > ratio[:-2]) & (inner >= ratio[2:])
    strength = np.max(np.where(is_peak, inner, 0.0), axis=0)
    return np.where(energy > 0, np.clip(strength, 0.0, None), 0.0)


def functionals(series, times):
    """Apply :data:`FUNCTIONALS` to each row.

    Parameters
    ----------
    series : np.ndarray [shape=(n_descriptors, n_frames), n_frames >= 1]
    times : np.ndarray [shape=(n_frames,)]
        Frame times in seconds, for the slope.

    Returns
    -------
    np.ndarray [shape=(n_descriptors, len(FUNCTIONALS)), dtype=float64]
    """
    x = np.asarray(series, dtype=np.float64)
    mean = x.mean(axis=1)
    centred = x - mean[:, None]
    std = np.sqrt(np.mean(centred ** 2, axis=1))
    low = x.min(axis=1)
    high = x.max(axis=1)
    p10, p50, p90 = np.percentile(x, _PERCENTILES, axis=1)

    # Moments of a (numerically) constant series are defined as 0.
    scale = np.maximum(np.max(np.abs(x), axis=1), np.finfo(np.float64).tiny)
    varies = std > 1e-7 * scale
    safe_std = np.where(varies, std, 1.0)
    z = centred / safe_std[:, None]
    skewness = np.where(varies, np.mean(z ** 3, axis=1), 0.0)
    kurtosis = np.where(varies, np.mean(z ** 4, axis=1) - 3.0, 0.0)

    t = np.asarray(times, dtype=np.float64) - np.mean(times)
    denominator = float(np.dot(t, t))
    slope = np.sum(centred * t, axis=1) / denominator if denominator > 0 else np.zeros_like(mean)

    columns = {
        "mean": mean, "std": std, "min": low, "max": high, "range": high - low,
        "p10": p10, "p50": p50, "p90": p90, "skewness": skewness, "kurtosis": kurtosis, "slope": slope,
    }
    return np.stack([columns[name] for name in FUNCTIONALS], axis=1)


def check_n_mfcc(n_mfcc):
    """Return ``n_mfcc`` as an int, or raise :class:`ConfigError` unless it is an integer in [1, N_MELS]."""
    if isinstance(n_mfcc, bool) or not isinstance(n_mfcc, numbers.Integral) or not 1 <= n_mfcc <= N_MELS:
        raise ConfigError(f"n_mfcc must be an integer in [1, {N_MELS}]: got {n_mfcc!r}")
    return int(n_mfcc)


def check_sr(sr):
    """Raise :class:`ConfigError` unless ``sr`` is :data:`~preprocessing.constants.SAMPLE_RATE`."""
    if isinstance(sr, bool) or not isinstance(sr, numbers.Real) or sr != SAMPLE_RATE:
        raise ConfigError(
            f"sr must be {SAMPLE_RATE} Hz (resample when decoding; hop and window are set for it): got {sr!r}"
        )


def check_signal(y):
    """Return ``y`` as a 1-D float32 array, or raise :class:`ConfigError`."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ConfigError(f"y must be a 1-D (mono) waveform: got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise ConfigError(f"y must be floating point in [-1, 1] (convert PCM first): got dtype {y.dtype}")
    if not np.all(np.isfinite(y)):
        raise ConfigError(f"y must be finite everywhere: got {int(np.sum(~np.isfinite(y)))} NaN/inf samples")
    return np.ascontiguousarray(y, dtype=np.float32)


def is_silent(y, *, threshold_db=-60.0):
    """Whether a waveform is silent: empty, or its *peak* level is below a threshold.

    The peak (largest absolute sample, in dBFS = ``20 * log10(max |y|)``) is used
    rather than the RMS, so a clip with even one short audible sound is not
    silent; at -60 dBFS the loudest sample is below 1/1000 of full scale.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float]
        Mono waveform in [-1, 1].
    threshold_db : float
        Peak level in dBFS below which the clip counts as silent.

    Returns
    -------
    bool
        ``True`` if ``y`` is empty or ``max |y| < 10 ** (threshold_db / 20)``.

    Raises
    ------
    ConfigError
        If ``y`` is not a finite 1-D float array, or ``threshold_db`` is not a finite number.

    Examples
    --------
    >>> is_silent(np.zeros(16000, dtype=np.float32))
    True
    >>> is_silent(0.5 * np.sin(np.linspace(0, 2000, 16000, dtype=np.float32)))
    False
    """
    y = check_signal(y)
    if isinstance(threshold_db, bool) or not isinstance(threshold_db, numbers.Real) or not np.isfinite(threshold_db):
        raise ConfigError(f"threshold_db must be a finite number in dBFS: got {threshold_db!r}")
    if y.size == 0:
        return True
    peak = float(np.max(np.abs(y)))
    return peak < 10.0 ** (float(threshold_db) / 20.0)


def mfcc_sequence(y, *, sr=SAMPLE_RATE, n_mfcc=N_MFCC, n_frames=None):
    """MFCCs per video frame: row ``i`` describes the audio centred on ``i / FPS`` s.

    Same analysis as the ``mfccKK`` descriptors of :func:`audio_functionals`
    (centred 1024-sample Hann frames, hop 640 samples = 40 ms, 64 mel bands).

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float]
        Mono waveform in [-1, 1] at ``sr``; may be empty.
    sr : int
        Sample rate in Hz; must be :data:`~preprocessing.constants.SAMPLE_RATE`.
    n_mfcc : int >= 1
        Number of MFCCs (at most :data:`N_MELS`).
    n_frames : int >= 0 or None
        If given, the result is cut to, or padded with rows of zeros at the end
        to, exactly this many frames (e.g. the clip's video frame count). Zero
        rows are the "no audio" marker, as in :func:`silent_functionals`.

    Returns
    -------
    mfcc : np.ndarray [shape=(n_frames, n_mfcc), dtype=float32]
        Without ``n_frames``: ``1 + len(y) // 640`` rows (0 rows for empty ``y``).

    Raises
    ------
    ConfigError
        If ``y`` is not a finite 1-D float array, ``sr`` is not 16000, or
        ``n_mfcc`` / ``n_frames`` is out of range.

    Examples
    --------
    >>> y = np.zeros(4 * 16000, dtype=np.float32)
    >>> mfcc_sequence(y).shape, mfcc_sequence(y, n_frames=100).shape
    ((101, 40), (100, 40))
    """
    y = check_signal(y)
    check_sr(sr)
    n_mfcc = check_n_mfcc(n_mfcc)
    check_n_frames(n_frames)
    mfcc = mfcc_from_power(power_spectrogram(pad_to_window(y)), n_mfcc) if y.size else None
    return sequence_rows(mfcc, y.size, n_mfcc, n_frames)


def check_n_frames(n_frames):
    """Raise :class:`ConfigError` unless ``n_frames`` (of :func:`mfcc_sequence`) is None or an integer >= 0."""
    if n_frames is not None and (
        isinstance(n_frames, bool) or not isinstance(n_frames, numbers.Integral) or n_frames < 0
    ):
        raise ConfigError(f"n_frames must be None or an integer >= 0: got {n_frames!r}")


def sequence_rows(mfcc, n_samples, n_mfcc, n_frames):
    """The rows :func:`mfcc_sequence` returns, from the MFCCs of a signal of ``n_samples`` samples.

    Parameters
    ----------
    mfcc : np.ndarray [shape=(n_mfcc, frames)] or None
        :func:`mfcc_from_power` of the signal padded by :func:`pad_to_window` (None when ``n_samples`` is 0).
    n_samples : int
        Samples of the signal before padding: it keeps ``1 + n_samples // 640`` frames.
    n_mfcc : int
    n_frames : int or None
        As for :func:`mfcc_sequence` (checked by :func:`check_n_frames`).

    Returns
    -------
    np.ndarray [shape=(n_frames, n_mfcc), dtype=float32]
    """
    natural = 0 if n_samples == 0 else 1 + n_samples // HOP_LENGTH
    mfcc = mfcc.T[:natural] if natural else np.zeros((0, n_mfcc))
    mfcc = np.asarray(mfcc, dtype=np.float32)
    if n_frames is None:
        return np.ascontiguousarray(mfcc)
    out = np.zeros((int(n_frames), n_mfcc), dtype=np.float32)
    keep = min(int(n_frames), mfcc.shape[0])
    out[:keep] = mfcc[:keep]
    return out
