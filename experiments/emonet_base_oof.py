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
   speed copies 0.8-1.2x, a fixed 100 epochs) reading the block of the audio vector the shipped
   voice reads (``voice_mlp_all.yaml``'s ``model.audio_features``: the voice encoder's statistics),
   trained on every speaker of the speech corpus (RAVDESS, EmoDB, URDU) except the held-out clips'
   speakers. Clips with a face are heard once, as ``emonet predict`` hears them.

Each clip's video prediction comes from the CNN that never saw its face and its voice prediction
from the voice that never heard its speaker, tempered as emonet-base tempers its voice (its
``voice_temperature``); fusion pools the two with emonet-base's video weight (fitted on Val_AFEW,
which this never reads).

Twins, fitted on the same folds: a linear SVM (and k-NN, MLP) on the same mean-pooled
embeddings (face folds); on the speaker folds, the same baselines on the classical functionals
(``voice_twins_functionals``) and on the very values the voice reads (``voice_twins_voice_encoder``);
classical late fusion, the sum of the linear SVMs' probabilities on embeddings and functionals. No
choice is made here; the face weight and fusion weight were fixed before (on Val_AFEW and the real
clips).

The video folds' per-clip predictions are kept in ``experiments/results/emonet_base_oof_video.npz``,
so a new voice is measured again with ``--reuse-video`` in minutes, without the fold CNNs.

Run:  .venv/bin/python experiments/emonet_base_oof.py   (~25 min per fold on 2 cores: the CNN cycles;
      a fold whose CNN exists is not trained again; needs what experiments/emonet_base.py builds and
      runs/ferplus_faces_long-seed0)
      [--reuse-video]  the video folds from emonet_base_oof_video.npz (~5 min)
      [--voice-only]   the voice and its twins alone: emonet_base_oof_voice.json (~5 min)
Writes experiments/results/emonet_base_oof.json (and the .npz) and prints a table.
"""

import argparse
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
from emonet.training.calibration import tempered  # noqa: E402
from emonet.training.folds import group_folds, person_of  # noqa: E402
from emonet.training.stages import audio_columns  # noqa: E402
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
VIDEO_RECORD = REPO / "experiments" / "results" / "emonet_base_oof_video.npz"
VOICE_RECORD = REPO / "experiments" / "results" / "emonet_base_oof_voice.json"
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


def voice_block(width):
    """(first, stop) columns of the speech vectors the shipped voice reads (``voice_mlp_all.yaml``'s
    ``model.audio_features``), and those of the classical functionals, in vectors of ``width`` values."""
    block = load_config(REPO / "experiments" / "voice_mlp_all.yaml").model.audio_features
    store = RUNS / "speech_features_all.h5"
    return block, audio_columns(block, width, store), audio_columns("functionals", width, store)


def video_out_of_fold(train, folds, runs):
    """Each clip's video predictions from the fold that never saw its face: {"face", "clip", "linear SVM"
    probabilities (n, 7); "twins": {baseline: classes (n,)}}."""
    n, y = len(train.labels), train.labels
    face, clip, video_svm, twin_pred = np.zeros((n, 7)), np.zeros((n, 7)), np.zeros((n, 7)), {}
    for k, run_dir in enumerate(runs):
        fit, held = folds != k, folds == k
        frames = TrainedRun(run_dir)
        head = softmax_weights(frames.model)
        with FeatureStore(FOOTAGE) as store:
            x = mean_embeddings(frames, store, train.keys, N_FRAMES)
            face[held] = clip_frame_probabilities(frames, store, [key for key, h in zip(train.keys, held) if h], head)
        kernel, bias = fit_clip_expert(x[fit], y[fit])
        clip[held] = softmax(x[held] @ kernel + bias)
        twins(twin_pred, video_svm, (x[fit], y[fit]), x[held], held)
    return {"face": face, "clip": clip, "linear SVM": video_svm, "twins": twin_pred}


def save_video(path, keys, folds, video):
    """Write :func:`video_out_of_fold`'s predictions for clips ``keys`` to ``path`` (a plain ``.npz``)."""
    arrays = {"keys": np.array(keys), "folds": folds, "face": video["face"], "clip": video["clip"],
              "linear_svm": video["linear SVM"]}
    arrays.update({f"twin:{name}": classes for name, classes in video["twins"].items()})
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as out:
            np.savez_compressed(out, **arrays)


def load_video(path, keys):
    """:func:`save_video`'s predictions, refused unless they cover exactly the clips ``keys`` in order."""
    with np.load(path, allow_pickle=False) as arrays:
        if arrays["keys"].tolist() != list(keys):
            raise SystemExit(f"{path}: its clips are not this store's Train_AFEW clips; run without --reuse-video")
        return {"face": arrays["face"], "clip": arrays["clip"], "linear SVM": arrays["linear_svm"],
                "twins": {name[5:]: arrays[name] for name in arrays.files if name.startswith("twin:")}}


def voice_out_of_fold(train, audio, speaker_fold):
    """Each clip's voice predictions from the fold that never heard its speaker: (voice probabilities (n, 7),
    linear-SVM probabilities on the functionals (n, 7), {twin group: {baseline: classes (n,)}}, fold notes)."""
    speech = load_corpus(RUNS / "speech_corpus_all" / "manifest.csv", RUNS / "speech_features_all.h5")
    block, (first, stop), (f_first, f_stop) = voice_block(speech[0].shape[1])
    read = (speech[0][:, first:stop], speech[1][:, :, first:stop], speech[2], speech[3])
    n = len(train.labels)
    voice, audio_svm, same_svm = np.zeros((n, 7)), np.zeros((n, 7)), np.zeros((n, 7))
    twin_pred, notes = {"functionals": {}, block: {}}, []
    for k in range(FOLDS):
        held = speaker_fold == k
        held_speakers = {s for s, h in zip(train.speakers, held) if h}
        model, mean, std, keep = fold_voice(read, held_speakers, seed=k)
        x = audio[held][:, first:stop]
        voice[held] = np.asarray(model.predict(((x - mean) / std).astype(np.float32), verbose=0))
        twins(twin_pred["functionals"], audio_svm, (speech[0][keep][:, f_first:f_stop], speech[2][keep]),
              audio[held][:, f_first:f_stop], held)
        twins(twin_pred[block], same_svm, (read[0][keep], read[2][keep]), x, held)
        notes.append({"clips": int(held.sum()), "held_out_speakers": sorted(held_speakers),
                      "training_utterances": int(keep.sum())})
        print(f"speaker fold {k}: {held.sum()} clips, voice trained on {keep.sum()} utterances without "
              f"{', '.join(sorted(held_speakers))}", flush=True)
    return voice, audio_svm, twin_pred, {"reads": block, "columns": [first, stop], "speaker_folds": notes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse-video", action="store_true",
                        help=f"read the video folds' predictions from {VIDEO_RECORD.name} instead of the fold CNNs")
    parser.add_argument("--voice-only", action="store_true",
                        help=f"the voice against its twins only (no CNN needed): writes {VOICE_RECORD.name}")
    args = parser.parse_args()
    configure_logging()
    started = time.time()
    WORK.mkdir(parents=True, exist_ok=True)
    base_parts = json.loads((REPO / "emonet" / "pretrained" / "emonet-base" / "parts.json").read_text())
    video_weight = base_parts["fusion_video_weight"]
    with FeatureStore(FOOTAGE) as store:
        train = SplitTable(store, "train")
        audio = audio_matrix(store, train.keys)
    y = train.labels
    folds = group_folds([person_of(s) for s in train.subjects], FOLDS, seed=0)
    speaker_fold = group_folds(train.speakers, FOLDS, seed=0)
    voice, audio_svm, voice_twins, voice_notes = voice_out_of_fold(train, audio, speaker_fold)
    twin_uars = {f"voice_twins_{group}": {k: round(float(uar(y, p)), 4) for k, p in pred.items()}
                 for group, pred in voice_twins.items()}
    record = {"what": __doc__.splitlines()[0], "clips": int(len(y)), "folds": FOLDS, "voice": voice_notes}
    if args.voice_only:
        record.update({"what": record["what"] + " The voice only (--voice-only).",
                       "uar": {"emonet: voice": round(float(uar(y, voice.argmax(1))), 4)}, **twin_uars,
                       "seconds": round(time.time() - started)})
        report(record, VOICE_RECORD)
        return
    if args.reuse_video:
        video_parts, runs = load_video(VIDEO_RECORD, train.keys), None
    else:
        runs = [fold_cnn(k, [key for key, f in zip(train.keys, folds) if f != k]) for k in range(FOLDS)]
        video_parts = video_out_of_fold(train, folds, runs)
        save_video(VIDEO_RECORD, train.keys, folds, video_parts)
    face, clip = video_parts["face"], video_parts["clip"]
    voice = tempered(voice, base_parts["recipe"].get("voice_temperature", 1.0))  # as the shipped model tempers it
    has_face, has_audio = train.n_frames > 0, train.has_audio
    video = np.where(has_face[:, None], FACE_WEIGHT * face + (1 - FACE_WEIGHT) * clip, 1 / 7)
    both = has_face & has_audio
    fused = np.where(both[:, None], video_weight * video + (1 - video_weight) * voice,
                     np.where(has_face[:, None], video, voice))
    readers = {"emonet: video branch (pool 0.25 face + 0.75 clip)": video, "emonet: face expert": face,
               "emonet: clip expert": clip, "emonet: voice": voice, "emonet: fusion": fused,
               "classical late fusion (two linear SVMs)": video_parts["linear SVM"] + audio_svm}
    record.update({
        "face_weight": FACE_WEIGHT, "fusion_video_weight": video_weight,
        "fold_runs": [str(r.relative_to(REPO)) for r in runs] if runs else f"from {VIDEO_RECORD.name}",
        "face_fold_clips": np.bincount(folds).tolist(),
        "uar": {name: round(float(uar(y, p.argmax(1))), 4) for name, p in readers.items()},
        "video_twins_mean_pooled_embeddings": {k: round(float(uar(y, p)), 4)
                                               for k, p in video_parts["twins"].items()},
        **twin_uars, "seconds": round(time.time() - started)})
    report(record, REPO / "experiments" / "results" / "emonet_base_oof.json")


def report(record, target):
    """Write ``record`` to ``target`` and print its figures."""
    atomic_write_text(target, json.dumps(record, indent=2) + "\n")
    for name, value in record["uar"].items():
        print(f"{name:52s} {100 * value:5.1f}%")
    for group in [key for key in record if "_twins_" in key]:
        print(group, {k: f"{100 * v:.1f}%" for k, v in record[group].items()})
    print(f"-> {target}")


if __name__ == "__main__":
    main()
