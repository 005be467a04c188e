"""emonet-base's branches against their classical twins on the composite Val_AFEW (issue 9's comparison).

On the 175 Val_AFEW clips (faces and speakers none of these models trained on), UAR of

- emonet-base's **video branch** (the model with the voice hidden: `has_audio` false) against the four
  classical baselines (majority, k-NN, MLP, linear SVM; :mod:`emonet.evaluation.baselines`) on the
  clips' **mean-pooled embeddings of the same frame CNN**, fitted on the 560 Train_AFEW clips;
- the **voice** of the held-out recipe (`runs/voice_mlp-seed0`: the one that fits the fusion weight and
  never heard Val_AFEW's speakers) against the same baselines on the classical **functionals** and on
  **the values the voice reads** (its run's `model.audio_features`: the voice encoder's statistics
  since session 14), fitted on that recipe's training speakers (the speech corpus's `train` split);
- **emonet-base** (video and voice pooled; the shipped voice heard Val_AFEW's speakers and weighs
  16%) against **classical late fusion**: the mean of the linear SVMs' probabilities on embeddings
  and functionals.

Val_AFEW is not untouched: it fitted emonet-base's fusion weight and, with the real clips, chose its
face weight (MODEL_CARD.md), so the branches' figures here saw those choices; the twins saw none.
Clips with a face are classified as `emonet predict` classifies them (no test-time copies).

Run:  .venv/bin/python experiments/emonet_base_twins.py   (~2 min; needs runs/emonet-base, runs/voice_mlp-seed0,
      runs/composite_features.h5 and runs/speech_features_wide.h5, which experiments/emonet_base.py builds)
Writes experiments/results/emonet_base_twins.json and prints a table.
"""

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emonet.evaluation.baselines import fit_baselines, full_probabilities  # noqa: E402
from emonet.evaluation.metrics import classification_report, uar  # noqa: E402
from emonet.features.tables import SplitTable, audio_matrix  # noqa: E402
from emonet.inference.trained_run import TrainedRun  # noqa: E402
from emonet.training.stages import audio_columns  # noqa: E402
from preprocessing.files import atomic_write_text  # noqa: E402
from preprocessing.store import FeatureStore  # noqa: E402

RUNS = REPO / "runs"


def pooled(embeddings):
    """(n, E) mean embedding per clip (zeros for a clip without frames)."""
    return np.stack([e.mean(axis=0) if len(e) else np.zeros(e.shape[1]) for e in embeddings])


def twin_probabilities(train_X, train_y, test_X):
    """{baseline name: test probabilities (n, 7)} of the four classical baselines fitted on ``train_X``, ``train_y``."""
    return {name: full_probabilities(model, test_X) for name, model in fit_baselines(train_X, train_y)[0].items()}


def twin_rows(train_X, train_y, test_X, test_y):
    """{model: UAR} of the four baselines (fitted once, scored as ``run_baselines`` scores them), and the
    linear SVM's test probabilities (n, 7)."""
    proba = twin_probabilities(train_X, train_y, test_X)
    uars = {name: round(float(classification_report(test_y, p)["uar"]), 4) for name, p in proba.items()}
    return uars, proba["linear SVM"]


def main():
    base, voice = TrainedRun(RUNS / "emonet-base"), TrainedRun(RUNS / "voice_mlp-seed0")
    with FeatureStore(RUNS / "composite_features.h5") as store:
        train, val = SplitTable(store, "train"), SplitTable(store, "val")
        train_emb, val_emb = base.store_embeddings(store, train.keys), base.store_embeddings(store, val.keys)
        val_audio = audio_matrix(store, val.keys)
    with FeatureStore(RUNS / "speech_features_wide.h5") as speech:  # voice_mlp.yaml's store
        speech_train = SplitTable(speech, "train")
        speech_audio = audio_matrix(speech, speech_train.keys)
    y = val.labels
    no_audio = np.zeros(len(y), bool)
    branch = {
        "video branch (emonet-base, voice hidden)": base.predict(val_emb, val_audio, no_audio),
        "voice (held-out recipe voice_mlp-seed0)": voice.predict(None, val_audio, val.has_audio),
        "emonet-base (pooled)": base.predict(val_emb, val_audio, val.has_audio),
    }
    video_twins, video_svm = twin_rows(pooled(train_emb), train.labels, pooled(val_emb), y)
    block = voice.config.model.audio_features
    (first, stop), (same_first, same_stop) = (audio_columns(name, speech_audio.shape[1], RUNS / "speech_features_wide.h5")
                                              for name in ("functionals", block))
    audio_twins, audio_svm = twin_rows(speech_audio[:, first:stop], speech_train.labels, val_audio[:, first:stop], y)
    same_twins, _ = twin_rows(speech_audio[:, same_first:same_stop], speech_train.labels,
                              val_audio[:, same_first:same_stop], y)
    record = {
        "what": __doc__.splitlines()[0], "clips": int(len(y)),
        "emonet": {name: round(float(uar(y, p.argmax(axis=1))), 4) for name, p in branch.items()},
        "video_twins_mean_pooled_embeddings": video_twins,
        "voice_twins_functionals": audio_twins,
        f"voice_twins_{block}": same_twins,
        "classical_late_fusion_linear_svms": round(float(uar(y, (video_svm + audio_svm).argmax(axis=1))), 4),
        "twins_fitted_on": {"video": f"{len(train.keys)} Train_AFEW clips",
                            "voice": f"{len(speech_train.keys)} utterances of the speech corpus's train speakers"},
    }
    target = REPO / "experiments" / "results" / "emonet_base_twins.json"
    atomic_write_text(target, json.dumps(record, indent=2) + "\n")
    for name, value in record["emonet"].items():
        print(f"{name:45s} {100 * value:5.1f}%")
    for group in [key for key in record if "_twins_" in key]:
        print(group, {k: f"{100 * v:.1f}%" for k, v in record[group].items()})
    print(f"classical late fusion (two linear SVMs)        {100 * record['classical_late_fusion_linear_svms']:5.1f}%")
    print(f"-> {target}")


if __name__ == "__main__":
    main()
