"""The help epilogs of the ``emonet`` subcommands: examples shown after the options by ``--help``.

Text only (no imports): building the parser stays cheap. Each epilog starts with an
``examples:`` line and is shown as written (:class:`argparse.RawDescriptionHelpFormatter`).
"""

EXTRACT_EXAMPLES = """\
examples:
  emonet extract data/AFEW --layout afew -o afew.h5          # every split, one worker per core
  emonet extract data/CREMA-D --layout crema_d -o crema_d.h5 -j 2
  emonet extract clips/ --layout csv --csv labels.csv -o mine.h5 --split train

The same command again completes an interrupted store without redoing finished clips.
"""


TRAIN_EXAMPLES = """\
examples:
  emonet train experiments/composite_fusion.yaml            # -> runs/composite_fusion-seed0
  emonet train experiments/composite_fusion.yaml --smoke    # quick variant -> runs/composite_fusion_smoke-seed0
  emonet train experiments/composite_fusion.yaml --seed 1   # -> runs/composite_fusion-seed1
  emonet train experiments/composite_fusion.yaml --resume   # continue an interrupted run
"""


EVALUATE_EXAMPLES = """\
examples:
  emonet evaluate runs/composite_fusion-seed0                  # on the run's val split
  emonet evaluate runs/composite_fusion-seed0 --data other.h5  # on another feature store
  emonet evaluate --data tests/data/crema_d --layout crema_d   # the shipped emonet-base on labelled clips
"""


PREDICT_EXAMPLES = """\
examples:
  emonet predict clip.mp4 photo.jpg                          # a table on stdout
  emonet predict clips/ -f csv -o predictions.csv            # a folder, recursively
  emonet predict clips/ -f csv -o predictions.csv --resume   # finish an interrupted run
  emonet predict clips/ -m runs/composite_fusion-seed0 --submission labels/
  emonet predict talk.mp4 --window 2 --hop 1 -f srt -o talk.srt
  emonet predict talk.mp4 --window 2 --hop 1 --annotate talk_annotated.mp4

-o FILE in csv or json: the rows of each batch are kept in FILE.partial as soon as it is
classified, and FILE is written whole at the end (until then it keeps its old content).
After an interruption, the same command with --resume classifies only the clips missing
from FILE.partial (or from FILE) and adds them. JSON objects and CSV rows carry the same
fields: clip (relative to the clips' common folder), emotion, the seven probabilities,
has_audio, face_rate.

--window 2 --hop 1: a timeline, one row (or subtitle) per window of 2 s starting every
1 s, and a clip label (the duration-weighted mean of the windows). --annotate FILE
writes a copy of the video with the face box and the current window's emotion drawn on it.
"""
