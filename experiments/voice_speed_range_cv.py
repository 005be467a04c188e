"""How far apart should the voice's speed copies be? Speaker-disjoint cross-validation of four sets.

The voice trains on speed-perturbed copies of each utterance and, at prediction, averages its
probabilities over the clip and the same copies (``extract.audio_speeds``,
``model.test_audio_speeds``). Session 10 used 0.9, 0.95, 1.05 and 1.1. This compares that set
with wider ones, each used for both training and prediction, under the protocol of
``experiments/voice_network_cv.py --every-speaker``: all 1,730 utterances of the 52 speakers in
six speaker folds, the one-layer network, 100 epochs, fold models seeded ``k + 100 * seed``.

Sets: ``0.9-1.1`` (session 10), ``0.8-1.2`` (0.8, 0.9, 1.1, 1.2), ``0.7-1.3`` (0.7, 0.85, 1.15,
1.3), and six copies ``0.75-1.25`` (0.75, 0.8, 0.9, 1.1, 1.2, 1.25). The copies' functionals are
extracted once for every factor into ``runs/speech_speed_copies.npz`` (about 7 minutes on
2 cores; reused when present). The 13 test speakers of ``speech_corpus.py`` are inside the
folds, so they saw this choice; the speakers this project does not have did not.

Run:  .venv/bin/python experiments/voice_speed_range_cv.py [--seeds 0 1]   (~30 min on 2 cores; needs
      ``runs/speech_corpus_all/manifest.csv`` and ``runs/speech_features_all.h5`` of voice_mlp_all.yaml)
Writes experiments/results/voice_speed_range_cv.json and prints a table.
"""

import argparse
import io
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emonet.evaluation.metrics import uar  # noqa: E402
from experiments.voice_network_cv import CORPORA, corpus_rows, load_corpus, out_of_fold, speaker_folds  # noqa: E402
from preprocessing.files import atomic_write_bytes, atomic_write_text  # noqa: E402

RUNS = REPO / "runs"
SETS = {
    "0.9-1.1": (0.9, 0.95, 1.05, 1.1),
    "0.8-1.2": (0.8, 0.9, 1.1, 1.2),
    "0.7-1.3": (0.7, 0.85, 1.15, 1.3),
    "0.75-1.25 (six)": (0.75, 0.8, 0.9, 1.1, 1.2, 1.25),
}
FACTORS = tuple(sorted({f for speeds in SETS.values() for f in speeds}))
COPIES = RUNS / "speech_speed_copies.npz"


def _copies_of(path):
    from preprocessing.audio_augment import speed_functionals
    from preprocessing.media import decode_audio
    return speed_functionals(decode_audio(path), FACTORS)


def speed_copies(paths):
    """(len(FACTORS), n, d) functionals of every utterance played at every factor; cached in COPIES."""
    if COPIES.is_file():
        with np.load(COPIES, allow_pickle=False) as cached:
            if list(cached["paths"]) == list(paths) and tuple(cached["factors"]) == FACTORS:
                return cached["copies"].astype(np.float64)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        rows = pool.map(_copies_of, paths, chunksize=8)
    copies = np.stack(rows).transpose(1, 0, 2)
    buffer = io.BytesIO()
    np.savez(buffer, paths=np.array(paths), factors=np.array(FACTORS), copies=copies)
    atomic_write_bytes(COPIES, buffer.getvalue())
    return copies.astype(np.float64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of the fold models")
    args = parser.parse_args()
    started = time.time()
    manifest = RUNS / "speech_corpus_all" / "manifest.csv"
    features, _, labels, speakers = load_corpus(manifest, RUNS / "speech_features_all.h5")
    copies = speed_copies([r["path"] for r in corpus_rows(manifest)])  # the clips of load_corpus, in its order
    folds = speaker_folds(speakers, 6)
    corpus = np.array([s.split(":")[0] for s in speakers])
    record = {"what": __doc__.splitlines()[0], "clips": len(labels), "speakers": len(set(speakers)), "folds": 6,
              "seeds": args.seeds, "sets": {}}
    for name, speeds in SETS.items():
        chosen = copies[[FACTORS.index(f) for f in speeds]]
        figures = record["sets"][name] = {"speeds": list(speeds)}
        for seed in args.seeds:
            predicted, averaged = out_of_fold("one layer", features, chosen, labels, folds, seed=seed)
            for key, guess in (("uar", predicted), ("uar_test_time_copies", averaged)):
                figures.setdefault(key, {})[f"seed{seed}"] = {
                    c: round(float(uar(labels[corpus == c], guess[corpus == c])), 4) for c in CORPORA}
            print(name.ljust(16), f"seed {seed}", "  ".join(
                f"{c} {100 * u:.1f}" for c, u in figures["uar_test_time_copies"][f"seed{seed}"].items()), flush=True)
        figures["uar_test_time_copies_mean"] = {
            c: round(float(np.mean([figures["uar_test_time_copies"][f"seed{s}"][c] for s in args.seeds])), 4)
            for c in CORPORA}
    record["seconds"] = round(time.time() - started)
    target = REPO / "experiments" / "results" / "voice_speed_range_cv.json"
    atomic_write_text(target, json.dumps(record, indent=2) + "\n")
    for name, figures in record["sets"].items():
        print(name.ljust(16), "mean", "  ".join(
            f"{c} {100 * u:.1f}" for c, u in figures["uar_test_time_copies_mean"].items()))
    print(f"-> {target}")


if __name__ == "__main__":
    main()
