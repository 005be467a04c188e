"""emonet-base's video branch out of fold on the composite training clips: faces no choice saw.

Val_AFEW figures of emonet-base are not clean: its fusion weight was fitted there, and the
clip expert's L2 strength (C = 0.1) was picked while looking at Val_AFEW with the first FER+
CNN. Here the 560 Train_AFEW clips are cut into 5 face-subject-disjoint folds
(``emonet.training.folds.group_folds`` on the person behind each face); for each fold the
clip expert is refitted on the other four and scored on it, with the frozen FER+ frame CNN
and the fixed 0.5 pool. Next to it, the classical twin: a linear SVM on the same mean
embeddings, fitted and scored on the same folds. Only the video branch: the voice branch
trained on RAVDESS actors 01-10, 13 and 14, who speak in these clips.

Run:  .venv/bin/python experiments/video_experts_oof.py runs/ferplus_faces_long-seed0
Writes ``experiments/results/video_experts_oof_<run name>.json``.
"""

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emonet.evaluation.metrics import uar  # noqa: E402
from emonet.features.tables import SplitTable  # noqa: E402
from emonet.training.base_model import fit_clip_expert, mean_embeddings  # noqa: E402
from emonet.training.folds import group_folds, person_of  # noqa: E402
from experiments.video_experts import (N_FRAMES, RUNS, clip_frame_probabilities, open_frames_run,  # noqa: E402
                                      softmax)
from preprocessing.files import atomic_write_text  # noqa: E402
from preprocessing.store import FeatureStore  # noqa: E402

N_FOLDS = 5


def main():
    frames_run, frames, head = open_frames_run(__doc__.splitlines()[0])
    with FeatureStore(RUNS / "composite_features.h5") as store:
        train = SplitTable(store, "train")
        x = mean_embeddings(frames, store, train.keys, N_FRAMES)
        face = clip_frame_probabilities(frames, store, train.keys, head)
    folds = group_folds([person_of(s) for s in train.subjects], N_FOLDS, seed=0)
    clip, svm_pred = np.zeros_like(face), np.zeros(len(train), np.int64)
    for k in range(N_FOLDS):
        fit, held = folds != k, folds == k
        kernel, bias = fit_clip_expert(x[fit], train.labels[fit])
        clip[held] = softmax(x[held] @ kernel + bias)
        svm = make_pipeline(StandardScaler(), LinearSVC(C=0.1, class_weight="balanced", max_iter=20000))
        svm_pred[held] = svm.fit(x[fit], train.labels[fit]).predict(x[held])
    readers = {"face expert": face.argmax(1), "clip expert": clip.argmax(1),
               "pool 0.5 (emonet-base video branch)": (0.5 * face + 0.5 * clip).argmax(1),
               "linear SVM on mean embeddings": svm_pred}
    record = {"frames_run": str(frames_run), "n": int(len(train)), "folds": N_FOLDS,
              "uar": {name: uar(train.labels, pred) for name, pred in readers.items()},
              "accuracy": {name: float((pred == train.labels).mean()) for name, pred in readers.items()}}
    target = REPO / "experiments" / "results" / f"video_experts_oof_{frames_run.name}.json"
    atomic_write_text(target, json.dumps(record, indent=2) + "\n")
    for name in readers:
        print(f"{name:<38} UAR {100 * record['uar'][name]:5.1f}%  accuracy {100 * record['accuracy'][name]:5.1f}%")
    print(f"-> {target}")


if __name__ == "__main__":
    main()
