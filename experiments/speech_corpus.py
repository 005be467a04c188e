"""All the speech of ../shared/data/speech as one speaker-independent corpus (a ``csv`` layout manifest).

RAVDESS (actors 01-18), EmoDB (8 speakers) and URDU (26 speakers) are listed with their
labels (the layouts' own parsers) and split by *speaker*, so no speaker is in two splits:

- ``test``: the speakers the reported voice figures come from; no choice is made on them.
  For RAVDESS these are actors 15-18, the speakers of the composite corpus's Val_AFEW, so
  that split's audio is unseen-speaker audio for a voice branch trained here.
- ``val``: early stopping and the choice of reducer.
- ``train``: everything else.

With ``--refit`` every speaker is a ``train`` speaker (default folder ``runs/speech_corpus_all``):
the corpus of the shipped voice (``experiments/voice_mlp_all.yaml``), trained for a fixed number
of epochs once the split above has measured the recipe on unseen speakers.

The composite clips' audio is left out: it is RAVDESS actors 01-18 again (the same
recordings, re-encoded to AAC), so it adds no speaker and no utterance.

Run:  .venv/bin/python experiments/speech_corpus.py [--refit] [--out FOLDER]
Writes ``<out>/manifest.csv`` (columns path, label, split, speaker, subject; paths absolute)
and prints the clips per corpus and split. ``experiments/voice_*.yaml`` read it as
``data.root: ../runs/speech_corpus`` with ``layout: csv``.
"""

import argparse
import collections
import csv
import io
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from preprocessing.datasets import build_manifest  # noqa: E402
from preprocessing.files import atomic_write_text  # noqa: E402

SPEECH = REPO.parent / "shared" / "data" / "speech"

#: corpus -> (layout, {split: speakers}); speakers not listed are training speakers.
HELD_OUT = {
    "ravdess": ("ravdess", {"test": {"15", "16", "17", "18"}, "val": {"11", "12"}}),
    "emodb": ("emodb", {"test": {"03", "08"}, "val": {"10", "13"}}),
    "urdu": ("urdu", {"test": {"SM2", "SF7", "SM23", "SF4", "SF11", "SM19", "SF2"},
                      "val": {"SM7", "SF1", "SM27", "SF8"}}),
}


def speaker_split(corpus, speaker):
    """``"train"``, ``"val"`` or ``"test"`` for a corpus's speaker."""
    for split, speakers in HELD_OUT[corpus][1].items():
        if speaker in speakers:
            return split
    return "train"


def corpus_rows(speech_root=SPEECH, *, refit=False):
    """One row per labelled utterance: (absolute path, label, split, "corpus:speaker"); ``refit``: all train."""
    rows = []
    for corpus, (layout, _) in HELD_OUT.items():
        manifest = build_manifest(Path(speech_root) / corpus, layout=layout)
        for record in manifest.records:
            if record.label is None or record.speaker is None:
                continue
            split = "train" if refit else speaker_split(corpus, record.speaker)
            rows.append((str(record.path), record.label, split,
                         f"{corpus}:{record.speaker}"))
    return rows


def manifest_text(rows):
    """The CSV text of ``rows`` with the ``csv`` layout's header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "label", "split", "speaker", "subject"])
    for path, label, split, speaker in rows:
        writer.writerow([path, label, split, speaker, speaker])
    return out.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refit", action="store_true", help="every speaker in the train split")
    parser.add_argument("--out", help="folder for manifest.csv (default runs/speech_corpus, "
                                      "with --refit runs/speech_corpus_all)")
    args = parser.parse_args(argv)
    if not SPEECH.is_dir():
        sys.exit(f"{SPEECH}: no speech data (the ../shared development data is not here)")
    rows = corpus_rows(refit=args.refit)
    out = Path(args.out or REPO / "runs" / ("speech_corpus_all" if args.refit else "speech_corpus"))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "manifest.csv", manifest_text(rows))
    counts = collections.Counter((speaker.split(":")[0], split) for _, _, split, speaker in rows)
    for corpus in HELD_OUT:
        print(f"{corpus:8s} " + "  ".join(f"{split} {counts[(corpus, split)]:4d}" for split in ("train", "val", "test")))
    print(f"{len(rows)} utterances -> {out / 'manifest.csv'}")


if __name__ == "__main__":
    main()
