"""Per-utterance and per-speaker normalisation of the voice's functionals, on unseen speakers.

The issue asks to consider both. Measured with the protocol of ``voice_network_cv.py --every-speaker``
(six speaker-disjoint folds of all 52 speakers of RAVDESS, EmoDB and URDU; the shipped voice's
recipe: one hidden layer of 256, speed copies 0.8-1.2x in training, a fixed 100 epochs; out-of-fold
UAR of the clip alone and with the four test-time speed copies) and with a logistic regression
(C=0.01, balanced) on the same folds. Variants of the 1,825 functionals:

- ``none``: as the product computes them (the shipped voice);
- ``utterance mean``: each MFCC coefficient and log-mel band is taken relative to its mean over the
  utterance (cepstral mean normalisation, computed on the functionals): its min, max and percentiles
  minus its mean, the mean itself dropped (1,721 values). Removes the channel and the speaker's
  average timbre, and the average spectral shape of the emotion with them;
- ``utterance mean and variance``: the same, divided by the coefficient's standard deviation over
  the utterance (the std itself kept);
- ``speaker``: every value standardised over all clips of its speaker (the speaker's own mean and
  std, copies included). An oracle for ``emonet predict``, which gets one clip and no speaker.

Run:  .venv/bin/python experiments/voice_normalisation_cv.py   (~30 min on 2 cores; needs
      runs/speech_features_all.h5 of ``emonet train experiments/voice_mlp_all.yaml``)
Writes experiments/results/voice_normalisation_cv.json and prints a table.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emonet.evaluation.metrics import uar  # noqa: E402
from experiments.voice_network_cv import CORPORA, load_corpus, out_of_fold, speaker_folds  # noqa: E402
from preprocessing.audio import feature_names  # noqa: E402
from preprocessing.files import atomic_write_text  # noqa: E402

MANIFEST = REPO / "runs" / "speech_corpus_all" / "manifest.csv"
STORE = REPO / "runs" / "speech_features_all.h5"
RECORD = REPO / "experiments" / "results" / "voice_normalisation_cv.json"
FOLDS = 6
#: Location functionals of a frame-level series: they move with its mean.
LOCATIONS = {"mfcc": ("min", "max", "p10", "p50", "p90"), "logmel": ("p10", "p90")}
SERIES = {"mfcc": 40, "logmel": 64}


def utterance_normalised(x, *, variance):
    """(..., d') functionals with every MFCC coefficient and log-mel band relative to its utterance mean
    (divided by its utterance std too when ``variance``); the means dropped."""
    index = {name: i for i, name in enumerate(feature_names())}
    x, dropped = np.array(x, np.float64), set()
    for kind, n in SERIES.items():
        for k in range(n):
            stem = f"{kind}{k:02d}"
            mean, std = index[f"{stem}_mean"], index[f"{stem}_std"]
            columns = [index[f"{stem}_{f}"] for f in LOCATIONS[kind]]
            x[..., columns] -= x[..., [mean]]
            if variance:
                x[..., columns] /= x[..., [std]] + 1e-6
            dropped.add(mean)
    return x[..., [i for i in range(x.shape[-1]) if i not in dropped]]


def speaker_normalised(x, copies, speakers):
    """``x`` (n, d) and ``copies`` (K, n, d) standardised with each speaker's own mean and std."""
    x, copies = x.copy(), copies.copy()
    for speaker in np.unique(speakers):
        mine = speakers == speaker
        mean, std = x[mine].mean(axis=0), x[mine].std(axis=0) + 1e-6
        x[mine] = (x[mine] - mean) / std
        copies[:, mine] = (copies[:, mine] - mean) / std
    return x, copies


def logistic_out_of_fold(x, labels, folds):
    """Predicted class (n,) of a logistic regression that never heard the clip's speaker."""
    from sklearn.linear_model import LogisticRegression
    predicted = np.zeros(len(labels), int)
    for k in range(folds.max() + 1):
        train, test = folds != k, folds == k
        mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
        model = LogisticRegression(C=0.01, max_iter=2000, class_weight="balanced")
        model.fit((x[train] - mean) / std, labels[train])
        predicted[test] = model.predict((x[test] - mean) / std)
    return predicted


def corpus_uars(labels, predicted, speakers):
    corpus = np.array([s.split(":")[0] for s in speakers])
    return {c: round(float(uar(labels[corpus == c], predicted[corpus == c])), 4) for c in CORPORA}


def variant_figures(features, feature_copies, labels, speakers, folds):
    """Out-of-fold UAR per corpus of one feature variant (n, d) with its copies (K, n, d): a logistic regression,
    and the shipped voice's recipe (one layer) on the clip alone and with the test-time copies (dict)."""
    alone, with_copies = out_of_fold("one layer", features, feature_copies, labels, folds, seed=0)
    return {"values": int(features.shape[1]),
            "logistic regression": corpus_uars(labels, logistic_out_of_fold(features, labels, folds), speakers),
            "voice network, clip alone": corpus_uars(labels, alone, speakers),
            "voice network, with the test-time copies": corpus_uars(labels, with_copies, speakers)}


def main():
    if not STORE.is_file():
        sys.exit(f"{STORE}: run .venv/bin/emonet train experiments/voice_mlp_all.yaml first")
    start = time.perf_counter()
    x, copies, labels, speakers = load_corpus(MANIFEST, STORE)
    folds = speaker_folds(speakers, FOLDS)
    variants = {
        "none": (x, copies),
        "utterance mean": (utterance_normalised(x, variance=False), utterance_normalised(copies, variance=False)),
        "utterance mean and variance": (utterance_normalised(x, variance=True),
                                        utterance_normalised(copies, variance=True)),
        "speaker (oracle)": speaker_normalised(x, copies, speakers),
    }
    results = {}
    for name, (features, feature_copies) in variants.items():
        results[name] = variant_figures(features, feature_copies, labels, speakers, folds)
        print(name, json.dumps(results[name]), flush=True)
    record = {"what": "voice functionals normalised per utterance or per speaker, six speaker-disjoint folds of "
                      "all 52 speakers (voice_network_cv.py --every-speaker protocol, seed 0)",
              "utterances": int(len(labels)), "speakers": int(len(set(speakers))), "folds": FOLDS,
              "metric": "UAR of out-of-fold predictions per corpus (URDU over its 4 classes)",
              "uar": results, "seconds": round(time.perf_counter() - start)}
    atomic_write_text(RECORD, json.dumps(record, indent=2) + "\n")
    print(f"-> {RECORD}")


if __name__ == "__main__":
    main()
