"""Evaluating a run: metrics, confusion matrix, ablation and classical baselines.

``emonet evaluate RUN_DIR [--data STORE_OR_DIR]`` scores the run's model on
its validation split (or on another store / dataset folder, extracted on the
way with the run's own extraction settings) and writes into the run directory
(or ``--out``): ``metrics.json``, ``predictions.csv``, ``confusion_matrix.png``,
``training_curves.png`` and ``result_record.json`` (config, commit, seed,
split, metrics: the provenance of every number quoted from it).
"""

import csv
import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError, EmonetError
from preprocessing.extraction import ExtractParams
from preprocessing.files import atomic_path, atomic_write_text
from preprocessing.store import FeatureStore

from emonet.evaluation import metrics
from emonet.evaluation.baselines import run_baselines
from emonet.evaluation.plots import plot_confusion_matrix, plot_training_curves
from emonet.evaluation.report import ablation_rows
from emonet.features.embedding import audio_width_read
from emonet.features.tables import SplitTable, audio_matrix, speed_copies
from emonet.experiment.rundir import RunDir
from emonet.experiment.stores import extract_folder, prepare_store
from emonet.inference.trained_run import TrainedRun

logger = logging.getLogger(__name__)


def resolve_data(run, data, *, layout=None, store_dir=None):
    """(store path, split) to evaluate on: the run's validation split, or ``data``.

    ``data`` may be a ``.h5`` store or a dataset folder in ``layout`` (default: the
    run's), extracted into ``<run_dir>/eval_<folder name>_features.h5`` (or into
    ``store_dir``, e.g. for the shipped model, whose folder is part of the package) with
    the run's extraction settings.
    """
    cfg = run.config
    if data is None:
        return prepare_store(cfg), cfg.data.val_split
    data = Path(data)
    if data.suffix == ".h5":
        if not data.is_file():
            raise ConfigError(f"--data {data}: no such feature store")
        return data, None
    if not data.is_dir():
        raise ConfigError(f"--data {data}: neither a .h5 feature store nor a dataset folder")
    store = run.evaluation_store(data)
    if store_dir is not None:
        Path(store_dir).mkdir(parents=True, exist_ok=True)
        store = Path(store_dir) / store.name
    params = evaluation_params(cfg)
    drop_outdated_cache(store, params)
    return extract_folder(data, store, cfg, layout=layout, params=params), None


def evaluation_params(cfg):
    """The settings a dataset folder is extracted with: the run's ``extract`` section, and for a run with
    ``model.test_audio_speeds`` the speed copies ``emonet predict`` extracts
    (:func:`~emonet.inference.runtime.params_for_prediction`), so its voice hears the same."""
    from emonet.inference.runtime import params_for_prediction
    settings = dataclasses.asdict(cfg.extract)
    if not cfg.model.test_audio_speeds:
        return ExtractParams(**settings)
    return params_for_prediction(settings, cfg.model.test_audio_speeds, mode=cfg.model.mode)


def drop_outdated_cache(store, params=None):
    """Delete ``store``, evaluate's own cache of a folder's features, if it cannot serve the run.

    A cache holding fewer audio functionals per clip than today's extraction
    (:func:`preprocessing.audio.feature_names`) cannot feed a model fitted on today's, and one
    extracted with other settings than ``params`` (an ``ExtractParams``; e.g. without the speed
    copies a run's voice hears) cannot be extended; it is derived from the folder alone, so it
    is extracted again (with a note) instead of refused.
    """
    store = Path(store)
    if not store.is_file():
        return
    from preprocessing.audio import feature_names
    with FeatureStore(store) as cached:
        width = len(cached.audio_feature_names)
        differing = params.differences(cached.params) if params is not None else {}
    today = len(feature_names())
    if width < today:
        logger.warning(f"note: {store}: cached by an older EmoNet ({width} audio functionals per clip, "
                       f"today {today}); extracting the folder again")
        store.unlink()
    elif differing:
        logger.warning(f"note: {store}: cached with other extraction settings ({', '.join(differing)}); "
                       f"extracting the folder again")
        store.unlink()


def _labelled_split(store, split):
    """The split to score: the given one, else "val" if present, else every labelled clip's split."""
    if split:
        return split
    splits = {r["split"] for r in store.index() if r["label_index"] >= 0}
    for candidate in ("test", "val", "train"):
        if candidate in splits:
            return candidate
    raise ConfigError(f"{store.path}: no labelled clips to evaluate on")


def evaluation_dir(run_dir, *, data=None, out_dir=None):
    """Where :func:`evaluate_run` writes its results (``metrics.json``, ...).

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run directory.
    data, out_dir : str or os.PathLike, optional
        As given to :func:`evaluate_run`.

    Returns
    -------
    pathlib.Path
        ``out_dir`` if given, else ``run_dir`` (the run's own validation split), else
        ``run_dir/eval_<stem of data>``.
    """
    if out_dir:
        return Path(out_dir)
    return (run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)).evaluation_dir(data)


def evaluate_run(run_dir, *, data=None, layout=None, out_dir=None, baselines=True, store_dir=None):
    """Evaluate a run; returns the metrics dict (also written to ``metrics.json``).

    Parameters
    ----------
    run_dir : str or os.PathLike
    data : str or os.PathLike, optional
        A store or dataset folder (default: the run's validation split).
    layout : str, optional
        Folder layout of ``data`` (default: the run's).
    out_dir : str or os.PathLike, optional
        Where to write results (default: ``run_dir``, or ``run_dir/eval_<name>`` with ``data``).
    baselines : bool
        Also fit and score the classical baselines (on the run's training split).
    store_dir : str or os.PathLike, optional
        Where a dataset folder ``data`` is extracted to (default: the run folder).

    Returns
    -------
    dict
        The content of ``metrics.json``: ``run``, ``store``, ``split``, ``mode``, ``n``,
        ``accuracy``, ``uar``, ``macro_f1``, ``auc_ovo``, ``report`` (a
        :func:`~emonet.evaluation.metrics.classification_report`), ``ablation``,
        ``baselines`` and ``evaluated``; ``temperature`` for a calibrated run (``train.calibrate``: the
        model's probabilities are tempered). Nothing is printed: the text a person reads is
        :func:`emonet.evaluation.report.format_evaluation` of this dict.
    """
    run_folder = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    run_dir = run_folder.path
    run = TrainedRun(run_folder)
    store_path, split = resolve_data(run_folder, data, layout=layout, store_dir=store_dir)
    train_store_path = store_path if data is None else None
    out_dir = evaluation_dir(run_dir, data=data, out_dir=out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with FeatureStore(store_path) as store:
        split, table, functionals, embeddings, copies = _scored_split(store, split, run)
        reports = {}
        candidates = [("model", run.mode)] + run_folder.ablation_models()
        proba_main = None
        for model_name, mode in candidates:
            part = run if model_name == "model" else TrainedRun(run_folder, model_name=model_name)
            proba = part.predict(embeddings if part.needs_video else None, functionals, table.has_audio,
                                 audio_copies=copies)
            report = metrics.classification_report(table.labels, proba)
            reports[mode] = report
            if model_name == "model":
                proba_main = proba
        baseline_rows = []
        if baselines:
            baseline_rows = _baselines(run, table, functionals, embeddings, train_store_path=train_store_path)
    report = reports[run.mode]
    result = {
        "run": str(run_dir), "store": str(store_path), "split": split, "mode": run.mode, "n": int(len(table)),
        "accuracy": report["accuracy"], "uar": report["uar"], "macro_f1": report["macro_f1"],
        "auc_ovo": report.get("auc_ovo"), "report": report,
        "ablation": {mode: _summary(r) for mode, r in reports.items()},
        "baselines": [{k: v for k, v in row.items() if k != "report"} for row in baseline_rows],
        "evaluated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if run.temperature is not None:
        result["temperature"] = run.temperature
    out = RunDir.outputs(out_dir)
    run_folder.write_json(out["metrics"], result)
    _write_predictions(out["predictions"], table, proba_main)
    plot_confusion_matrix(np.array(report["confusion_matrix"]), out["confusion_png"],
                          title=f"{run.mode} on {split} (UAR {100 * report['uar']:.1f}%)")
    run_folder.write_json(out["confusion_json"], {"classes": list(CLASSES), "rows": "true", "columns": "predicted",
                                                  "matrix": report["confusion_matrix"]})
    plot_training_curves(run_folder.stage_logs(), out["curves"])
    _write_record(run_folder, out["record"], result)
    atomic_write_text(out["ablation"], metrics.ablation_table(ablation_rows(result)) + "\n")
    return result


def validation_readings(run_dir):
    """The run's own probabilities on its validation split, before any temperature (``train.calibrate``).

    Returns
    -------
    labels : np.ndarray [shape=(n,), dtype=int]
        Class indices of the split's labelled clips.
    readings : list of np.ndarray [shape=(n, 7)]
        :meth:`~emonet.inference.trained_run.TrainedRun.readings`: the clips, then their speed copies.
    split : str
    """
    run_folder = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    run = TrainedRun(run_folder)
    store_path, split = resolve_data(run_folder, None)
    with FeatureStore(store_path) as store:
        split, table, functionals, embeddings, copies = _scored_split(store, split, run)
        readings = run.readings(embeddings if run.needs_video else None, functionals, table.has_audio,
                                audio_copies=copies)
    return np.asarray(table.labels, int), readings, split


def _scored_split(store, split, run):
    """What :func:`evaluate_run` scores: (split, its labelled clips' SplitTable, their audio functionals, frame
    embeddings and speed copies); ConfigError when it has no labelled clip or too few audio values."""
    _check_extraction(store, run)
    split = _labelled_split(store, split)
    table, unlabelled = SplitTable(store, split, labelled=False).labelled_part()
    if unlabelled:
        logger.info(f"{unlabelled} clips of split {split!r} have no label (no majority among raters): "
                    f"left out of the scores")
    if not len(table):
        raise ConfigError(f"{store.path}: no labelled clips in split {split!r} to evaluate on")
    functionals = audio_matrix(store, table.keys)
    expected = audio_width_read(run.reducer) if run.needs_audio and run.reducer is not None else None
    if expected is not None and functionals.shape[1] < expected and np.any(table.has_audio):
        raise ConfigError(f"{store.path}: holds {functionals.shape[1]} audio functionals per clip, the model "
                          f"reads {expected} (an older EmoNet extracted it); evaluate on the clip folder or "
                          f"extract it again to a new store")
    embeddings = run.store_embeddings(store, table.keys)
    copies = _audio_copies(store, run, table)
    return split, table, functionals, embeddings, copies


def _audio_copies(store, run, table):
    """Per clip of ``table``, the (K, D) speed copies the run's voice hears (``model.test_audio_speeds``) or None
    (:func:`~emonet.features.tables.speed_copies`; a fusion run's clip with a face has none, as ``emonet predict``
    extracts them); None for a run without test speeds, clips without audio (photos), or (with a warning) a
    store extracted without those copies."""
    if not run.test_audio_speeds or not np.any(table.has_audio):
        return None
    if [float(s) for s in store.params.get("audio_speeds") or []] != list(run.test_audio_speeds):
        logger.warning(f"warning: {store.path} holds no audio copies at the run's test_audio_speeds "
                       f"{list(run.test_audio_speeds)}; the voice hears each clip once, without the copies emonet "
                       f"predict adds (evaluate the clip folder to score with them)")
        return None
    return speed_copies(store, table.keys, table.has_audio)


def _check_extraction(store, run):
    """Warn when a store was extracted with other settings than the run was trained on (its speed copies aside:
    they add values, they do not change the clip's own)."""
    differing = ExtractParams(**run.extract_params).differences(store.params)
    for copies in ("audio_speeds", "speed_copies_without_face_only"):
        differing.pop(copies, None)
    if differing:
        detail = ", ".join(f"{k}: store {s!r}, run {r!r}" for k, (s, r) in sorted(differing.items()))
        logger.warning(f"warning: {store.path} was extracted with other settings than the run ({detail}); "
                       f"results may not be comparable")


def _summary(report):
    return {key: report.get(key) for key in ("accuracy", "uar", "macro_f1", "auc_ovo", "n")}


def _baselines(run, table, functionals, embeddings, *, train_store_path=None):
    """Classical baselines fitted on the run's training split, scored on ``table``."""
    cfg = run.config
    if train_store_path is None:
        try:
            train_store_path = prepare_store(cfg)
        except EmonetError as exc:  # e.g. the training data is not on this machine
            logger.warning(f"baselines skipped: training store unavailable ({exc})")
            return []
    with FeatureStore(train_store_path) as train_store:
        train_table, _ = SplitTable(train_store, cfg.data.train_split, labelled=False).labelled_part()
        rows = []
        if train_table.has_audio.any():
            train_audio = audio_matrix(train_store, train_table.keys)
            rows += run_baselines(train_audio, train_table.labels, functionals, table.labels,
                                  feature_set="audio functionals", seed=cfg.seed)
        else:  # still images, silent footage: the functionals are all zeros
            logger.info("audio baselines skipped: no training clip has audio")
        if run.frame_encoder is not None:
            train_emb = run.store_embeddings(train_store, train_table.keys)
            pooled = lambda embs: np.stack([e.mean(axis=0) if len(e) else np.zeros(e.shape[1]) for e in embs])  # noqa: E731
            rows += run_baselines(pooled(train_emb), train_table.labels, pooled(embeddings), table.labels,
                                  feature_set="mean-pooled frame embeddings", seed=cfg.seed)
    return rows


def _write_predictions(path, table, proba):
    """predictions.csv: one row per clip, its label, the predicted class and the seven probabilities."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(["clip", "source", "label", "predicted"] + [f"p_{c}" for c in CLASSES])
        for i, key in enumerate(table.keys):
            label = CLASSES[table.labels[i]] if table.labels[i] >= 0 else ""
            rows.writerow([key.replace("|", "/"), table.sources[i], label, CLASSES[int(np.argmax(proba[i]))]]
                          + [f"{p:.4f}" for p in proba[i]])


def _write_record(run, path, result):
    """result_record.json: config, commit, seed, split and metrics together."""
    cfg, versions, timing = run.config, run.versions(), run.timing()
    record = {"config": cfg.to_dict(), "git_commit": versions.get("git_commit", "unknown"), "seed": cfg.seed,
              "split": result["split"], "store": result["store"], "train_seconds": timing.get("train_seconds"),
              "metrics": {k: result[k] for k in ("n", "accuracy", "uar", "macro_f1", "auc_ovo")},
              "ablation": result["ablation"], "baselines": result["baselines"]}
    run.write_json(path, record)
