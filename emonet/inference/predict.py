"""Classifying clips the model has never seen: decode, extract, embed, predict, write.

A clip may be a video, an audio file or a still image (a photo is a clip of one
frame without audio; its face is detected as in a video frame, see
:mod:`preprocessing.images`). A clip that cannot be decoded is reported ("skipping <file>: <cause>") and the
rest carry on; the caller exits non-zero if any failed. Output writers are
chosen by format: an aligned table, JSON or CSV, plus optionally an
EmotiW-style submission folder with one ``<clip name>.txt`` holding the label.
"""

import csv
import dataclasses
import io
import json
import logging
import sys
from pathlib import Path

import numpy as np

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError, EmonetError, one_line
from preprocessing.extraction import ExtractParams, extract_clip
from preprocessing.faces import make_detector

logger = logging.getLogger(__name__)

#: Output formats. This module imports TensorFlow only when clips are classified,
#: so ``emonet --help`` can read it cheaply.
FORMATS = ("table", "json", "csv")


def predict_clips(paths, run_dir, *, batch_size=16, progress=True):
    """Class probabilities for clip files.

    Parameters
    ----------
    paths : list of str or os.PathLike
        Videos, audio files or still images (:data:`preprocessing.constants.IMAGE_SUFFIXES`).
    run_dir : str or os.PathLike
        A trained run directory.
    batch_size : int
        Clips classified per model call.
    progress : bool
        Progress bar (clips) on stderr. Skipped clips are logged (``skipping <file>: <cause>``).

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
    run = TrainedRun(run_dir)
    # the speed-perturbed copies of extract.audio_speeds are training material only
    params = dataclasses.replace(ExtractParams(**run.extract_params), audio_speeds=())
    detector = make_detector(params.detector)
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
    if fmt == "csv":
        buffer = io.StringIO()
        rows = csv.writer(buffer)
        rows.writerow(["clip", "emotion"] + list(CLASSES))
        for r in results:
            rows.writerow([r["clip"], r["emotion"]] + [f"{r['probabilities'][c]:.4f}" for c in CLASSES])
        return buffer.getvalue().rstrip("\n")
    width = max([len("clip")] + [len(Path(r["clip"]).name) for r in results])
    header = f"{'clip':<{width}}  {'emotion':<8}  " + " ".join(f"{c[:7]:>7}" for c in CLASSES)
    lines = [header, "-" * len(header)]
    for r in results:
        probs = " ".join(f"{r['probabilities'][c]:>7.2f}" for c in CLASSES)
        lines.append(f"{Path(r['clip']).name:<{width}}  {r['emotion']:<8}  {probs}")
    return "\n".join(lines)


def write_submission(results, folder):
    """EmotiW-style output: ``<folder>/<clip stem>.txt`` holding the predicted label."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for r in results:
        (folder / f"{Path(r['clip']).stem}.txt").write_text(r["emotion"] + "\n")
    return folder
