"""Which voice network generalises to unseen speakers? Speaker-disjoint cross-validation.

The speech corpus of ``experiments/speech_corpus.py`` without its *test* speakers (so the
choice made here never sees them): RAVDESS, EmoDB and URDU train and val speakers, 1,346
utterances, cut into five folds by speaker (speaker number k, k+5, ... of each corpus's
sorted list). For each fold a network is trained on the other four the way
``emonet train`` trains an audio run with ``reducer: none``: functionals standardised on
the training folds, each epoch every clip is itself or one of its four speed-perturbed
copies (:func:`emonet.training.clip_model.sample_speed_copies`), Gaussian noise of 0.5 std
on the inputs (:func:`emonet.training.clip_model.regularise`), balanced class weights,
Adam 1e-3 with cosine decay, batch 32, a fixed 100 epochs (no early stopping: there is no
validation set inside a fold). Reported: UAR per corpus over the out-of-fold predictions, of the clip
alone (``uar``) and of the mean over the clip and its four speed copies (``uar_test_time_copies``: what
``model.test_audio_speeds`` does at prediction).

Networks (:func:`emonet.nn.models.build_emonet`, ``mode="audio"``):

- ``deep``: the default audio branch (256-128-128) and head (256-128-64), as in voice_speed.yaml;
- ``one layer``: ``audio_units=[256]``, ``head_units=[]``, as in voice_mlp.yaml.

With ``--every-speaker``: the estimate for the shipped refit (``experiments/voice_mlp_all.yaml``,
trained on all 52 speakers). All 1,730 utterances, test speakers included, in six speaker folds,
the one-layer network only: each fold trains on about 43 speakers (15 of RAVDESS's 18), so the
out-of-fold UAR says what the same recipe does on unseen speakers with (almost) the refit's data.
No choice is made on it. It reads the block of the audio vector ``voice_mlp_all.yaml`` names
(``model.audio_features``: the voice encoder's statistics since session 14). Since session 15 it
also fits the temperature of the clip-alone probabilities on these out-of-fold predictions
(:func:`emonet.training.calibration.fit_temperature`; ``calibration`` in the record): the one
emonet-base's voices are tempered by (``VOICE_TEMPERATURE`` in ``experiments/emonet_base.py``).

Run:  .venv/bin/python experiments/voice_network_cv.py [--every-speaker] [--seed N]   (~15 min on 2 cores; needs
      the store ``runs/speech_features_speed.h5`` that ``emonet train experiments/voice_speed.yaml``
      extracts, or with ``--every-speaker`` ``runs/speech_features_all.h5`` of ``voice_mlp_all.yaml``)
Writes experiments/results/voice_network_cv.json (``--every-speaker``: voice_refit_cv.json) and prints a table.
"""

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from emonet.evaluation.metrics import expected_calibration_error, uar  # noqa: E402
from emonet.experiment.config import load_config  # noqa: E402
from emonet.training.clip_model import regularise, sample_speed_copies  # noqa: E402
from emonet.training.calibration import fit_temperature, tempered  # noqa: E402
from emonet.training.stages import audio_columns  # noqa: E402
from experiments.speech_corpus import speaker_split  # noqa: E402
from preprocessing.constants import CLASSES  # noqa: E402
from preprocessing.files import atomic_write_text  # noqa: E402
from preprocessing.store import FeatureStore, clip_key  # noqa: E402

#: (manifest, store, record, folds, networks) of the network choice and of the refit's estimate.
SETUPS = {
    "choice": ("speech_corpus", "speech_features_speed.h5", "voice_network_cv.json", 5, ("deep", "one layer")),
    "every speaker": ("speech_corpus_all", "speech_features_all.h5", "voice_refit_cv.json", 6, ("one layer",)),
}
EPOCHS = 100
CORPORA = ("ravdess", "emodb", "urdu")
NETWORKS = {
    "deep": {"audio_units": (256, 128, 128), "head_units": (256, 128, 64)},
    "one layer": {"audio_units": (256,), "head_units": ()},
}


def corpus_rows(manifest):
    """The manifest's rows (dicts: path, label, split, speaker, ...) of the non-test clips, in file order."""
    with open(manifest, newline="", encoding="utf-8") as handle:
        return [r for r in csv.DictReader(handle) if r["split"] != "test"]


def load_corpus(manifest, store_path):
    """Functionals (n, d), speed copies (K, n, d), labels (n,) ints and speakers (n,) of the non-test clips
    (:func:`corpus_rows`)."""
    rows = corpus_rows(manifest)
    features, speeds = [], []
    with FeatureStore(store_path) as store:
        for row in rows:
            clip = store.clip(clip_key(row["path"]))
            features.append(clip["audio_functionals"][()])
            speeds.append(clip["audio_speed_functionals"][()])
    labels = np.array([CLASSES.index(r["label"]) for r in rows])
    return (np.array(features, np.float64), np.array(speeds, np.float64).transpose(1, 0, 2), labels,
            np.array([r["speaker"] for r in rows]))


def speaker_folds(speakers, n_folds):
    """Fold (0..n_folds-1) per clip: speaker number k, k + n_folds, ... of each corpus's sorted speakers."""
    fold_of = {}
    for corpus in CORPORA:
        for i, speaker in enumerate(sorted({s for s in speakers if s.startswith(corpus + ":")})):
            fold_of[speaker] = i % n_folds
    return np.array([fold_of[s] for s in speakers])


def train_fold(network, x, speeds, y, seed):
    """One fold's model: trained on (n, d) standardised functionals and their (K, n, d) copies."""
    import keras
    from emonet.nn.models import build_emonet
    keras.utils.set_random_seed(seed)
    model = build_emonet(mode="audio", audio_dim=x.shape[1], **NETWORKS[network])
    steps = EPOCHS * int(np.ceil(len(x) / 32))
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, steps)),
                  loss="sparse_categorical_crossentropy")
    counts = np.bincount(y, minlength=len(CLASSES))
    weights = {k: len(y) / (np.count_nonzero(counts) * c) for k, c in enumerate(counts) if c}
    noise = 0.5 * x.std(axis=0)
    for epoch in range(EPOCHS):
        rng = np.random.default_rng([seed, epoch])
        batch = {"audio": sample_speed_copies(x, speeds, rng).astype(np.float32)}
        regularise(batch, rng, noise_scale=0.0, audio_noise=noise, modality_dropout=0.0)
        model.fit(batch, y, batch_size=32, epochs=1, shuffle=True, class_weight=weights, verbose=0)
    return model


def out_of_fold(network, features, speeds, labels, folds, *, seed=0):
    """Predicted class per clip (n,), each from the model that never heard its speaker: of the clip alone, and
    of the mean probabilities over the clip and its K speed copies (``model.test_audio_speeds``)."""
    heard = out_of_fold_probabilities(network, features, speeds, labels, folds, seed=seed)
    return heard[0].argmax(axis=1), heard.mean(axis=0).argmax(axis=1)


def out_of_fold_probabilities(network, features, speeds, labels, folds, *, seed=0):
    """:func:`out_of_fold`'s probabilities, (1 + K, n, 7): of the clip alone, then of each of its K speed copies."""
    heard = np.zeros((1 + len(speeds), len(labels), len(CLASSES)))
    for k in range(folds.max() + 1):
        train, test = folds != k, folds == k
        mean, std = features[train].mean(axis=0), features[train].std(axis=0) + 1e-6
        model = train_fold(network, (features[train] - mean) / std, (speeds[:, train] - mean) / std,
                           labels[train], seed=k + 100 * seed)
        for i, x in enumerate((features, *speeds)):
            heard[i, test] = np.asarray(model.predict(((x[test] - mean) / std).astype(np.float32), verbose=0))
    return heard


def calibration(probabilities, labels):
    """Mean top probability, log-loss (nats) and expected calibration error (10 bins) of ``probabilities`` (n, 7)."""
    return {"mean_confidence": round(float(probabilities.max(axis=1).mean()), 4),
            "log_loss": round(float(-np.mean(np.log(np.maximum(probabilities[np.arange(len(labels)), labels],
                                                               1e-7)))), 4),
            "expected_calibration_error": round(expected_calibration_error(labels, probabilities), 4)}


def accuracy(probabilities, labels):
    """Share of clips whose top class is right."""
    return round(float(np.mean(probabilities.argmax(axis=1) == labels)), 4)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every-speaker", action="store_true", help="the refit's estimate (see the docstring)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds of the fold models (k + 100 * SEED); a seed other than 0 writes <record>_seedSEED.json")
    args = parser.parse_args()
    setup = "every speaker" if args.every_speaker else "choice"
    manifest, store, record_name, n_folds, networks = SETUPS[setup]
    started = time.time()
    features, speeds, labels, speakers = load_corpus(REPO / "runs" / manifest / "manifest.csv", REPO / "runs" / store)
    block = "all"
    if args.every_speaker:  # the refit's recipe reads the block its config names (model.audio_features)
        block = load_config(REPO / "experiments" / "voice_mlp_all.yaml").model.audio_features
        first, stop = audio_columns(block, features.shape[1], REPO / "runs" / store)
        features, speeds = features[:, first:stop], speeds[:, :, first:stop]
    folds = speaker_folds(speakers, n_folds)
    corpus = np.array([s.split(":")[0] for s in speakers])
    record = {"what": __doc__.splitlines()[0], "setup": setup, "clips": len(labels),
              "speakers": len(set(speakers)), "folds": n_folds, "epochs": EPOCHS, "networks": {}}
    record["audio_features"], record["audio_functionals"] = block, features.shape[1]
    test = np.array([speaker_split(*s.split(":")) == "test" for s in speakers])
    for network in networks:
        heard = out_of_fold_probabilities(network, features, speeds, labels, folds, seed=args.seed)
        predicted, averaged = heard[0].argmax(axis=1), heard.mean(axis=0).argmax(axis=1)
        figures = record["networks"][network] = {"shape": {k: list(v) for k, v in NETWORKS[network].items()}}
        if args.every_speaker:  # the shipped voice's temperature, fitted where a user reads the voice alone:
            # a clip without a face, heard with its speed copies (the mean of the tempered readings)
            temperature = fit_temperature(heard, labels)
            copies = np.mean([tempered(p, temperature) for p in heard], axis=0)
            figures["calibration"] = {
                "temperature": round(temperature, 3), "fitted_on": "the clip and its copies",
                "the clip and its copies, tempered": {"accuracy": accuracy(copies, labels),
                                                      **calibration(copies, labels)},
                "the clip heard once": {"accuracy": accuracy(heard[0], labels),
                                        "as trained": calibration(heard[0], labels),
                                        "tempered": calibration(tempered(heard[0], temperature), labels)}}
            print(network.ljust(10), "calibration", json.dumps(figures["calibration"]), flush=True)
        for name, guess in (("uar", predicted), ("uar_test_time_copies", averaged)):
            figures[name] = {c: round(float(uar(labels[corpus == c], guess[corpus == c])), 4) for c in CORPORA}
            if args.every_speaker:  # the same predictions, on voice_mlp.yaml's test speakers only (like for like)
                figures[name.replace("uar", "uar_test_speakers")] = {
                    c: round(float(uar(labels[test & (corpus == c)], guess[test & (corpus == c)])), 4) for c in CORPORA}
            print(network.ljust(10), name.ljust(20), "  ".join(f"{c} {100 * u:.1f}" for c, u in figures[name].items()),
                  flush=True)
    record["seconds"] = round(time.time() - started)
    if args.seed:
        record_name = record_name.replace(".json", f"_seed{args.seed}.json")
    record["seed"] = args.seed
    target = REPO / "experiments" / "results" / record_name
    atomic_write_text(target, json.dumps(record, indent=2) + "\n")
    print(f"-> {target}")


if __name__ == "__main__":
    main()
