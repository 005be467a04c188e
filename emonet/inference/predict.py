"""Classifying clips the model has never seen: decode, extract, embed, predict, write.

A clip may be a video, an audio file or a still image (a photo is a clip of one
frame without audio; its face is detected as in a video frame, see
:mod:`preprocessing.images`). A clip that cannot be decoded is reported ("skipping <file>: <cause>") and the
rest carry on; the caller exits non-zero if any failed. Output writers are
chosen by format: an aligned table, JSON or CSV, plus optionally an
EmotiW-style submission folder with one ``<clip path>.txt`` holding the label.

Folders given as inputs are expanded recursively to their media files
(:func:`expand_clips`); the outputs (table, JSON, CSV) and the submission name a clip
by its path relative to the common parent folder of all clips (:func:`display_names`),
so two ``happy.mp4`` in different folders stay apart. JSON objects and CSV rows carry
the same fields, :data:`OUTPUT_FIELDS` (the seven probabilities flattened).

An output file in CSV or JSON is written as the clips are classified: each batch's rows
go to a journal beside it, and the file is written whole at the end
(:class:`emonet.inference.journal.OutputJournal`), so a killed run keeps what it
classified and ``--resume`` finishes it.
"""

import csv
import io
import json
import logging
import os
import sys
from pathlib import Path

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError, EmonetError, MediaError, one_line
from preprocessing.layouts import MEDIA_SUFFIXES

# TensorFlow's quiet import and the device, also importable from here as before runtime.py held them
from emonet.inference.runtime import TF_MIN_LOG_LEVEL, compute_device, import_tensorflow  # noqa: F401
from emonet.inference.runtime import below_tf_log_level as _below_tf_log_level  # noqa: F401 - its old name here

logger = logging.getLogger(__name__)

#: Output formats. This module imports NumPy, the extraction (SciPy, librosa, OpenCV) and
#: TensorFlow only inside the functions that use them, so ``emonet --help`` reads it cheaply.
FORMATS = ("table", "json", "csv")

#: Fields of a result row beside the per-class probabilities (JSON keys, CSV columns).
RESULT_FIELDS = ("clip", "emotion", "has_audio", "face_rate")

#: Fields of an output row, in order: the CSV columns and the keys of each JSON object
#: (:func:`output_rows`; the probabilities flattened, one field per class).
OUTPUT_FIELDS = RESULT_FIELDS[:2] + CLASSES + RESULT_FIELDS[2:]


def check_model_dir(path):
    """The run folder a model argument names, else :class:`ModelError`; no model is loaded.

    ``path`` is a run folder (holds ``config.yaml``), or None or ``emonet-base`` for the shipped model
    (:func:`emonet.inference.runtime.is_shipped_model`).
    """
    from emonet.experiment.rundir import RunDir
    from emonet.inference.runtime import is_shipped_model, shipped_model_dir
    if is_shipped_model(path):
        return shipped_model_dir()
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


def check_some_input_exists(clips):
    """Raise :class:`MediaError` (one line, naming them) when none of ``clips`` exists: there is nothing to classify.

    Called before any decoding or TensorFlow import. When only some are missing, the batch goes on
    and reports them as failures (exit status 1), like any clip that cannot be read.
    """
    missing = [c for c in clips if not os.path.exists(c)]
    if clips and len(missing) == len(clips):
        others = len(missing) - 1
        more = "" if not others else " (nor does the other input)" if others == 1 else f" (nor do the {others} others)"
        raise MediaError(f"{missing[0]}: no such file or folder{more}")


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
    """Extraction settings for classifying clips with a :class:`TrainedRun`: the run's own, with the speed copies
    of its ``model.test_audio_speeds`` instead of its training copies."""
    from emonet.inference.runtime import params_for_prediction
    return params_for_prediction(run.extract_params, run.test_audio_speeds, mode=run.mode)


def predict_clips(paths, run_dir, *, batch_size=16, progress=True, detector=None, on_batch=None, workers=0):
    """Class probabilities for clip files.

    Parameters
    ----------
    paths : list of str or os.PathLike
        Videos, audio files or still images (:data:`preprocessing.constants.IMAGE_SUFFIXES`).
    run_dir : str or os.PathLike or TrainedRun or None
        A trained run directory, or one already loaded (repeated calls reuse it); None or
        ``"emonet-base"``: the shipped model.
    batch_size : int
        Clips classified per model call.
    progress : bool
        Progress bar (clips) on stderr. Skipped clips are logged (``skipping <file>: <cause>``).
    detector : object, optional
        A face detector from :func:`preprocessing.faces.make_detector` for the run's
        ``extract.detector``; made here when not given (helpers make their own).
    on_batch : callable, optional
        Called with the new result dicts as soon as each batch is classified (``emonet
        predict -o`` keeps them on disk, so a killed run loses at most one batch).
    workers : int or None
        Helper processes that decode and extract the next clips while this process embeds
        and classifies (:class:`~emonet.inference.workers.ExtractionFeed`; started before the
        model loads); 0 extracts in this process; None: :func:`~emonet.inference.workers.default_workers`.
        Results, their order and the failures are the same for any number.

    Returns
    -------
    results : list of dict
        Per classified clip: ``clip`` (path), ``emotion`` (top class), ``probabilities``
        (dict class -> float, CLASSES order), ``has_audio``, ``face_rate``.
    failures : list of tuple (str, str)
        (path, one-line reason) of clips that were skipped.
    """
    from tqdm import tqdm

    from emonet.inference.runtime import folder_prediction_params
    from emonet.inference.workers import ExtractionFeed, check_workers, prefetch

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"--batch-size must be an integer >= 1; received {batch_size!r}")
    workers = check_workers(workers)
    loaded = hasattr(run_dir, "predict") and hasattr(run_dir, "extract_params")  # a TrainedRun
    folder = None if loaded else check_model_dir(run_dir)
    if loaded or workers == 0:
        params = prediction_params(run_dir) if loaded else folder_prediction_params(folder)
        if detector is None and workers == 0:
            from preprocessing.faces import make_detector
            detector = make_detector(params.detector)
    else:  # the helpers read the run's settings: they start at once, while this process imports the rest
        params = folder
    # helpers start on the first clips now, while TensorFlow and the model load
    feed = ExtractionFeed(paths, params, workers=workers, detector=detector, ahead=prefetch(workers, batch_size))
    results, failures, pending = [], [], []
    try:
        if loaded:
            run = run_dir
        else:
            import_tensorflow()  # before trained_run imports Keras: TensorFlow's start-up notices held back
            from emonet.inference.trained_run import TrainedRun
            run = TrainedRun(folder)
            logger.info(f"model {run.run_dir.name} ({run.mode}) on {compute_device()}")

        def flush():
            if not pending:
                return
            batch = classify_items(pending, run)
            results.extend(batch)
            pending.clear()
            if on_batch is not None:
                on_batch(batch)

        for path, outcome in tqdm(feed, total=len(feed.paths), unit="clip", desc="predict", disable=not progress,
                                  file=sys.stderr):
            try:
                if outcome[0] == "error":
                    raise EmonetError(outcome[1])
                _, arrays, attrs, notes = outcome
                item = clip_item(path, arrays, attrs, run)
            except EmonetError as exc:
                failures.append((str(path), one_line(str(exc), 400)))
                logger.warning(f"skipping {path}: {_cause(exc, path)}")
                continue
            for note in notes:
                logger.info(f"note: {path}: {note}")
            pending.append(item)
            if len(pending) >= batch_size:
                flush()
        flush()
    finally:
        feed.close()
    return results, failures


def clip_item(clip, arrays, attrs, run):
    """An extracted clip (``extract_clip``'s or ``extract_arrays``' output) ready for :func:`classify_items`.

    Its face embeddings (when the run uses video: of the ``n_frames`` frames the model reads,
    :meth:`~emonet.inference.trained_run.TrainedRun.encode_clip_faces`), audio functionals,
    ``has_audio`` (an audio stream that is not silent) and ``face_rate``; :class:`EmonetError`
    without video and audio.
    """
    if not attrs["has_video"] and not attrs["has_audio"]:
        raise EmonetError(f"{clip}: nothing to classify")
    return {"clip": str(clip), "embeddings": run.encode_clip_faces(arrays["faces"]) if run.needs_video else None,
            "audio": arrays["audio_functionals"], "audio_copies": arrays.get("audio_speed_functionals"),
            "has_audio": bool(attrs["has_audio"] and not attrs["audio_silent"]), "face_rate": attrs["face_rate"]}


def classify_items(items, run):
    """Result dicts of :func:`predict_clips` for clip items (:func:`clip_item`), in one model call."""
    import numpy as np
    proba = run.predict([p["embeddings"] for p in items], np.stack([p["audio"] for p in items]),
                        np.array([p["has_audio"] for p in items]), audio_copies=[p["audio_copies"] for p in items])
    return [{"clip": item["clip"], "emotion": CLASSES[int(np.argmax(row))],
             "probabilities": {c: float(p) for c, p in zip(CLASSES, row)},
             "has_audio": item["has_audio"], "face_rate": item["face_rate"]} for item, row in zip(items, proba)]


def _cause(exc, path):
    """The error text without the leading file name (it is already in the message)."""
    text = one_line(str(exc), 400)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def output_rows(results, names=None):
    """Result dicts -> output rows: :data:`OUTPUT_FIELDS`, the same for JSON and CSV.

    Parameters
    ----------
    results : list of dict
        From :func:`predict_clips` (``probabilities`` nested, ``clip`` the path).
    names : dict, optional
        ``str(path) -> name`` of every clip of the batch (:func:`display_names` of all the
        clips, so a name does not change when some fail); default: names of ``results``' clips.

    Returns
    -------
    list of dict
        ``clip`` (relative to the clips' common folder), ``emotion``, one probability per
        class, ``has_audio`` (bool) and ``face_rate`` (float, or None without video).
    """
    if names is None:
        names = dict(zip((r["clip"] for r in results), display_names([r["clip"] for r in results])))
    return [{"clip": names[r["clip"]], "emotion": r["emotion"], **{c: r["probabilities"][c] for c in CLASSES},
             "has_audio": bool(r["has_audio"]), "face_rate": r["face_rate"]} for r in results]


def format_rows(rows, fmt):
    """Render output rows (:func:`output_rows`) as "table", "json" or "csv" text."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}; received {fmt!r}")
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(OUTPUT_FIELDS)
        for r in rows:
            face_rate = "" if r["face_rate"] is None else f"{r['face_rate']:.4f}"
            writer.writerow([r["clip"], r["emotion"]] + [f"{r[c]:.4f}" for c in CLASSES]
                            + [str(bool(r["has_audio"])).lower(), face_rate])
        return buffer.getvalue().rstrip("\n")
    width = max([len("clip")] + [len(r["clip"]) for r in rows])
    header = f"{'clip':<{width}}  {'emotion':<8}  " + " ".join(f"{c:>8}" for c in CLASSES)
    lines = [header, "-" * len(header)]
    for r in rows:
        probs = " ".join(f"{r[c]:>8.2f}" for c in CLASSES)
        lines.append(f"{r['clip']:<{width}}  {r['emotion']:<8}  {probs}")
    return "\n".join(lines)


def format_results(results, fmt):
    """Render results (:func:`predict_clips`) as "table", "json" or "csv" text (:func:`format_rows`)."""
    return format_rows(output_rows(results), fmt)


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

