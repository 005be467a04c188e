"""Speed-perturbed copies of an utterance: training data that sounds like other speakers.

Playing a waveform ``factor`` times faster (resampling it, as a tape played at another
speed) scales its duration by ``1 / factor`` and every frequency -- pitch, formants,
spectral envelope -- by ``factor``. A factor of 0.9 or 1.1 moves a voice about as far
as the gap between two speakers of the same sex, while the emotion (the prosodic
contour, relative loudness, voice quality) stays. The audio functionals of such copies
of the *training* utterances (:func:`speed_functionals`) let the voice branch see more
than the training speakers' pitch and vocal-tract lengths, the main thing that changes
from one speaker to the next.

Measured on the validation speakers of the speech corpus (experiments/speech_corpus.py,
logistic regression on the standardised functionals): factors 0.9, 0.95, 1.05, 1.1 raise
EmoDB UAR from 54.7 % to 66.0 % and the pooled UAR from 55.3 % to 56.5 %; a pitch shift
without the tempo change (phase vocoder, +-2 semitones) lowers it to 51.5 %, and additive
noise plus gain changes to 54.4 %. Wider factors, 0.8, 0.9, 1.1, 1.2 (the shipped voice's
since session 11), keep RAVDESS and EmoDB and lift URDU's natural speech by about ten points
in speaker-disjoint cross-validation (``experiments/voice_speed_range_cv.py``).

Examples
--------
>>> t = np.arange(16000) / 16000
>>> y = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
>>> speed_perturb(y, 1.25).shape
(12800,)
>>> speed_functionals(y, (0.9, 1.1)).shape
(2, 3361)
"""

import numpy as np

from .constants import N_MFCC, SAMPLE_RATE
from .errors import ConfigError

__all__ = ["MAX_SPEED", "MIN_SPEED", "check_speeds", "speed_functionals", "speed_perturb"]

#: Slowest speed factor accepted (an octave down, twice as long).
MIN_SPEED = 0.5
#: Fastest speed factor accepted (an octave up, half as long).
MAX_SPEED = 2.0


def check_speeds(speeds, *, name="audio_speeds"):
    """``speeds`` as a tuple of floats, each in [MIN_SPEED, MAX_SPEED] and not 1, without repeats.

    Parameters
    ----------
    speeds : sequence of float
    name : str
        Named in the error message (the setting the value came from).

    Returns
    -------
    tuple of float

    Raises
    ------
    ConfigError
        A value is not a number, is out of range, is 1 (the clip itself) or repeats.

    Examples
    --------
    >>> check_speeds([0.9, 1.1])
    (0.9, 1.1)
    """
    if isinstance(speeds, (str, bytes)) or not hasattr(speeds, "__iter__"):
        raise ConfigError(f"{name}: must be a list of speed factors like [0.9, 1.1]; received {speeds!r}")
    out = []
    for value in speeds:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not MIN_SPEED <= value <= MAX_SPEED \
                or value == 1:
            raise ConfigError(f"{name}: every speed factor must be a number in [{MIN_SPEED}, {MAX_SPEED}] other "
                              f"than 1; received {value!r}")
        out.append(float(value))
    if len(set(out)) != len(out):
        raise ConfigError(f"{name}: speed factors repeat; received {list(speeds)!r}")
    return tuple(out)


def speed_perturb(y, factor, *, sr=SAMPLE_RATE):
    """The waveform played ``factor`` times faster: duration / factor, all frequencies x factor.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float]
        Mono waveform at ``sr`` Hz.
    factor : float
        Speed factor in [MIN_SPEED, MAX_SPEED]; 1.1 = 10 % faster and higher.
    sr : int
        Sample rate in Hz (the output has the same rate).

    Returns
    -------
    np.ndarray [shape=(round(n / factor),), dtype=float32]
    """
    (factor,) = check_speeds([factor], name="speed_perturb factor")
    y = np.asarray(y, np.float32)
    if len(y) == 0:
        return y
    import librosa  # here, not at the top: the run configuration imports check_speeds without librosa
    # read as if recorded at sr * factor, resampled back to sr: fewer samples when factor > 1
    return librosa.resample(y, orig_sr=sr * factor, target_sr=sr, res_type="soxr_hq").astype(np.float32)


def speed_functionals(y, speeds, *, sr=SAMPLE_RATE, n_mfcc=N_MFCC):
    """Audio functionals of speed-perturbed copies of ``y``, one row per factor.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float]
        Mono waveform at ``sr`` = 16000 Hz (as :func:`preprocessing.media.decode_audio` gives).
    speeds : sequence of float
        Speed factors (see :func:`speed_perturb`).
    sr : int
        Sample rate in Hz.
    n_mfcc : int
        As for :func:`preprocessing.audio.audio_functionals`.

    Returns
    -------
    np.ndarray [shape=(len(speeds), n_features), dtype=float32]
        Row ``k`` = ``audio_functionals(speed_perturb(y, speeds[k]))``; 3,361 columns for 40 MFCCs.
    """
    from .audio import audio_functionals, feature_names  # librosa and SciPy: imported on first use
    speeds = check_speeds(speeds)
    rows = [audio_functionals(speed_perturb(y, s, sr=sr), sr=sr, n_mfcc=n_mfcc)[0] for s in speeds]
    if not rows:
        return np.zeros((0, len(feature_names(n_mfcc=n_mfcc))), np.float32)
    return np.stack(rows)
