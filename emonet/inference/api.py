"""The Python API: classify clips from a script or a notebook.

>>> import emonet
>>> predictions = emonet.predict("clips/")            # a file, a list of files, or a folder
>>> predictions[0]["emotion"], predictions.failures
>>> predictions.to_dataframe()                          # needs pandas
>>> emonet.predict(frames=frames, audio=wave, fps=25, sample_rate=16000, name="cam")  # arrays in memory

``emonet.load_model(path=None)`` loads a model once (default: the shipped
emonet-base) for repeated ``model.predict(...)`` calls. Clips are read exactly as
``emonet predict`` reads them (:mod:`emonet.inference.predict`); a clip that cannot
be decoded is skipped and listed in ``failures``, unless no clip could be classified,
which raises :class:`~preprocessing.errors.MediaError`. A clip given as arrays (RGB
frames and/or a mono waveform) goes through the same steps from the decoded streams on
(:func:`preprocessing.extraction.extract_arrays`).
"""

import logging
import os
from pathlib import Path

from preprocessing.constants import CLASSES, FPS, SAMPLE_RATE
from preprocessing.errors import ConfigError, MediaError
from preprocessing.faces import make_detector

from emonet.inference.predict import (check_model_dir, classify_items, clip_item, compute_device, expand_clips,
                                      import_tensorflow, prediction_params, predict_clips)

logger = logging.getLogger(__name__)

#: Columns of :meth:`Predictions.to_dataframe`.
COLUMNS = ("clip", "emotion") + CLASSES + ("has_audio", "face_rate")


class Predictions(list):
    """Result rows, one dict per classified clip in input order, plus the clips that failed.

    Each row holds ``clip`` (the path, or ``name`` for arrays), ``emotion`` (the top class), ``probabilities``
    (class -> float, in :data:`~preprocessing.constants.CLASSES` order), ``has_audio``
    and ``face_rate`` (share of frames in which a face was found).

    Attributes
    ----------
    failures : list of tuple (str, str)
        (path, one-line reason) of each clip that was skipped.
    """

    def __init__(self, results=(), failures=()):
        super().__init__(results)
        self.failures = list(failures)

    def __repr__(self):
        return f"Predictions({list.__repr__(self)}, failures={self.failures!r})"

    def to_dataframe(self):
        """A pandas DataFrame, one row per clip, columns :data:`COLUMNS` (probabilities flattened)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ConfigError("Predictions.to_dataframe needs pandas: pip install 'pandas>=2.1,<3'") from exc
        rows = [{"clip": r["clip"], "emotion": r["emotion"], **r["probabilities"],
                 "has_audio": bool(r["has_audio"]), "face_rate": r["face_rate"]} for r in self]
        return pd.DataFrame(rows, columns=list(COLUMNS))


class EmotionModel:
    """A trained model loaded once, for repeated :meth:`predict` calls; see :func:`load_model`.

    Parameters
    ----------
    run : emonet.inference.trained_run.TrainedRun
    detector : object
        The face detector of the run's extraction settings.
    """

    def __init__(self, run, detector):
        self.run = run
        self.detector = detector

    @property
    def path(self):
        """The run folder the model was loaded from."""
        return self.run.run_dir

    def __repr__(self):
        return f"EmotionModel({str(self.path)!r}, mode={self.run.mode!r})"

    def predict(self, clips=None, *, frames=None, audio=None, fps=FPS, sample_rate=SAMPLE_RATE, name="array",
                batch_size=16, progress=False):
        """Classify clips, or one clip given as arrays; see :func:`predict`."""
        if uses_arrays(clips, frames, audio):
            from preprocessing.extraction import extract_arrays
            arrays, attrs, notes = extract_arrays(frames, audio, prediction_params(self.run), fps=fps,
                                                  sample_rate=sample_rate, detector=self.detector)
            for note in notes:
                logger.info(f"note: {name}: {note}")
            return Predictions(classify_items([clip_item(name, arrays, attrs, self.run)], self.run))
        paths = clip_paths(clips)
        results, failures = predict_clips(paths, self.run, batch_size=batch_size, progress=progress,
                                          detector=self.detector)
        if failures and not results:
            path, reason = failures[0]
            more = f" (and {len(failures) - 1} more clips failed)" if len(failures) > 1 else ""
            raise MediaError((reason if reason.startswith(path) else f"{path}: {reason}") + more)
        return Predictions(results, failures)


def uses_arrays(clips, frames, audio):
    """Whether a call classifies ``frames``/``audio`` arrays (True) or ``clips`` paths (False).

    Raises
    ------
    ConfigError
        Both forms given, or neither.
    """
    arrays = frames is not None or audio is not None
    if arrays and clips is not None:
        raise ConfigError("predict: give clips (paths) or frames/audio (arrays), not both; received both")
    if not arrays and clips is None:
        raise ConfigError("predict: give clips (paths) or frames/audio (arrays); received neither")
    return arrays


def clip_paths(clips):
    """Clip files from one path, a list of paths, or folders (expanded recursively); checked to exist.

    Raises
    ------
    ConfigError
        ``clips`` is not a path or a list of paths, or is empty.
    MediaError
        A path does not exist, or a folder holds no media files.
    """
    items = [clips] if isinstance(clips, (str, os.PathLike)) else clips
    try:
        items = list(items)
    except TypeError:
        raise ConfigError(f"clips: expected a path or a list of paths; received {clips!r}") from None
    if not items:
        raise ConfigError("clips: expected a path or a list of paths; received an empty list")
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise ConfigError(f"clips: expected paths; received {item!r}")
        if not Path(item).exists():
            raise MediaError(f"{item}: no such file or folder")
    return expand_clips(items)


def load_model(path=None):
    """Load a trained model once, for repeated predictions.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A run folder written by ``emonet train`` (holding ``config.yaml``), or ``"emonet-base"``;
        default: the shipped model emonet-base.

    Returns
    -------
    EmotionModel
        With ``.predict(clips)``.

    Raises
    ------
    ModelError
        ``path`` is not a run folder, or the run is incomplete.
    """
    import_tensorflow()  # before trained_run imports Keras: TensorFlow's start-up notices held back
    from emonet.inference.trained_run import TrainedRun

    folder = check_model_dir(path)
    run = TrainedRun(folder)
    model = EmotionModel(run, make_detector(prediction_params(run).detector))
    logger.info(f"loaded {run.mode} model from {folder}, on {compute_device()}")
    return model


def predict(clips=None, *, frames=None, audio=None, fps=FPS, sample_rate=SAMPLE_RATE, name="array", model=None,
            batch_size=16, progress=False):
    """Top emotion and the seven class probabilities of clips, videos, audio files or photos.

    Either ``clips`` (paths) or one clip given as arrays (``frames``, ``audio`` or both),
    processed as its file would be after decoding: frames resampled to 25 fps, at most
    the run's ``max_frames`` kept, resized to its ``analysis_side``, faces tracked and
    cropped; audio resampled to 16 kHz, silent audio counted as none
    (:func:`preprocessing.extraction.extract_arrays`).

    Parameters
    ----------
    clips : str or os.PathLike or list of them, optional
        Files, or folders standing for their media files (recursively, sorted).
    frames : np.ndarray [shape=(T, H, W, 3), dtype=uint8], optional
        RGB video frames (``T = 1``: a photo); instead of ``clips``.
    audio : np.ndarray [shape=(N,), dtype=float], optional
        Mono waveform in [-1, 1]; instead of ``clips``.
    fps : float
        Frame rate of ``frames``.
    sample_rate : float
        Sample rate of ``audio`` in Hz (any; resampled to 16 kHz).
    name : str
        The ``clip`` of the arrays' result row.
    model : str or os.PathLike or EmotionModel, optional
        A run folder or a model from :func:`load_model`; default: the shipped emonet-base.
    batch_size : int
        Clips per model call.
    progress : bool
        Progress bar (clips) on stderr.

    Returns
    -------
    Predictions
        A list of result dicts with ``.failures`` and ``.to_dataframe()``.

    Raises
    ------
    EmonetError
        Bad input (missing path, empty folder, not a run folder, arrays of the wrong
        shape or type, NaN samples, ``fps <= 0``), or no clip could be classified; the
        one-line message names the file or argument.

    Examples
    --------
    >>> emonet.predict("tests/data/stills/1001_DFA_HAP_XX.jpg")[0]["emotion"]
    'Happy'
    >>> from preprocessing.images import read_image
    >>> emonet.predict(frames=read_image("tests/data/stills/1001_DFA_HAP_XX.jpg")[None])[0]["emotion"]
    'Happy'
    """
    if uses_arrays(clips, frames, audio):  # checked before loading a model: a mistake fails fast
        from preprocessing.extraction import check_arrays
        check_arrays(frames, audio, fps=fps, sample_rate=sample_rate)
        inputs = {"frames": frames, "audio": audio, "fps": fps, "sample_rate": sample_rate, "name": name}
    else:
        inputs = {"clips": clip_paths(clips)}
    loaded = model if isinstance(model, EmotionModel) else load_model(model)
    return loaded.predict(**inputs, batch_size=batch_size, progress=progress)
