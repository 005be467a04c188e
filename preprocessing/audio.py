"""Audio descriptors: a named vector of functionals and a frame-level MFCC sequence.

Input everywhere is a 16 kHz mono float32 waveform, as :mod:`preprocessing.media`
decodes it. Two products:

* :func:`audio_functionals` -- a fixed-length vector (3,361 values for
  ``n_mfcc=40``) of statistics of frame-level low-level descriptors (LLDs), each
  value named by :func:`feature_names` (``"mfcc03_mean"``, ``"pitch_p90"``...),
  then the 320 log-mel band statistics of :mod:`preprocessing.audio_mel`, the 30 prosody and
  voice-quality statistics of :mod:`preprocessing.audio_prosody` and the 1,536 statistics of a
  pretrained voice encoder's hidden states (:mod:`preprocessing.audio_voice_encoder`).
* :func:`mfcc_sequence` -- MFCCs per frame, one frame per video frame
  (hop :data:`~preprocessing.constants.HOP_LENGTH` = 640 samples = 40 ms), so row
  ``i`` describes the audio centred on time ``i / FPS`` seconds.

Analysis settings (all module constants, with their reasons):

* Frames are centred (``center=True``, zero padding of ``N_FFT // 2`` on each
  side): ``1 + len(y) // 640`` frames, frame ``i`` centred on sample ``640 * i``.
* Window :data:`N_FFT` = 1024 samples (64 ms, Hann): longer than the 40 ms hop so
  every sample is analysed, a power of two for the FFT, and 15.6 Hz bins resolve
  the harmonics of voices down to :data:`PITCH_FMIN_HZ`.
* One STFT per call: the power spectrogram feeds the mel filterbank (MFCCs),
  the spectral shape descriptors and the periodicity used for voicing. Only
  YIN (pitch) and the time-domain level / zero-crossing framing read ``y`` again.

Low-level descriptors, in vector order (134 for ``n_mfcc=40``):

====================  =====  ===============================================
name                  count  meaning (unit)
====================  =====  ===============================================
mfccKK                n_mfcc MFCC ``KK`` (0-based; ``mfcc00`` is the c0 energy
                             term) from a 64-band mel power spectrum in dB
mfccKK_d              n_mfcc first time derivative (Savitzky-Golay, width 5
                             frames), per frame
mfccKK_dd             n_mfcc second time derivative, per frame^2
rms                   1      frame RMS level in dBFS (floor -100 dB)
zcr                   1      zero crossings per sample, in [0, 1]
spectral_centroid     1      Hz
spectral_bandwidth    1      Hz (2nd-order spread around the centroid)
spectral_rolloff      1      Hz below which 85 % of the energy lies
spectral_flatness     1      geometric / arithmetic mean of power, in [0, 1]
spectral_contrastB    7      peak-valley dB difference in octave band ``B``
                             (edges 0, 100, 200, 400, 800, 1600, 3200, 8000 Hz)
pitch                 1      F0 in Hz by YIN (60-500 Hz), voiced frames only
====================  =====  ===============================================

Every descriptor is summarised by the 11 :data:`FUNCTIONALS`, giving names
``f"{descriptor}_{functional}"``; then one extra value, ``pitch_voiced_fraction``
(134 x 11 + 1 = 1,475 values, the whole vector of stores and models made before session 7), then the
320 ``logmelKK_<stat>`` values of :func:`preprocessing.audio_mel.logmel_statistics` (1,795, the
vector of sessions 7-9), then the 30 values of :func:`preprocessing.audio_prosody.prosody_statistics`
(1,825, sessions 10-13), then the 1,536 of
:func:`preprocessing.audio_voice_encoder.voice_encoder_statistics`: 3,361 values. Each block is
appended, so a model fitted on an earlier width reads the prefix
(:data:`~preprocessing.constants.EARLIER_WIDTHS`); a model can also read one block
(:func:`audio_block`, ``model.audio_features``).

Voicing. YIN always returns a period, even for noise and silence, so pitch
statistics use only frames judged voiced: periodicity (the normalised
autocorrelation peak in the 60-500 Hz lag range, divided by the window's own
autocorrelation as in Boersma 1993) at least :data:`VOICING_THRESHOLD`, level at
least :data:`VOICED_MIN_DBFS`, and level clearly above the clip's background:
at least :data:`VOICED_ABOVE_FLOOR_DB` over the 10th percentile of frame levels,
capped at :data:`VOICED_BELOW_PEAK_DB` under the loudest frame so a steady sound
keeps its frames. The background gate matters for hum and room tone, which are
periodic too. Against librosa's pYIN voicing on 35 real utterances (RAVDESS,
CREMA-D, MEAD) this rule agrees on 81 % of frames (76 % with a plain "within
40 dB of the peak" gate) and costs 1.9 ms instead of 74 ms for a 3.3 s clip.
With no voiced frame, all ``pitch_*`` values are 0.

Degenerate input never raises and never yields NaN or inf: signals shorter than
one window (including empty ones) are zero-padded to :data:`N_FFT` samples,
statistics of constant series are defined (skewness and kurtosis 0, slope 0),
and any remaining non-finite value is replaced by 0. A clip without an audio
stream, or a silent one (see :func:`is_silent`), is conventionally represented by
:func:`silent_functionals` (all zeros) instead -- that is the caller's choice.
"""

import librosa
import numpy as np

from preprocessing.audio_frames import (
    DB_FLOOR,
    FUNCTIONALS,
    N_FFT,
    N_MELS,
    PITCH_FMAX_HZ,
    PITCH_FMIN_HZ,
    check_n_frames,
    check_n_mfcc,
    check_signal,
    check_sr,
    frame_level_and_zcr,
    functionals,
    is_silent,
    mfcc_from_power,
    mfcc_sequence,
    pad_to_window,
    periodicity,
    power_spectrogram,
    sequence_rows,
)
from preprocessing.audio_mel import logmel_names, logmel_statistics
from preprocessing.audio_prosody import prosody_names, prosody_statistics
from preprocessing.audio_voice_encoder import voice_encoder_names, voice_encoder_statistics
from preprocessing.constants import AUDIO_BLOCKS, HOP_LENGTH, LEGACY_WIDTH, N_MFCC, SAMPLE_RATE
from preprocessing.errors import ConfigError

__all__ = [
    "AUDIO_BLOCKS",
    "FUNCTIONALS",
    "LEGACY_WIDTH",
    "N_FFT",
    "N_MELS",
    "audio_block",
    "audio_functionals",
    "feature_names",
    "functionals_and_sequence",
    "is_silent",
    "mfcc_sequence",
    "silent_functionals",
    "warm_up",
]

#: Width in frames of the Savitzky-Golay window for deltas (5 frames = +-80 ms at 25 fps).
DELTA_WIDTH = 5

#: Lowest octave edge of the spectral contrast bands in Hz; 6 octaves fit below 8 kHz.
CONTRAST_FMIN_HZ = 100.0

#: Number of spectral contrast octaves; librosa returns ``n_bands + 1`` rows.
CONTRAST_N_BANDS = 6

#: Minimum periodicity (normalised autocorrelation peak, 0-1) of a voiced frame;
#: 0.45 is Praat's default voicing threshold.
VOICING_THRESHOLD = 0.45

#: A voiced frame is at least this loud (dBFS) ...
VOICED_MIN_DBFS = -60.0

#: ... and this many dB above the clip's background level (10th percentile of frame levels) ...
VOICED_ABOVE_FLOOR_DB = 6.0

#: ... unless that is higher than this many dB below the loudest frame (steady sounds).
VOICED_BELOW_PEAK_DB = 10.0

_SCALAR_DESCRIPTORS = (
    "rms",
    "zcr",
    "spectral_centroid",
    "spectral_bandwidth",
    "spectral_rolloff",
    "spectral_flatness",
)
_EXTRA_FEATURES = ("pitch_voiced_fraction",)


# ---------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------

def _descriptor_names(n_mfcc):
    mfcc = [f"mfcc{k:02d}" for k in range(n_mfcc)]
    contrast = [f"spectral_contrast{b}" for b in range(CONTRAST_N_BANDS + 1)]
    return (
        mfcc
        + [f"{m}_d" for m in mfcc]
        + [f"{m}_dd" for m in mfcc]
        + list(_SCALAR_DESCRIPTORS)
        + contrast
        + ["pitch"]
    )


def feature_names(*, n_mfcc=N_MFCC):
    """Names of the values returned by :func:`audio_functionals`, in order.

    Parameters
    ----------
    n_mfcc : int >= 1
        Number of MFCCs, as passed to :func:`audio_functionals`.

    Returns
    -------
    names : list of str [length=(3 * n_mfcc + 14) * len(FUNCTIONALS) + 1 + 320 + 30 + 1536]
        ``f"{descriptor}_{functional}"`` for every descriptor (see the module
        docstring) and functional in :data:`FUNCTIONALS`, descriptor-major, then
        ``"pitch_voiced_fraction"``, then :func:`preprocessing.audio_mel.logmel_names`,
        :func:`preprocessing.audio_prosody.prosody_names` and
        :func:`preprocessing.audio_voice_encoder.voice_encoder_names`. 3,361 names for ``n_mfcc=40``.

    Raises
    ------
    ConfigError
        If ``n_mfcc`` is not an integer in ``[1, N_MELS]``.

    Examples
    --------
    >>> names = feature_names()
    >>> len(names), names[:2], names[-1]
    (3361, ['mfcc00_mean', 'mfcc00_std'], 'ge2e_l2_std_255')
    """
    n_mfcc = check_n_mfcc(n_mfcc)
    names = [f"{d}_{f}" for d in _descriptor_names(n_mfcc) for f in FUNCTIONALS]
    return names + list(_EXTRA_FEATURES) + logmel_names() + prosody_names() + voice_encoder_names()


def audio_block(name, *, n_mfcc=N_MFCC):
    """(first, stop) column indices of block ``name`` (:data:`AUDIO_BLOCKS`) in :func:`feature_names`'s vector.

    >>> audio_block("voice_encoder")
    (1825, 3361)
    """
    width, encoder = len(feature_names(n_mfcc=n_mfcc)), len(voice_encoder_names())
    blocks = {"all": (0, width), "functionals": (0, width - encoder), "voice_encoder": (width - encoder, width)}
    if name not in blocks:
        raise ConfigError(f"audio block must be one of {', '.join(AUDIO_BLOCKS)}; received {name!r}")
    return blocks[name]


def silent_functionals(*, n_mfcc=N_MFCC):
    """The functionals vector that stands for "no audio": all zeros.

    Used for clips without an audio stream and for silent clips
    (:func:`is_silent`). Zero is not what :func:`audio_functionals` computes for
    digital silence (MFCC c0 of silence is strongly negative); it is a fixed
    marker, so "no audio" is one point in feature space however the clip was
    encoded. The audio reducer standardises features, so the marker carries no
    special weight.

    Parameters
    ----------
    n_mfcc : int >= 1
        As for :func:`feature_names`: one zero per name.

    Returns
    -------
    features : np.ndarray [shape=(len(feature_names(n_mfcc=n_mfcc)),), dtype=float32]
        Zeros.

    Examples
    --------
    >>> silent_functionals().shape
    (3361,)
    """
    return np.zeros(len(feature_names(n_mfcc=n_mfcc)), dtype=np.float32)


# ---------------------------------------------------------------------------
# Public feature extractors
# ---------------------------------------------------------------------------

def audio_functionals(y, *, sr=SAMPLE_RATE, n_mfcc=N_MFCC):
    """Named statistics of the clip's low-level descriptors and of a pretrained voice encoder (3,361 values).

    See the module docstring for the descriptors, the window, the voicing rule
    and the handling of degenerate input.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float]
        Mono waveform in [-1, 1] at ``sr``. May be empty or shorter than one
        window (it is zero-padded to ``N_FFT`` samples).
    sr : int
        Sample rate in Hz; must be :data:`~preprocessing.constants.SAMPLE_RATE`.
    n_mfcc : int >= 1
        Number of MFCCs (at most :data:`N_MELS`).

    Returns
    -------
    features : np.ndarray [shape=(n_features,), dtype=float32]
        Finite values; ``n_features = (3 * n_mfcc + 14) * 11 + 1 + 320 + 30 + 1536`` (3,361 for 40).
    names : list of str [length=n_features]
        Equal to ``feature_names(n_mfcc=n_mfcc)``.

    Raises
    ------
    ConfigError
        If ``y`` is not a finite 1-D float array, ``sr`` is not 16000 or
        ``n_mfcc`` is out of range.

    Examples
    --------
    >>> t = np.arange(4 * 16000) / 16000
    >>> y = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    >>> features, names = audio_functionals(y)
    >>> features.shape, round(float(features[names.index("pitch_mean")]))
    ((3361,), 220)
    """
    y = check_signal(y)
    check_sr(sr)
    n_mfcc = check_n_mfcc(n_mfcc)
    features, _ = _functionals_and_mfcc(y, n_mfcc)
    return features, feature_names(n_mfcc=n_mfcc)


def functionals_and_sequence(y, *, sr=SAMPLE_RATE, n_mfcc=N_MFCC, n_frames=None):
    """:func:`audio_functionals` and :func:`mfcc_sequence` of one clip, from one spectrogram.

    Both analyse the same centred frames, so the MFCCs behind the functionals are the
    sequence's; computing them once saves a spectrogram and an MFCC pass (about 1.4 ms of
    a composite clip's 14 ms of audio features). The values are those of the two calls.

    Parameters
    ----------
    y, sr, n_mfcc
        As for :func:`audio_functionals`.
    n_frames : int >= 0 or None
        As for :func:`mfcc_sequence`.

    Returns
    -------
    features : np.ndarray [shape=(n_features,), dtype=float32]
        ``audio_functionals(y, sr=sr, n_mfcc=n_mfcc)[0]``.
    mfcc : np.ndarray [shape=(n_frames, n_mfcc), dtype=float32]
        ``mfcc_sequence(y, sr=sr, n_mfcc=n_mfcc, n_frames=n_frames)``.

    Raises
    ------
    ConfigError
        As either function.
    """
    y = check_signal(y)
    check_sr(sr)
    n_mfcc = check_n_mfcc(n_mfcc)
    check_n_frames(n_frames)
    features, mfcc = _functionals_and_mfcc(y, n_mfcc)
    return features, sequence_rows(mfcc if y.size else None, y.size, n_mfcc, n_frames)


def warm_up(n_mfcc=N_MFCC):
    """Load what the first clip's audio features would wait for: SciPy, librosa's lazy modules and its
    numba kernels (compiled, or read from numba's cache), by computing :func:`functionals_and_sequence`
    of one second of a quiet click train (not silent, so the whole path runs). About 1 s of CPU."""
    second = np.zeros(SAMPLE_RATE, np.float32)
    second[::7] = 0.1
    functionals_and_sequence(second, n_mfcc=n_mfcc, n_frames=25)


def _functionals_and_mfcc(y, n_mfcc):
    """The functionals of a checked signal ``y`` and its MFCCs [shape=(n_mfcc, frames)] (of ``y`` padded)."""
    names = feature_names(n_mfcc=n_mfcc)
    y = pad_to_window(y)

    power = power_spectrogram(y)
    magnitude = np.sqrt(power)
    n_frames = power.shape[1]
    times = np.arange(n_frames) * (HOP_LENGTH / SAMPLE_RATE)

    mfcc = mfcc_from_power(power, n_mfcc)
    delta_mode = "interp" if n_frames >= DELTA_WIDTH else "nearest"
    mfcc_d = librosa.feature.delta(mfcc, width=DELTA_WIDTH, order=1, mode=delta_mode)
    mfcc_dd = librosa.feature.delta(mfcc, width=DELTA_WIDTH, order=2, mode=delta_mode)

    rms_db, zcr = frame_level_and_zcr(y)
    centroid = librosa.feature.spectral_centroid(S=magnitude, sr=SAMPLE_RATE)[0]
    bandwidth = librosa.feature.spectral_bandwidth(S=magnitude, sr=SAMPLE_RATE)[0]
    rolloff = librosa.feature.spectral_rolloff(S=magnitude, sr=SAMPLE_RATE, roll_percent=0.85)[0]
    flatness = librosa.feature.spectral_flatness(S=magnitude, power=2.0, amin=10.0 ** (DB_FLOOR / 10.0))[0]
    contrast = librosa.feature.spectral_contrast(
        S=magnitude, sr=SAMPLE_RATE, fmin=CONTRAST_FMIN_HZ, n_bands=CONTRAST_N_BANDS
    )

    f0 = librosa.yin(
        y, fmin=PITCH_FMIN_HZ, fmax=PITCH_FMAX_HZ, sr=SAMPLE_RATE,
        frame_length=N_FFT, hop_length=HOP_LENGTH, center=True, pad_mode="constant",
    )[:n_frames]
    voicing = periodicity(power)
    voiced = (
        np.isfinite(f0)
        & (voicing >= VOICING_THRESHOLD)
        & (rms_db >= VOICED_MIN_DBFS)
        & (rms_db >= min(np.percentile(rms_db, 10) + VOICED_ABOVE_FLOOR_DB, np.max(rms_db) - VOICED_BELOW_PEAK_DB))
    )

    lld = np.vstack([
        mfcc, mfcc_d, mfcc_dd,
        rms_db[None], zcr[None], centroid[None], bandwidth[None], rolloff[None], flatness[None],
        contrast,
    ])
    stats = [functionals(lld, times).ravel()]
    if np.any(voiced):
        stats.append(functionals(f0[voiced][None], times[voiced]).ravel())
    else:
        stats.append(np.zeros(len(FUNCTIONALS)))
    stats.append([np.mean(voiced)])
    stats.append(logmel_statistics(y))
    stats.append(prosody_statistics(power, rms_db, voicing, f0))
    stats.append(voice_encoder_statistics(y))

    features = np.concatenate(stats)
    features = np.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    if features.shape[0] != len(names):  # guards the names against drift in the LLD stack
        raise AssertionError(f"audio_functionals built {features.shape[0]} values for {len(names)} names")
    return features, mfcc


