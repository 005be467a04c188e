"""The Python API: classify clips from a script or a notebook.

>>> import emonet
>>> predictions = emonet.predict("clips/")            # a file, a list of files, or a folder
>>> predictions[0]["emotion"], predictions.failures
>>> predictions.to_dataframe()                          # needs pandas

``emonet.load_model(path=None)`` loads a model once (default: the shipped
emonet-base) for repeated ``model.predict(...)`` calls. Clips are read exactly as
``emonet predict`` reads them (:mod:`emonet.inference.predict`); a clip that cannot
be decoded is skipped and listed in ``failures``, unless no clip could be classified,
which raises :class:`~preprocessing.errors.MediaError`.
"""

import logging
import os
from pathlib import Path

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError, MediaError
from preprocessing.faces import make_detector

from emonet.inference.predict import (check_model_dir, compute_device, expand_clips, import_tensorflow,
                                      prediction_params, predict_clips)

logger = logging.getLogger(__name__)

#: Columns of :meth:`Predictions.to_dataframe`.
COLUMNS = ("clip", "emotion") + CLASSES + ("has_audio", "face_rate")


class Predictions(list):
    """Result rows, one dict per classified clip in input order, plus the clips that failed.

    Each row holds ``clip`` (the path), ``emotion`` (the top class), ``probabilities``
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

    def predict(self, clips, *, batch_size=16, progress=False):
        """Classify clips; see :func:`predict`."""
        paths = clip_paths(clips)
        results, failures = predict_clips(paths, self.run, batch_size=batch_size, progress=progress,
                                          detector=self.detector)
        if failures and not results:
            path, reason = failures[0]
            more = f" (and {len(failures) - 1} more clips failed)" if len(failures) > 1 else ""
            raise MediaError((reason if reason.startswith(path) else f"{path}: {reason}") + more)
        return Predictions(results, failures)


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
        A run folder written by ``emonet train`` (holding ``config.yaml``); default: the
        shipped model emonet-base.

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
    from emonet.inference.trained_run import TrainedRun, shipped_model_dir

    folder = shipped_model_dir() if path is None else check_model_dir(path)
    run = TrainedRun(folder)
    model = EmotionModel(run, make_detector(prediction_params(run).detector))
    logger.info(f"loaded {run.mode} model from {folder}, on {compute_device()}")
    return model


def predict(clips, *, model=None, batch_size=16, progress=False):
    """Top emotion and the seven class probabilities of clips, videos, audio files or photos.

    Parameters
    ----------
    clips : str or os.PathLike or list of them
        Files, or folders standing for their media files (recursively, sorted).
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
        Bad input (missing path, empty folder, not a run folder), or no clip could be
        classified; the one-line message names the file.

    Examples
    --------
    >>> emonet.predict("tests/data/stills/1001_DFA_HAP_XX.jpg")[0]["emotion"]
    'Happy'
    """
    paths = clip_paths(clips)  # before loading a model: a typo fails fast
    loaded = model if isinstance(model, EmotionModel) else load_model(model)
    return loaded.predict(paths, batch_size=batch_size, progress=progress)
