"""Fusion rules compared on a cross-fitted run's saved branch predictions (no training).

What it measures
----------------
A cross-fitted fusion run keeps, in ``stages/fusion/out_of_fold.npz``, the video and
audio branch probabilities for every training clip (out of fold: from models that never
saw its face subject or speaker) and for every validation clip. From those alone this
script scores, on the validation split:

- ``video`` and ``audio``: each branch alone;
- ``pool``: ``alpha * p_video + (1 - alpha) * p_audio`` with ``alpha`` fitted by maximum
  likelihood on the out-of-fold predictions -- the starting point of the shipped fusion
  head (``emonet.nn.layers.BranchPool``);
- ``product``: ``softmax(w_v * log p_video + w_a * log p_audio)`` (a weighted product of
  experts), ``w_v, w_a`` fitted the same way -- the rule the pool was chosen over;
- ``pool, alpha fitted on half of Val``: an honesty check on how much a weight chosen with
  validation data would add. For each way of splitting the validation speakers into two
  halves, ``alpha`` is fitted on one half and scored on the other; the mean is reported.

and, per validation speaker, the accuracy of video alone and of the pool.

Run:  .venv/bin/python experiments/fusion_rules.py runs/composite_fusion-seed0
Writes ``experiments/results/fusion_rules_<run name>.json`` and prints a table. Takes a
few seconds.
"""

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import scipy.optimize
from scipy.special import softmax

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emonet.experiment.rundir import RunDir  # noqa: E402
from emonet.features.tables import SplitTable  # noqa: E402
from emonet.nn.fusion import log_probabilities  # noqa: E402
from emonet.training.folds import fit_pool_weight  # noqa: E402
from emonet.evaluation.metrics import uar  # noqa: E402
from preprocessing.store import FeatureStore  # noqa: E402


def fit_product_weights(video, audio, labels):
    """(w_v, w_a) in [0, 50]^2 maximising the likelihood of softmax(w_v log p_v + w_a log p_a)."""
    lv, la, rows = log_probabilities(video), log_probabilities(audio), np.arange(len(labels))

    def nll(w):
        return -np.log(np.maximum(softmax(w[0] * lv + w[1] * la, axis=1)[rows, labels], 1e-12)).mean()

    return scipy.optimize.minimize(nll, [1.0, 0.0], method="L-BFGS-B", bounds=[(0, 50), (0, 50)]).x


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    run = RunDir(args.run_dir)
    saved = np.load(run.stage("fusion").out_of_fold_path)
    video, audio, labels = saved["video"], saved["audio"], saved["labels"]
    val_video, val_audio, val_labels = saved["val_video"], saved["val_audio"], saved["val_labels"]
    with FeatureStore(run.config.data.store) as store:
        speakers = np.array([str(s) for s in SplitTable(store, run.config.data.val_split).speakers])

    alpha = fit_pool_weight(video, audio, labels)
    w_video, w_audio = fit_product_weights(video, audio, labels)
    rules = {
        "video": val_video,
        "audio": val_audio,
        "pool": alpha * val_video + (1 - alpha) * val_audio,
        "product": softmax(w_video * log_probabilities(val_video) + w_audio * log_probabilities(val_audio), axis=1),
    }
    scores = {name: uar(val_labels, p.argmax(axis=1)) for name, p in rules.items()}

    halves = []
    names = sorted(set(speakers))
    for chosen in itertools.combinations(names, len(names) // 2):
        fit = np.isin(speakers, chosen)
        a = fit_pool_weight(val_video[fit], val_audio[fit], val_labels[fit])
        held = ~fit
        halves.append({"fitted_on": list(chosen), "alpha": a,
                       "video_uar": uar(val_labels[held], val_video[held].argmax(1)),
                       "pool_uar": uar(val_labels[held], (a * val_video[held] + (1 - a) * val_audio[held]).argmax(1))})
    per_speaker = {}
    for s in names:
        m = speakers == s
        per_speaker[s] = {"n": int(m.sum()),
                          "video_accuracy": float((val_video[m].argmax(1) == val_labels[m]).mean()),
                          "pool_accuracy": float((rules["pool"][m].argmax(1) == val_labels[m]).mean())}

    result = {"run": str(args.run_dir), "alpha_out_of_fold": alpha,
              "product_weights_out_of_fold": [float(w_video), float(w_audio)],
              "val_uar": scores, "out_of_fold_uar": {
                  "video": uar(labels, video.argmax(1)), "audio": uar(labels, audio.argmax(1)),
                  "pool": uar(labels, (alpha * video + (1 - alpha) * audio).argmax(1))},
              "val_halves": halves, "per_val_speaker": per_speaker}
    print(f"alpha (out of fold) {alpha:.3f}; product weights (out of fold) {w_video:.2f}, {w_audio:.2f}")
    print("| rule | Val UAR |\n|---|---|")
    for name, value in scores.items():
        print(f"| {name} | {100 * value:.1f}% |")
    mean_video = np.mean([h["video_uar"] for h in halves])
    mean_pool = np.mean([h["pool_uar"] for h in halves])
    print(f"| pool, alpha fitted on half of Val (mean of {len(halves)} splits; video alone {100 * mean_video:.1f}%) "
          f"| {100 * mean_pool:.1f}% |")
    for s, row in per_speaker.items():
        print(f"{s}: n={row['n']} video {100 * row['video_accuracy']:.1f}% pool {100 * row['pool_accuracy']:.1f}%")
    out = REPO / "experiments" / "results" / f"fusion_rules_{args.run_dir.name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
