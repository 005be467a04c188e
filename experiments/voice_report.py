"""A voice run on the held-out *test* speakers of each speech corpus, with its classical twins.

The test speakers (experiments/speech_corpus.py: RAVDESS actors 15-18, EmoDB 03 and 08,
seven URDU speakers) were never trained on and no choice was made on them (early
stopping and the reducer choice use the val speakers). For each corpus the run is
evaluated on its test speakers (``evaluate_run`` with a ``csv`` manifest of them), next
to the classical baselines fitted on the run's training split of the same functionals
(linear SVM, MLP, k-NN).

Run:  .venv/bin/python experiments/voice_report.py runs/voice_lda-seed0
Writes ``experiments/results/<run name>_test_speakers.json`` and prints a table.
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
from experiments.real_clips import read_predictions  # noqa: E402
from emonet.evaluation.evaluate import evaluate_run  # noqa: E402
from emonet.evaluation.metrics import classification_report  # noqa: E402
from emonet.experiment.rundir import RunDir  # noqa: E402
from preprocessing.files import atomic_write_text  # noqa: E402

CORPORA = ("ravdess", "emodb", "urdu")


def test_manifests(corpus_root):
    """Write ``<corpus_root>/test_<corpus>/manifest.csv`` (the corpus's test rows); returns {corpus: folder}."""
    with open(Path(corpus_root) / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    folders = {}
    for corpus in CORPORA:
        picked = [r for r in rows if r["split"] == "test" and r["speaker"].startswith(f"{corpus}:")]
        lines = ["path,label,split,speaker,subject"] + [
            f"{r['path']},{r['label']},test,{r['speaker']},{r['subject']}" for r in picked]
        folder = Path(corpus_root) / f"test_{corpus}"
        folder.mkdir(exist_ok=True)
        atomic_write_text(folder / "manifest.csv", "\n".join(lines) + "\n")
        folders[corpus] = folder
    return folders


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    configure_logging()
    run = RunDir(args.run_dir).check_is_run()
    folders = test_manifests(run.config.data.root)
    rows, pooled_y, pooled_p = [], [], []
    for corpus, folder in folders.items():
        out = run.path / f"eval_test_{corpus}"
        result = evaluate_run(run, data=folder, layout="csv", out_dir=out, baselines=True)
        y, proba = read_predictions(RunDir.outputs(out)["predictions"])
        pooled_y.append(y)
        pooled_p.append(proba)
        rows.append({"corpus": corpus, "n": result["n"], "accuracy": result["accuracy"], "uar": result["uar"],
                     "baselines": result.get("baselines")})
    pooled = classification_report(np.concatenate(pooled_y), np.concatenate(pooled_p))
    record = {"run": str(run.path), "git_commit": run.versions().get("git_commit"), "config": run.config.to_dict(),
              "test_speakers": rows,
              "pooled": {k: pooled[k] for k in ("n", "accuracy", "uar", "macro_f1")}}
    target = REPO / "experiments" / "results" / f"{run.path.name}_test_speakers.json"
    atomic_write_text(target, json.dumps(record, indent=2) + "\n")
    print(f"{'test speakers':<14} {'n':>4} {'accuracy':>9} {'UAR':>7}   classical baselines (UAR)")
    for row in rows:
        base = "  ".join(f"{b['model']} {100 * b['uar']:.1f}%" for b in row["baselines"] or []
                         if b["model"] != "majority class")
        print(f"{row['corpus']:<14} {row['n']:>4} {100 * row['accuracy']:>8.1f}% {100 * row['uar']:>6.1f}%   {base}")
    print(f"{'all':<14} {pooled['n']:>4} {100 * pooled['accuracy']:>8.1f}% {100 * pooled['uar']:>6.1f}%")
    print(f"-> {target}")


if __name__ == "__main__":
    main()
