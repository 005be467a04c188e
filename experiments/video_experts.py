"""Why emonet-base's video branch is two experts: a frame CNN's embeddings, read four ways.

With the frames run's CNN frozen, its per-frame embeddings of three sets are classified by:

- ``face``: the CNN's own softmax (trained on FER+ faces), averaged over a clip's frames;
- ``clip``: a logistic regression on the mean frame embedding, fitted on Train_AFEW
  (composite corpus: posed CK+/JAFFE faces);
- ``pool``: the linear pool 0.5 * face + 0.5 * clip (emonet-base's choice, not tuned);
  ``pool25``: 0.25 * face + 0.75 * clip; ``log_pool``: the geometric mean, renormalised;
- ``joint``: one logistic regression fitted on FER+ training faces *and* Train_AFEW clips
  (the composite clips weighted 20x), i.e. one head for both.

Sets: Val_AFEW (UAR), FER2013Valid faces (accuracy; a still image, so ``pool`` = ``face``),
and the labelled real clips of ../shared/data/real (UAR; extracted as emonet-base extracts
footage: 64 px crops, 10% margin, up to 150 frames; 16 centred frames per clip).

Run:  .venv/bin/python experiments/video_experts.py runs/ferplus_faces_long-seed0
Writes ``experiments/results/video_experts_<run name>.json``.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emonet.cli import configure_logging  # noqa: E402
from emonet.evaluation.metrics import uar  # noqa: E402
from emonet.experiment.config import load_config  # noqa: E402
from emonet.experiment.stores import extract_folder  # noqa: E402
from emonet.inference.trained_run import TrainedRun  # noqa: E402
from emonet.nn.experts import softmax_weights  # noqa: E402
from emonet.features.tables import SplitTable  # noqa: E402
from emonet.training.base_model import fit_clip_expert, mean_embeddings  # noqa: E402
from preprocessing.files import atomic_write_text  # noqa: E402
from preprocessing.store import FeatureStore  # noqa: E402

RUNS = REPO / "runs"
REAL = REPO.parent / "shared" / "data" / "real"
REAL_FOLDERS = {"crema_d": "crema_d", "mead": "mead", "mead_video_only": "mead", "selfrecorded": "mead"}
N_FRAMES = 16
JOINT_CLIP_WEIGHT = 20.0


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def clip_frame_probabilities(frames, store, keys, head):
    """Face expert per clip: the CNN softmax averaged over 16 centred frames -> (n, 7)."""
    from emonet.features.frames import sample_indices
    out = np.full((len(keys), 7), 1 / 7)
    for i, key in enumerate(keys):
        faces = store.clip(key)["faces"]
        if faces.shape[0]:
            index, mask = sample_indices(faces.shape[0], N_FRAMES)
            emb = frames.encode_faces(faces[()][np.unique(index[mask > 0])])
            out[i] = softmax(emb @ head[0] + head[1]).mean(axis=0)
    return out


def labelled(store, split):
    table, _ = SplitTable(store, split, labelled=False).labelled_part()
    return table


def open_frames_run(description):
    """``(path, run, (kernel, bias))``: the ``frames_run`` named on the command line, loaded, and its face expert."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("frames_run", type=Path)
    args = parser.parse_args()
    configure_logging()
    frames = TrainedRun(args.frames_run)
    return args.frames_run, frames, softmax_weights(frames.model)


def main():
    frames_run, frames, head = open_frames_run(__doc__.splitlines()[0])
    composite_cfg = load_config(REPO / "experiments" / "composite_fusion.yaml")
    sets = {}  # name -> (labels, face probabilities, mean embeddings)
    with FeatureStore(RUNS / "composite_features.h5") as store:
        train = labelled(store, "train")
        train_x = mean_embeddings(frames, store, train.keys, N_FRAMES)
        val = labelled(store, "val")
        sets["val_afew"] = (val.labels, clip_frame_probabilities(frames, store, val.keys, head),
                            mean_embeddings(frames, store, val.keys, N_FRAMES))
    real_labels, real_face, real_x = [], [], []
    for folder, layout in REAL_FOLDERS.items():
        path = extract_folder(REAL / folder, RUNS / f"video_experts_real_{folder}.h5", composite_cfg, layout=layout)
        with FeatureStore(path) as store:
            table = labelled(store, "train")  # the real-clip layouts put every clip in "train"
            real_labels.append(table.labels)
            real_face.append(clip_frame_probabilities(frames, store, table.keys, head))
            real_x.append(mean_embeddings(frames, store, table.keys, N_FRAMES))
    sets["real_clips"] = (np.concatenate(real_labels), np.concatenate(real_face), np.concatenate(real_x))
    with FeatureStore(RUNS / "ferplus_features.h5") as store:
        fer_val = labelled(store, "val")
        fer_x = frames.encode_faces(np.concatenate([store.clip(k)["faces"][()] for k in fer_val.keys]))
        fer_train = labelled(store, "train")
        rng = np.random.default_rng(0)
        pick = np.sort(rng.choice(len(fer_train), 8000, replace=False))
        fer_train_x = frames.encode_faces(np.concatenate([store.clip(fer_train.keys[i])["faces"][()] for i in pick]))
    sets["ferplus_valid"] = (fer_val.labels, softmax(fer_x @ head[0] + head[1]), fer_x)
    clip_head = fit_clip_expert(train_x, train.labels)
    joint_head = fit_clip_expert(
        np.concatenate([fer_train_x, np.repeat(train_x, int(JOINT_CLIP_WEIGHT), axis=0)]),
        np.concatenate([fer_train.labels[pick], np.repeat(train.labels, int(JOINT_CLIP_WEIGHT))]))
    record = {"frames_run": str(frames_run), "n_frames": N_FRAMES, "sets": {}}
    for name, (labels, face, x) in sets.items():
        clip = softmax(x @ clip_head[0] + clip_head[1])
        joint = softmax(x @ joint_head[0] + joint_head[1])
        still = name == "ferplus_valid"  # one frame: emonet-base uses the face expert alone
        pool = face if still else 0.5 * face + 0.5 * clip
        pool25 = face if still else 0.25 * face + 0.75 * clip
        log_pool = face if still else softmax(0.5 * np.log(face + 1e-4) + 0.5 * np.log(clip + 1e-4))
        scores = {}
        for reader, proba in (("face", face), ("clip", clip), ("pool", pool), ("pool25", pool25),
                              ("log_pool", log_pool), ("joint", joint)):
            predicted = proba.argmax(axis=1)
            scores[reader] = {"uar": uar(labels, predicted), "accuracy": float((predicted == labels).mean())}
        record["sets"][name] = {"n": int(len(labels)), **scores}
    target = REPO / "experiments" / "results" / f"video_experts_{frames_run.name}.json"
    atomic_write_text(target, json.dumps(record, indent=2) + "\n")
    readers = ("face", "clip", "pool", "pool25", "log_pool", "joint")
    print(f"{'set':<14} {'n':>5}  " + "  ".join(f"{r:>13}" for r in readers))
    for name, row in record["sets"].items():
        metric = "accuracy" if name == "ferplus_valid" else "uar"
        print(f"{name:<14} {row['n']:>5}  " + "  ".join(f"{metric[:3]} {100 * row[r][metric]:>7.1f}%"
                                                      for r in readers))
    print(f"-> {target}")


if __name__ == "__main__":
    main()
