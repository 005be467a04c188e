"""A trained run on the real recorded clips of ../shared/data/real, folder by folder and all together.

What it measures
----------------
Every labelled clip of ``crema_d/`` (CREMA-D, FLV/VP6 with speech), ``mead/`` (MEAD 1080p,
some with audio), ``mead_video_only/`` (MEAD 256x256, no audio) and ``selfrecorded/``
(portrait phone clips) is extracted with the run's own settings and classified by the
run's model (``emonet evaluate RUN --data FOLDER --layout L --no-baselines``). Contempt
has no AFEW class and is left out by the layouts. The script reports accuracy and UAR per
folder and over all clips pooled (the issue-9 target: >= 60% UAR pooled), and for the pooled
clips how sure the model was (mean top probability, calibration error, log-loss). None of these
clips is used for training or for any choice of the model.

Run:  .venv/bin/python experiments/real_clips.py runs/ferplus_faces-seed0
Writes ``experiments/results/real_clips_<run name>.json`` and prints a table.
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emonet.cli import configure_logging  # noqa: E402
from emonet.evaluation.evaluate import evaluate_run  # noqa: E402
from emonet.evaluation.metrics import classification_report  # noqa: E402
from emonet.experiment.rundir import RunDir  # noqa: E402
from preprocessing.constants import CLASSES  # noqa: E402

REAL = REPO.parent / "shared" / "data" / "real"
#: Folder of ../shared/data/real -> its layout.
FOLDERS = {"crema_d": "crema_d", "mead": "mead", "mead_video_only": "mead", "selfrecorded": "mead"}


def read_predictions(path):
    """(true class ids, probabilities [shape=(n, 7)]) of an evaluation's predictions.csv."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    y = np.array([CLASSES.index(r["label"]) for r in rows])
    proba = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])
    return y, proba


def real_clip_record(run):
    """Evaluate ``run`` (a RunDir) on every folder of real clips; writes and returns the record (dict)."""
    rows, pooled_y, pooled_p = [], [], []
    for folder, layout in FOLDERS.items():
        out = run.path / f"eval_real_{folder}"
        result = evaluate_run(run, data=REAL / folder, layout=layout, out_dir=out, baselines=False,
                              store_dir=out)
        y, proba = read_predictions(RunDir.outputs(out)["predictions"])
        pooled_y.append(y)
        pooled_p.append(proba)
        rows.append({"folder": folder, "layout": layout, "n": result["n"], "accuracy": result["accuracy"],
                     "uar": result["uar"], "predicted": [CLASSES[i] for i in proba.argmax(1)],
                     "true": [CLASSES[i] for i in y]})
    pooled = classification_report(np.concatenate(pooled_y), np.concatenate(pooled_p))
    record = {"run": str(run.path), "git_commit": run.versions().get("git_commit"), "config": run.config.to_dict(),
              "folders": rows, "pooled": {k: pooled[k] for k in ("n", "accuracy", "uar", "macro_f1", "auc_ovo", "mean_confidence",
                                              "calibration_error", "log_loss")},
              "pooled_confusion_matrix": pooled["confusion_matrix"]}
    target = REPO / "experiments" / "results" / f"real_clips_{run.path.name}.json"
    target.write_text(json.dumps(record, indent=2) + "\n")
    return record, target


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    configure_logging()
    record, target = real_clip_record(RunDir(args.run_dir).check_is_run())
    rows, pooled = record["folders"], record["pooled"]
    print(f"{'folder':<17} {'n':>3} {'accuracy':>9} {'UAR':>7}")
    for row in rows:
        print(f"{row['folder']:<17} {row['n']:>3} {100 * row['accuracy']:>8.1f}% {100 * row['uar']:>6.1f}%")
    print(f"{'all':<17} {pooled['n']:>3} {100 * pooled['accuracy']:>8.1f}% {100 * pooled['uar']:>6.1f}%")
    print(f"-> {target}")


if __name__ == "__main__":
    main()
