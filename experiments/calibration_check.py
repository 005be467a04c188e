"""Does ``train.calibrate`` make a run's probabilities honest on clips no choice was made on?

A copy of a trained run (``runs/<run>-calibrated``: its model, reducer, frame encoder and real-clip
stores, without the fold models) is calibrated the way ``train.calibrate: true`` does it: a
temperature fitted on the run's validation split (:func:`emonet.training.calibration.fit_run_temperature`,
``calibration.json``). Both the run and the copy are then evaluated on its validation split (where the
temperature was fitted: in-sample) and on the real recorded clips of ../shared/data/real
(:mod:`real_clips`; no choice of the run saw them): mean top probability, accuracy, expected
calibration error and log-loss. Decisions are the same in both (a temperature keeps the order of the
classes), so accuracy and UAR do not move.

Run:  .venv/bin/python experiments/calibration_check.py runs/composite_lstm_on_base-seed0   (~5 min)
Writes experiments/results/calibration_<run name>.json and prints a table.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments"))

from emonet.cli import configure_logging  # noqa: E402
from emonet.evaluation.evaluate import evaluate_run  # noqa: E402
from emonet.evaluation.metrics import classification_report  # noqa: E402
from emonet.experiment.rundir import RunDir  # noqa: E402
from emonet.training.calibration import fit_run_temperature  # noqa: E402
from real_clips import FOLDERS, read_predictions, real_clip_record  # noqa: E402

#: What a calibration row keeps of a classification report.
KEYS = ("n", "accuracy", "uar", "mean_confidence", "calibration_error", "log_loss")


def calibrated_copy(run):
    """``runs/<name>-calibrated``: the run's inference files and real-clip stores, calibrated (a RunDir)."""
    target = RunDir(run.path.parent / f"{run.path.name}-calibrated")
    if target.path.exists():
        shutil.rmtree(target.path)
    shutil.copytree(run.path, target.path, ignore=shutil.ignore_patterns("folds", "stages", "embeddings.h5"))
    fit_run_temperature(target)
    return target


def scores(run):
    """The run's validation split and its pooled real clips: {"val": row, "real": row} of :data:`KEYS`."""
    val = evaluate_run(run, baselines=False)["report"]
    real_clip_record(run)
    pooled = [read_predictions(RunDir.outputs(run.path / f"eval_real_{folder}")["predictions"]) for folder in FOLDERS]
    real = classification_report(np.concatenate([y for y, _ in pooled]), np.concatenate([p for _, p in pooled]))
    return {"val": {k: val[k] for k in KEYS}, "real": {k: real[k] for k in KEYS}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    configure_logging()
    run = RunDir(args.run_dir).check_is_run()
    copy = calibrated_copy(run)
    record = {"run": str(run.path), "git_commit": run.versions().get("git_commit"),
              "calibration": json.loads(copy.calibration_path.read_text()),
              "as_trained": scores(run), "calibrated": scores(copy)}
    target = REPO / "experiments" / "results" / f"calibration_{run.path.name}.json"
    target.write_text(json.dumps(record, indent=2) + "\n")
    print(f"temperature {record['calibration']['temperature']:.2f} (fitted on {record['calibration']['n']} clips "
          f"of the {record['calibration']['split']} split)")
    print(f"{'model':<11} {'data':<5} {'n':>4} {'accuracy':>9} {'confidence':>11} {'ECE':>6} {'log-loss':>9}")
    for model in ("as_trained", "calibrated"):
        for data in ("val", "real"):
            row = record[model][data]
            print(f"{model:<11} {data:<5} {row['n']:>4} {100 * row['accuracy']:>8.1f}% "
                  f"{100 * row['mean_confidence']:>10.1f}% {row['calibration_error']:>6.3f} {row['log_loss']:>9.3f}")
    print(f"-> {target}")


if __name__ == "__main__":
    main()
