"""Classifying clips the model has never seen: decode, extract, embed, predict, write.

A clip may be a video, an audio file or a still image (a photo is a clip of one
frame without audio; its face is detected as in a video frame, see
:mod:`preprocessing.images`). A clip that cannot be decoded is reported ("skipping <file>: <cause>") and the
rest carry on; the caller exits non-zero if any failed. Output writers are
chosen by format: an aligned table, JSON or CSV, plus optionally an
EmotiW-style submission folder with one ``<clip path>.txt`` holding the label.

Folders given as inputs are expanded recursively to their media files
(:func:`expand_clips`); the table, the CSV and the submission name a clip by its
path relative to the common parent folder of all clips (:func:`display_names`),
so two ``happy.mp4`` in different folders stay apart.
"""

import csv
import dataclasses
import io
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError, EmonetError, MediaError, one_line
from preprocessing.extraction import ExtractParams, extract_clip
from preprocessing.faces import make_detector
from preprocessing.layouts import MEDIA_SUFFIXES

from emonet.experiment.rundir import RunDir

logger = logging.getLogger(__name__)

#: Output formats. This module imports TensorFlow only when clips are classified,
#: so ``emonet --help`` can read it cheaply.
FORMATS = ("table", "json", "csv")

#: Fields of a result row beside the per-class probabilities (JSON keys, CSV columns).
RESULT_FIELDS = ("clip", "emotion", "has_audio", "face_rate")


def check_model_dir(path):
    """``path`` if it is a run folder (holds ``config.yaml``), else :class:`ModelError`; no model is loaded."""
    return RunDir(path).check_is_run().path


def check_output_file(path):
    """``path`` if a file can be written there (its parent folder exists), else :class:`ConfigError`."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: output is a folder; pass a file name")
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: cannot write the output, folder {path.parent} does not exist")
    return path


def _raise_listing_error(exc):
    raise MediaError(f"{exc.filename}: cannot list folder ({exc.strerror})") from exc


def expand_clips(inputs):
    """Clip paths from files and folders: a folder stands for its media files, recursively.

    Files are kept in the given order (whatever their suffix: a bad one is reported when
    decoded); a folder's media files (:data:`preprocessing.layouts.MEDIA_SUFFIXES`, hidden
    files and folders ignored) come sorted. A path given twice is kept once.

    Raises
    ------
    MediaError
        A folder without media files, or one that cannot be listed.
    """
    found, seen = [], set()
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            files = []
            for dirpath, dirnames, filenames in os.walk(item, onerror=_raise_listing_error):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                files += [Path(dirpath, n) for n in filenames
                          if not n.startswith(".") and os.path.splitext(n)[1].lower() in MEDIA_SUFFIXES]
            if not files:
                raise MediaError(f"{item}: no media files in this folder (suffixes {' '.join(MEDIA_SUFFIXES)})")
            members = sorted(files, key=lambda p: p.as_posix())
        else:
            members = [item]
        for path in members:
            key = os.path.abspath(path)
            if key not in seen:
                seen.add(key)
                found.append(path)
    return found


def display_names(clips):
    """Each clip's path relative to the common parent folder of all clips (POSIX form), in order."""
    absolute = [os.path.abspath(c) for c in clips]
    if not absolute:
        return []
    parent = os.path.commonpath([os.path.dirname(a) for a in absolute])
    return [Path(os.path.relpath(a, parent)).as_posix() for a in absolute]


def prediction_params(run):
    """Extraction settings for classifying clips with a :class:`TrainedRun`: the run's own, no speed copies."""
    # the speed-perturbed copies of extract.audio_speeds are training material only
    return dataclasses.replace(ExtractParams(**run.extract_params), audio_speeds=())


def predict_clips(paths, run_dir, *, batch_size=16, progress=True, detector=None):
    """Class probabilities for clip files.

    Parameters
    ----------
    paths : list of str or os.PathLike
        Videos, audio files or still images (:data:`preprocessing.constants.IMAGE_SUFFIXES`).
    run_dir : str or os.PathLike or TrainedRun
        A trained run directory, or one already loaded (repeated calls reuse it).
    batch_size : int
        Clips classified per model call.
    progress : bool
        Progress bar (clips) on stderr. Skipped clips are logged (``skipping <file>: <cause>``).
    detector : object, optional
        A face detector from :func:`preprocessing.faces.make_detector` for the run's
        ``extract.detector``; made here when not given.

    Returns
    -------
    results : list of dict
        Per classified clip: ``clip`` (path), ``emotion`` (top class), ``probabilities``
        (dict class -> float, CLASSES order), ``has_audio``, ``face_rate``.
    failures : list of tuple (str, str)
        (path, one-line reason) of clips that were skipped.
    """
    from tqdm import tqdm

    from emonet.inference.trained_run import TrainedRun
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1; received {batch_size}")
    run = run_dir if isinstance(run_dir, TrainedRun) else TrainedRun(run_dir)
    params = prediction_params(run)
    detector = detector if detector is not None else make_detector(params.detector)
    results, failures, pending = [], [], []

    def flush():
        if not pending:
            return
        proba = run.predict([p["embeddings"] for p in pending], np.stack([p["audio"] for p in pending]),
                            np.array([p["has_audio"] for p in pending]))
        for item, row in zip(pending, proba):
            results.append({"clip": item["clip"], "emotion": CLASSES[int(np.argmax(row))],
                            "probabilities": {c: float(p) for c, p in zip(CLASSES, row)},
                            "has_audio": item["has_audio"], "face_rate": item["face_rate"]})
        pending.clear()

    for path in tqdm(paths, unit="clip", desc="predict", disable=not progress, file=sys.stderr):
        try:
            arrays, attrs, notes = extract_clip(path, params, detector=detector)
            if not attrs["has_video"] and not attrs["has_audio"]:
                raise EmonetError(f"{path}: nothing to classify")
            embeddings = run.encode_faces(arrays["faces"]) if run.needs_video else None
        except EmonetError as exc:
            failures.append((str(path), one_line(str(exc), 400)))
            logger.warning(f"skipping {path}: {_cause(exc, path)}")
            continue
        for note in notes:
            logger.info(f"note: {path}: {note}")
        pending.append({"clip": str(path), "embeddings": embeddings, "audio": arrays["audio_functionals"],
                        "has_audio": bool(attrs["has_audio"] and not attrs["audio_silent"]),
                        "face_rate": attrs["face_rate"]})
        if len(pending) >= batch_size:
            flush()
    flush()
    return results, failures


def _cause(exc, path):
    """The error text without the leading file name (it is already in the message)."""
    text = one_line(str(exc), 400)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def format_results(results, fmt):
    """Render results as "table", "json" or "csv" text."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}; received {fmt!r}")
    if fmt == "json":
        return json.dumps(results, indent=2)
    names = display_names([r["clip"] for r in results])
    if fmt == "csv":  # the fields of the JSON rows, the clip named relative to the clips' common folder
        buffer = io.StringIO()
        rows = csv.writer(buffer)
        rows.writerow(["clip", "emotion"] + list(CLASSES) + ["has_audio", "face_rate"])
        for name, r in zip(names, results):
            face_rate = "" if r["face_rate"] is None else f"{r['face_rate']:.4f}"
            rows.writerow([name, r["emotion"]] + [f"{r['probabilities'][c]:.4f}" for c in CLASSES]
                          + [str(bool(r["has_audio"])).lower(), face_rate])
        return buffer.getvalue().rstrip("\n")
    width = max([len("clip")] + [len(n) for n in names])
    header = f"{'clip':<{width}}  {'emotion':<8}  " + " ".join(f"{c:>8}" for c in CLASSES)
    lines = [header, "-" * len(header)]
    for name, r in zip(names, results):
        probs = " ".join(f"{r['probabilities'][c]:>8.2f}" for c in CLASSES)
        lines.append(f"{name:<{width}}  {r['emotion']:<8}  {probs}")
    return "\n".join(lines)


def submission_paths(clips, folder):
    """Label file of each clip: ``<folder>/<relative path>`` with ``.txt`` for its suffix.

    The relative path is :func:`display_names`'; two clips differing only by suffix
    (``a.mp4``, ``a.wav``) keep it (``a.mp4.txt``, ``a.wav.txt``) so no file is overwritten.
    """
    names = display_names(clips)
    plain = [Path(n).with_suffix(".txt").as_posix() for n in names]
    taken = {p: plain.count(p) for p in plain}
    return [Path(folder, p if taken[p] == 1 else n + ".txt") for p, n in zip(plain, names)]


def write_submission(results, folder):
    """EmotiW-style output: one ``.txt`` per clip holding the predicted label (:func:`submission_paths`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for target, r in zip(submission_paths([r["clip"] for r in results], folder), results):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(r["emotion"] + "\n")
    return folder
