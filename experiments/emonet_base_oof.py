"""emonet-base's recipe out of fold on the composite training clips, against its classical twins.

The shipped frame CNN trained on every Train_AFEW face (its third cycle mixes them in), so its
figures on those clips are in-sample. Here the recipe is repeated without them: the 560
Train_AFEW clips are cut into ``FOLDS`` face-subject-disjoint folds
(:func:`emonet.training.folds.group_folds` on the person behind each face), and separately into
``FOLDS`` speaker-disjoint folds (faces and voices of the composite clips are paired at random, so
one set of folds cannot hold out both: every face fold holds clips of all 14 speakers). For each
face fold

1. the lab-face cycle (``experiments/ferplus_lab_faces.yaml``: FER+ faces with 30 % of the
   batches from posed footage, starting from the FER+ CNN of ``ferplus_faces_long.yaml``) is
   trained again with only the other folds' clips mixed in (a store of those clips,
   ``runs/emonet_base_oof/mix_fold<k>.h5``);
2. the clip expert is fitted on the other folds' mean embeddings of that CNN; the video branch
   pools ``0.25 * face + 0.75 * clip`` as emonet-base does (``FACE_WEIGHT`` of emonet_base.py);
and for each speaker fold

3. the voice is the shipped voice's recipe (``voice_network_cv.train_fold``: one hidden layer,
   speed copies 0.8-1.2x, a fixed 100 epochs) trained on every speaker of the speech corpus
   (RAVDESS, EmoDB, URDU) except the held-out clips' speakers. Clips with a face are heard once,
   as ``emonet predict`` hears them.

Each clip's video prediction comes from the CNN that never saw its face and its voice prediction
from the voice that never heard its speaker; fusion pools the two with emonet-base's video weight
(fitted on Val_AFEW, which this never reads).

Twins, fitted on the same folds: a linear SVM (and k-NN, MLP) on the same mean-pooled
embeddings (face folds); a linear SVM (and k-NN, MLP) on the same functionals of the voice's
training utterances (speaker folds); classical late fusion, the sum of the two linear SVMs'
probabilities. No choice is made here; the face weight and fusion weight were fixed before (on
Val_AFEW and the real clips).

Run:  .venv/bin/python experiments/emonet_base_oof.py   (~25 min per fold on 2 cores: the CNN cycles;
      a fold whose CNN exists is not trained again; needs what experiments/emonet_base.py builds)
Writes experiments/results/emonet_base_oof.json and prints a table.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emonet.cli import configure_logging  # noqa: E402
from emonet.evaluation.metrics import uar  # noqa: E402
from emonet.experiment.config import config_yaml, load_config  # noqa: E402
from emonet.features.tables import SplitTable, audio_matrix  # noqa: E402
from emonet.inference.trained_run import TrainedRun  # noqa: E402
from emonet.nn.experts import softmax_weights  # noqa: E402
from emonet.training.base_model import fit_clip_expert, mean_embeddings  # noqa: E402
from emonet.training.folds import group_folds, person_of  # noqa: E402
from experiments.emonet_base import FACE_WEIGHT  # noqa: E402
from experiments.emonet_base_twins import twin_probabilities  # noqa: E402
from experiments.video_experts import N_FRAMES, clip_frame_probabilities, softmax  # noqa: E402
from experiments.voice_network_cv import load_corpus, train_fold  # noqa: E402
from preprocessing.files import atomic_path, atomic_write_text  # noqa: E402
from preprocessing.store import FeatureStore  # noqa: E402

RUNS = REPO / "runs"
WORK = RUNS / "emonet_base_oof"
FOOTAGE = RUNS / "composite_features.h5"
FOLDS = 3
EMONET = [sys.executable, "-m", "emonet.cli"]


def write_mix_store(source, keys, target):
    """A feature store holding only clips ``keys`` of ``source`` (same params), written atomically."""
    with h5py.File(source, "r") as src, atomic_path(target, suffix=".h5") as tmp, h5py.File(tmp, "w") as out:
        for name, value in src.attrs.items():
            out.attrs[name] = value
        src.copy(src["audio_feature_names"], out, "audio_feature_names")
        out.create_group("failures")
        clips = out.create_group("clips")
        for key in keys:
            src.copy(src["clips"][key], clips, key)


def fold_cnn(k, keep_keys):
    """Run folder of fold ``k``'s lab-face cycle, trained with only ``keep_keys`` of Train_AFEW mixed in."""
    name = f"ferplus_lab_faces_fold{k}"
    run = WORK / f"{name}-seed0"
    if (run / "model.keras").is_file():
        return run
    mix = WORK / f"mix_fold{k}.h5"
    if not mix.is_file():
        write_mix_store(FOOTAGE, keep_keys, mix)
    cfg = load_config(REPO / "experiments" / "ferplus_lab_faces.yaml").with_changes(
        name=name, output_dir=str(WORK), data={"mix_store": str(mix)})
    config = WORK / f"{name}.yaml"
    atomic_write_text(config, config_yaml(cfg))
    subprocess.run(EMONET + ["train", str(config), "--resume"], check=True, cwd=REPO)
    return run


def fold_voice(speech, held_speakers, seed):
    """The shipped voice's recipe trained without ``held_speakers``: (model, mean, std, keep), where ``mean``
    and ``std`` standardise raw functionals for the model and ``keep`` marks the training utterances."""
    features, speeds, labels, speakers = speech
    keep = ~np.isin(speakers, sorted(held_speakers))
    mean, std = features[keep].mean(axis=0), features[keep].std(axis=0) + 1e-6
    model = train_fold("one layer", (features[keep] - mean) / std, (speeds[:, keep] - mean) / std, labels[keep], seed)
    return model, mean, std, keep


def twins(predicted, svm_proba, fit, test_x, held):
    """Fit the classical baselines on ``fit`` = (x, y); write their classes for ``test_x`` into
    ``predicted[name][held]`` and the linear SVM's probabilities into ``svm_proba[held]``."""
    for name, proba in twin_probabilities(*fit, test_x).items():
        predicted.setdefault(name, np.zeros(len(held), np.int64))[held] = proba.argmax(1)
        if name == "linear SVM":
            svm_proba[held] = proba


def main():
    configure_logging()
    started = time.time()
    WORK.mkdir(parents=True, exist_ok=True)
    base_parts = json.loads((REPO / "emonet" / "pretrained" / "emonet-base" / "parts.json").read_text())
    video_weight = base_parts["fusion_video_weight"]
    with FeatureStore(FOOTAGE) as store:
        train = SplitTable(store, "train")
        audio = audio_matrix(store, train.keys)
    folds = group_folds([person_of(s) for s in train.subjects], FOLDS, seed=0)
    speaker_fold = group_folds(train.speakers, FOLDS, seed=0)
    runs = [fold_cnn(k, [key for key, f in zip(train.keys, folds) if f != k]) for k in range(FOLDS)]
    speech = load_corpus(RUNS / "speech_corpus_all" / "manifest.csv", RUNS / "speech_features_all.h5")
    y = train.labels
    n = len(y)
    face, clip, voice = np.zeros((n, 7)), np.zeros((n, 7)), np.zeros((n, 7))
    video_svm, audio_svm = np.zeros((n, 7)), np.zeros((n, 7))
    twin_pred = {"video": {}, "voice": {}}
    voice_folds = []
    for k, run_dir in enumerate(runs):  # video: face-subject folds
        fit, held = folds != k, folds == k
        frames = TrainedRun(run_dir)
        head = softmax_weights(frames.model)
        with FeatureStore(FOOTAGE) as store:
            x = mean_embeddings(frames, store, train.keys, N_FRAMES)
            face[held] = clip_frame_probabilities(frames, store, [key for key, h in zip(train.keys, held) if h], head)
        kernel, bias = fit_clip_expert(x[fit], y[fit])
        clip[held] = softmax(x[held] @ kernel + bias)
        twins(twin_pred["video"], video_svm, (x[fit], y[fit]), x[held], held)
    for k in range(FOLDS):  # voice: speaker folds
        held = speaker_fold == k
        held_speakers = {s for s, h in zip(train.speakers, held) if h}
        model, mean, std, keep = fold_voice(speech, held_speakers, seed=k)
        voice[held] = np.asarray(model.predict(((audio[held] - mean) / std).astype(np.float32), verbose=0))
        twins(twin_pred["voice"], audio_svm, (speech[0][keep], speech[2][keep]), audio[held], held)
        voice_folds.append({"clips": int(held.sum()), "held_out_speakers": sorted(held_speakers),
                            "training_utterances": int(keep.sum())})
        print(f"speaker fold {k}: {held.sum()} clips, voice trained on {keep.sum()} utterances without "
              f"{', '.join(sorted(held_speakers))}", flush=True)
    has_face, has_audio = train.n_frames > 0, train.has_audio
    video = np.where(has_face[:, None], FACE_WEIGHT * face + (1 - FACE_WEIGHT) * clip, 1 / 7)
    both = has_face & has_audio
    fused = np.where(both[:, None], video_weight * video + (1 - video_weight) * voice,
                     np.where(has_face[:, None], video, voice))
    readers = {"emonet: video branch (pool 0.25 face + 0.75 clip)": video, "emonet: face expert": face,
               "emonet: clip expert": clip, "emonet: voice": voice, "emonet: fusion": fused,
               "classical late fusion (two linear SVMs)": video_svm + audio_svm}
    record = {"what": __doc__.splitlines()[0], "clips": int(n), "folds": FOLDS, "face_weight": FACE_WEIGHT,
              "fusion_video_weight": video_weight, "fold_runs": [str(r.relative_to(REPO)) for r in runs],
              "face_fold_clips": np.bincount(folds).tolist(), "speaker_folds": voice_folds,
              "uar": {name: round(float(uar(y, p.argmax(1))), 4) for name, p in readers.items()},
              "video_twins_mean_pooled_embeddings": {k: round(float(uar(y, p)), 4) for k, p in twin_pred["video"].items()},
              "voice_twins_functionals": {k: round(float(uar(y, p)), 4) for k, p in twin_pred["voice"].items()},
              "seconds": round(time.time() - started)}
    target = REPO / "experiments" / "results" / "emonet_base_oof.json"
    atomic_write_text(target, json.dumps(record, indent=2) + "\n")
    for name, value in record["uar"].items():
        print(f"{name:52s} {100 * value:5.1f}%")
    for group in ("video_twins_mean_pooled_embeddings", "voice_twins_functionals"):
        print(group, {k: f"{100 * v:.1f}%" for k, v in record[group].items()})
    print(f"-> {target}")


if __name__ == "__main__":
    main()
