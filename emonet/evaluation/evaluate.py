"""Evaluating a run: metrics, confusion matrix, ablation and classical baselines.

``emonet evaluate RUN_DIR [--data STORE_OR_DIR]`` scores the run's model on
its validation split (or on another store / dataset folder, extracted on the
way with the run's own extraction settings) and writes into the run directory
(or ``--out``): ``metrics.json``, ``predictions.csv``, ``confusion_matrix.png``,
``training_curves.png`` and ``result_record.json`` (config, commit, seed,
split, metrics: the provenance of every number quoted from it).
"""

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError, EmonetError
from preprocessing.store import FeatureStore

from emonet.evaluation import metrics
from emonet.evaluation.baselines import run_baselines
from emonet.features.inputs import SplitTable, audio_matrix
from emonet.inference.trained_run import TrainedRun


def resolve_data(run_dir, data, log, *, layout=None):
    """(store path, split) to evaluate on: the run's validation split, or ``data``.

    ``data`` may be a ``.h5`` store or a dataset folder in ``layout`` (default: the
    run's), extracted into ``<run_dir>/eval_<folder name>_features.h5`` with the run's
    extraction settings.
    """
    cfg = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    if data is None:
        from emonet.experiment.stores import prepare_store
        return prepare_store(cfg, log), cfg["data"]["val_split"]
    data = Path(data)
    if data.suffix == ".h5":
        if not data.is_file():
            raise ConfigError(f"--data {data}: no such feature store")
        return data, None
    if not data.is_dir():
        raise ConfigError(f"--data {data}: neither a .h5 feature store nor a dataset folder")
    from emonet.experiment.stores import extract_folder
    return extract_folder(data, Path(run_dir) / f"eval_{data.name}_features.h5", cfg, log, layout=layout), None


def _labelled_split(store, split):
    """The split to score: the given one, else "val" if present, else every labelled clip's split."""
    if split:
        return split
    splits = {r["split"] for r in store.index() if r["label_index"] >= 0}
    for candidate in ("test", "val", "train"):
        if candidate in splits:
            return candidate
    raise ConfigError(f"{store.path}: no labelled clips to evaluate on")


def evaluate_run(run_dir, *, data=None, layout=None, out_dir=None, baselines=True, log=None):
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
    """
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    run_dir = Path(run_dir)
    run = TrainedRun(run_dir)
    store_path, split = resolve_data(run_dir, data, log, layout=layout)
    train_store_path = store_path if data is None else None
    out_dir = Path(out_dir) if out_dir else (run_dir if data is None else run_dir / f"eval_{Path(data).stem}")
    out_dir.mkdir(parents=True, exist_ok=True)
    with FeatureStore(store_path) as store:
        _check_extraction(store, run, log)
        split = _labelled_split(store, split)
        table = SplitTable(store, split)
        functionals = audio_matrix(store, table.keys)
        embeddings = run.store_embeddings(store, table.keys)
        rows, reports = [], {}
        candidates = [("model", run.mode)] + [(f"ablation/{m}", m) for m in ("audio", "video")
                                               if (run_dir / "ablation" / f"{m}.keras").is_file()]
        proba_main = None
        for model_name, mode in candidates:
            part = run if model_name == "model" else TrainedRun(run_dir, model_name=model_name)
            proba = part.predict(embeddings if part.needs_video else None, functionals, table.has_audio)
            report = metrics.classification_report(table.labels, proba)
            reports[mode] = report
            rows.append({"name": f"EmoNet {mode}" + (" (this run)" if model_name == "model" else ""), **_summary(report)})
            if model_name == "model":
                proba_main = proba
        baseline_rows = []
        if baselines:
            baseline_rows = _baselines(run, table, functionals, embeddings, log, train_store_path=train_store_path)
    report = reports[run.mode]
    result = {
        "run": str(run_dir), "store": str(store_path), "split": split, "mode": run.mode, "n": int(len(table)),
        "accuracy": report["accuracy"], "uar": report["uar"], "macro_f1": report["macro_f1"],
        "auc_ovo": report.get("auc_ovo"), "report": report,
        "ablation": {mode: _summary(r) for mode, r in reports.items()},
        "baselines": [{k: v for k, v in row.items() if k != "report"} for row in baseline_rows],
        "evaluated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    _write_predictions(out_dir / "predictions.csv", table, proba_main)
    metrics.plot_confusion_matrix(np.array(report["confusion_matrix"]), out_dir / "confusion_matrix.png",
                                  title=f"{run.mode} on {split} (UAR {100 * report['uar']:.1f}%)")
    (out_dir / "confusion_matrix.json").write_text(json.dumps(
        {"classes": list(CLASSES), "rows": "true", "columns": "predicted", "matrix": report["confusion_matrix"]},
        indent=2))
    _plot_curves(run_dir, out_dir / "training_curves.png")
    _write_record(run_dir, out_dir, result)
    table_rows = rows + [{k: v for k, v in row.items() if k != "report"} for row in baseline_rows]
    (out_dir / "ablation.md").write_text(metrics.ablation_table(table_rows) + "\n")
    print(metrics.format_report(report, title=f"{run_dir.name}: {run.mode} model on {split} split of {store_path}"))
    print()
    print(metrics.ablation_table(table_rows))
    print(f"\nUAR {100 * report['uar']:.1f}%  accuracy {100 * report['accuracy']:.1f}%  (n={len(table)}) "
          f"-> {out_dir / 'metrics.json'}")
    return result


def _check_extraction(store, run, log):
    """Warn when a store was extracted with other settings than the run was trained on."""
    differing = {k: (store.params.get(k), v) for k, v in run.extract_params.items() if store.params.get(k) != v}
    if differing:
        detail = ", ".join(f"{k}: store {s!r}, run {r!r}" for k, (s, r) in sorted(differing.items()))
        log(f"warning: {store.path} was extracted with other settings than the run ({detail}); "
            f"results may not be comparable")


def _summary(report):
    return {key: report.get(key) for key in ("accuracy", "uar", "macro_f1", "auc_ovo", "n")}


def _baselines(run, table, functionals, embeddings, log, *, train_store_path=None):
    """Classical baselines fitted on the run's training split, scored on ``table``."""
    cfg = run.config
    if train_store_path is None:
        try:
            from emonet.experiment.stores import prepare_store
            train_store_path = prepare_store(cfg, log)
        except EmonetError as exc:  # e.g. the training data is not on this machine
            log(f"baselines skipped: training store unavailable ({exc})")
            return []
    with FeatureStore(train_store_path) as train_store:
        train_table = SplitTable(train_store, cfg["data"]["train_split"])
        rows = []
        train_audio = audio_matrix(train_store, train_table.keys)
        rows += run_baselines(train_audio, train_table.labels, functionals, table.labels,
                              feature_set="audio functionals", seed=cfg["seed"])
        if run.frame_encoder is not None:
            train_emb = run.store_embeddings(train_store, train_table.keys)
            pooled = lambda embs: np.stack([e.mean(axis=0) if len(e) else np.zeros(e.shape[1]) for e in embs])  # noqa: E731
            rows += run_baselines(pooled(train_emb), train_table.labels, pooled(embeddings), table.labels,
                                  feature_set="mean-pooled frame embeddings", seed=cfg["seed"])
    return rows


def _write_predictions(path, table, proba):
    with open(path, "w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(["clip", "source", "label", "predicted"] + [f"p_{c}" for c in CLASSES])
        for i, key in enumerate(table.keys):
            label = CLASSES[table.labels[i]] if table.labels[i] >= 0 else ""
            rows.writerow([key.replace("|", "/"), table.sources[i], label, CLASSES[int(np.argmax(proba[i]))]]
                          + [f"{p:.4f}" for p in proba[i]])


def _plot_curves(run_dir, path):
    """Validation UAR and training loss per epoch for every stage of the run."""
    logs = sorted((Path(run_dir) / "stages").glob("*/log.csv"))
    if not logs:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for log_path in logs:
        with open(log_path) as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            continue
        epochs = [int(r["epoch"]) for r in rows]
        axes[0].plot(epochs, [float(r["loss"]) for r in rows], label=log_path.parent.name)
        axes[1].plot(epochs, [float(r["val_uar"]) for r in rows], label=log_path.parent.name)
    axes[0].set(title="training loss", xlabel="epoch")
    axes[1].set(title="validation UAR", xlabel="epoch", ylim=(0, 1))
    axes[1].axhline(1 / len(CLASSES), color="grey", linestyle=":", label="chance")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _write_record(run_dir, out_dir, result):
    """result_record.json: config, commit, seed, split and metrics together."""
    cfg = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    versions = json.loads((Path(run_dir) / "versions.json").read_text()) if (Path(run_dir) / "versions.json").exists() \
        else {}
    timing = json.loads((Path(run_dir) / "timing.json").read_text()) if (Path(run_dir) / "timing.json").exists() \
        else {}
    record = {"config": cfg, "git_commit": versions.get("git_commit", "unknown"), "seed": cfg.get("seed"),
              "split": result["split"], "store": result["store"], "train_seconds": timing.get("train_seconds"),
              "metrics": {k: result[k] for k in ("n", "accuracy", "uar", "macro_f1", "auc_ovo")},
              "ablation": result["ablation"], "baselines": result["baselines"]}
    (out_dir / "result_record.json").write_text(json.dumps(record, indent=2))
