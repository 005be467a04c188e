"""The pretrained voice encoder's statistics against the hand-made functionals, on unseen speakers.

Blocks of today's 3,361-value audio vector (:mod:`preprocessing.audio`):

- ``functionals``: the first 1,825 values (MFCC-based functionals, log-mel and prosody statistics: the
  voice of sessions 10-13);
- ``voice encoder``: the last 1,536 (:mod:`preprocessing.audio_voice_encoder`: mean and spread of the
  hidden units of the three LSTM layers of Resemblyzer's pretrained GE2E speaker encoder);
- ``both``: all 3,361 (what ``reducer: none`` gives the shipped voice).

Protocol of ``voice_network_cv.py --every-speaker``: six speaker-disjoint folds of all 52 speakers of
RAVDESS, EmoDB and URDU (1,730 utterances), features standardised on the training folds; a logistic
regression (C=0.01, class-balanced, no copies) and the shipped voice's recipe (one hidden layer of 256,
speed copies 0.8-1.2x, input noise, a fixed 100 epochs; scored on the clip alone and with the four
test-time copies). Out-of-fold UAR per corpus. The 13 test speakers of ``speech_corpus.py`` are inside
these folds; the speakers this project does not have saw no choice.

Run:  .venv/bin/python experiments/voice_encoder_cv.py   (~25 min on 2 cores; needs runs/speech_features_all.h5
      of ``emonet train experiments/voice_mlp_all.yaml``, extracted by this version)
Writes experiments/results/voice_encoder_cv.json and prints a table.
"""

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emonet.experiment.rundir import git_commit  # noqa: E402
from experiments.voice_network_cv import load_corpus, speaker_folds  # noqa: E402
from experiments.voice_normalisation_cv import variant_figures  # noqa: E402
from preprocessing.audio import audio_block, feature_names  # noqa: E402
from preprocessing.files import atomic_write_text  # noqa: E402

MANIFEST = REPO / "runs" / "speech_corpus_all" / "manifest.csv"
STORE = REPO / "runs" / "speech_features_all.h5"
RECORD = REPO / "experiments" / "results" / "voice_encoder_cv.json"
FOLDS = 6


def blocks():
    """{block name: column slice} of the audio vector."""
    return {name: slice(*audio_block(block))
            for name, block in (("functionals", "functionals"), ("voice encoder", "voice_encoder"), ("both", "all"))}


def main():
    if not STORE.is_file():
        sys.exit(f"{STORE}: run .venv/bin/emonet train experiments/voice_mlp_all.yaml first")
    start, commit = time.perf_counter(), git_commit()
    x, copies, labels, speakers = load_corpus(MANIFEST, STORE)
    if x.shape[1] != len(feature_names()):
        sys.exit(f"{STORE}: holds {x.shape[1]} audio values per clip, this version computes {len(feature_names())}; "
                 "delete it and train experiments/voice_mlp_all.yaml again")
    folds = speaker_folds(speakers, FOLDS)
    results = {}
    for name, columns in blocks().items():
        results[name] = variant_figures(x[:, columns], copies[:, :, columns], labels, speakers, folds)
        print(name, json.dumps(results[name]), flush=True)
    record = {"what": __doc__.splitlines()[0], "git_commit": commit, "utterances": int(len(labels)),
              "speakers": int(len(set(speakers))), "folds": FOLDS,
              "metric": "UAR of out-of-fold predictions per corpus (URDU over its 4 classes)",
              "uar": results, "seconds": round(time.perf_counter() - start)}
    atomic_write_text(RECORD, json.dumps(record, indent=2) + "\n")
    print(f"-> {RECORD}")


if __name__ == "__main__":
    main()
