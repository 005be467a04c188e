"""Do the log-mel statistics help the voice on unseen speakers? Speaker-disjoint cross-validation.

All labelled speech of ../shared/data/speech (RAVDESS actors 01-18, EmoDB, URDU: 1,730
utterances of 52 speakers, ``experiments/speech_corpus.py``'s manifest) is cut into six
folds by *speaker*: fold k holds RAVDESS actors, EmoDB speakers and URDU speakers number
k, k+6, ... of each corpus's sorted speaker list, so every utterance is predicted by models
that never heard its speaker. Each classifier is fitted on the other five folds, standardised
on them only, with balanced class weights, on

- ``functionals``: the first 1,475 values of :func:`preprocessing.audio.audio_functionals`
  (the vector before the log-mel statistics),
- ``functionals+logmel``: the first 1,795 values (the vector of sessions 7-9), and
- ``functionals+logmel+prosody``: all 1,825 values (with :mod:`preprocessing.audio_prosody`).

Classifiers: logistic regression (C=0.01), RBF SVM (C=3), an MLP (256-128, alpha 1), and the
mean of the LR and SVM probabilities. Reported: UAR per corpus over its out-of-fold
predictions (URDU over its 4 classes).

Run:  .venv/bin/python experiments/voice_features_cv.py   (~15 min on 2 cores)
Writes experiments/results/voice_features_cv.json; the features are cached in
runs/voice_features_cv.npz (delete it after changing the functionals).
"""

import csv
import json
import sys
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import recall_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from preprocessing.audio import audio_functionals, feature_names  # noqa: E402
from preprocessing.constants import LEGACY_WIDTH  # noqa: E402
from preprocessing.files import atomic_write_text  # noqa: E402
from preprocessing.media import decode_audio  # noqa: E402

MANIFEST = REPO / "runs" / "speech_corpus" / "manifest.csv"
CACHE = REPO / "runs" / "voice_features_cv.npz"
RECORD = REPO / "experiments" / "results" / "voice_features_cv.json"
N_FOLDS = 6
CORPORA = ("ravdess", "emodb", "urdu")

CLASSIFIERS = {
    "logistic regression": lambda: LogisticRegression(C=0.01, max_iter=500, class_weight="balanced"),
    "RBF SVM": lambda: SVC(C=3.0, class_weight="balanced", probability=True, random_state=0),
    "MLP": lambda: MLPClassifier((256, 128), alpha=1.0, max_iter=200, random_state=0),
}


def utterance_features(path):
    """(1,825,) float32 functionals of one file, decoded as extraction decodes it."""
    return audio_functionals(decode_audio(path))[0]


def load_features():
    """(features (n, 1825), labels (n,), speakers (n,)) of the manifest, cached in :data:`CACHE`."""
    rows = list(csv.DictReader(MANIFEST.open(newline="")))
    if CACHE.is_file():
        cached = np.load(CACHE, allow_pickle=False)
        if cached["features"].shape == (len(rows), len(feature_names())):
            return cached["features"], cached["labels"], cached["speakers"]
    features = np.stack(Parallel(n_jobs=2)(delayed(utterance_features)(r["path"]) for r in rows))
    labels = np.array([r["label"] for r in rows])
    speakers = np.array([r["speaker"] for r in rows])
    np.savez(CACHE, features=features, labels=labels, speakers=speakers)
    return features, labels, speakers


def speaker_folds(speakers):
    """Fold index (n,) per utterance: speaker i of each corpus's sorted list goes to fold i mod 6."""
    folds = np.zeros(len(speakers), int)
    for corpus in CORPORA:
        names = sorted({s for s in speakers if s.split(":")[0] == corpus})
        for i, name in enumerate(names):
            folds[speakers == name] = i % N_FOLDS
    return folds


def out_of_fold(make, X, y, folds, classes):
    """Out-of-fold class probabilities (n, n_classes) of ``make()`` on standardised X."""
    def one(k):
        model = make_pipeline(StandardScaler(), make())
        model.fit(X[folds != k], y[folds != k])
        return k, model.predict_proba(X[folds == k])
    proba = np.zeros((len(y), len(classes)))
    for k, p in Parallel(n_jobs=2)(delayed(one)(k) for k in range(N_FOLDS)):
        proba[folds == k] = p
    return proba


def corpus_uars(proba, y, speakers, classes):
    pred = classes[proba.argmax(1)]
    corpus = np.array([s.split(":")[0] for s in speakers])
    return {c: round(float(recall_score(y[corpus == c], pred[corpus == c], labels=np.unique(y[corpus == c]),
                                        average="macro")), 4) for c in CORPORA}


def main():
    if not MANIFEST.is_file():
        sys.exit(f"{MANIFEST}: run experiments/speech_corpus.py first")
    features, y, speakers = load_features()
    folds, classes = speaker_folds(speakers), np.unique(y)
    results = {}
    for feature_set, X in (("functionals", features[:, :LEGACY_WIDTH]), ("functionals+logmel", features[:, :1795]),
                           ("functionals+logmel+prosody", features)):
        probas = {}
        for name, make in CLASSIFIERS.items():
            probas[name] = out_of_fold(make, X, y, folds, classes)
            results[f"{name} | {feature_set}"] = corpus_uars(probas[name], y, speakers, classes)
            print(f"{name:20s} {feature_set:20s} {results[f'{name} | {feature_set}']}", flush=True)
        mean = probas["logistic regression"] + probas["RBF SVM"]
        results[f"LR+SVM mean | {feature_set}"] = corpus_uars(mean, y, speakers, classes)
        print(f"{'LR+SVM mean':20s} {feature_set:20s} {results[f'LR+SVM mean | {feature_set}']}", flush=True)
    record = {"utterances": int(len(y)), "speakers": int(len(set(speakers))), "folds": N_FOLDS,
              "metric": "UAR of out-of-fold predictions, per corpus (URDU over its 4 classes)",
              "uar": results}
    atomic_write_text(RECORD, json.dumps(record, indent=2) + "\n")
    print(f"-> {RECORD}")


if __name__ == "__main__":
    main()
