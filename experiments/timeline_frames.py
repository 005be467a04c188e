"""Frames per timeline window: do fewer change the window labels more than other frames do?

A timeline window samples ``WINDOW_FRAME_SHARE`` of the model's frame budget (half: 8 of
emonet-base's 16 frames, 4 fps for 2 s windows). This runs emonet-base's timelines (windows of
2 s every 1 s, in this process, ``workers=0``) with the share set to 1/2, 1 and 2, i.e. 4, 8 and
16 frames per second (8, 16 and 16 frames per window: at 16 fps the model reads 16 of the 32
frames, other ones than at 8 fps), on

- the real clips of ``../shared/data/real`` (every .mp4 and .flv; labels from the file names,
  contempt has no class), and
- with ``--loop-minutes M``, the looped CREMA-D video of ``bench_timeline.py`` (M minutes).

and records, for each pair of rates, how often the window labels agree (windows matched by their
start) and the mean absolute difference of their probabilities, and for each rate the window and
clip accuracy against the real clips' labels. 8 vs 16 fps is the yardstick: the same number of
frames, other frames.

Run:   .venv/bin/python experiments/timeline_frames.py [--loop-minutes 10]
Writes experiments/results/timeline_frames.json and prints a table.
"""

import argparse
import itertools
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

import emonet.inference.timeline as timeline_module
from emonet.experiment.rundir import git_commit
from preprocessing.constants import CLASSES
from preprocessing.files import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
SHARES = {"4 fps": Fraction(1, 2), "8 fps": Fraction(1), "16 fps": Fraction(2)}  # for emonet-base, 2 s windows
LABELS = {"ANG": "Angry", "DIS": "Disgust", "FEA": "Fear", "HAP": "Happy", "NEU": "Neutral", "SAD": "Sad",
          "angry": "Angry", "disgusted": "Disgust", "fear": "Fear", "happy": "Happy", "neutral": "Neutral",
          "sad": "Sad", "surprised": "Surprise"}


def clip_label(path):
    """The class named in a clip's file name (``1001_DFA_HAP_XX``, ``M030_front_sad_level3_001``), or None."""
    return next((LABELS[t] for t in path.stem.replace("-", "_").split("_") if t in LABELS), None)


def timelines(clips, model, share):
    """``{clip: (clip emotion, {start s: (emotion, probabilities (7,))})}`` with ``WINDOW_FRAME_SHARE = share``."""
    timeline_module.WINDOW_FRAME_SHARE = share
    out = {}
    for clip in clips:
        t = timeline_module.predict_timeline(clip, model, window=2.0, hop=1.0, workers=0)
        out[str(clip)] = (t.emotion, {r["start"]: (r["emotion"], np.array([r["probabilities"][c] for c in CLASSES]))
                                      for r in t.rows})
    return out


def compare(a, b):
    """Window label agreement and mean |probability difference| of two runs, over the windows both have."""
    pairs = [(a[c][1][s], b[c][1][s]) for c in a for s in sorted(set(a[c][1]) & set(b[c][1]))]
    return {"windows": len(pairs), "label_agreement": round(float(np.mean([x[0] == y[0] for x, y in pairs])), 4),
            "mean_abs_probability_difference": round(float(np.mean([np.abs(x[1] - y[1]).mean() for x, y in pairs])), 4),
            "clip_label_agreement": f"{sum(a[c][0] == b[c][0] for c in a)}/{len(a)}"}


def accuracy(run, clips):
    """Window and clip accuracy against the clips' labels (clips without one of the seven classes left out)."""
    labelled = [c for c in clips if clip_label(c)]
    windows = [(e, clip_label(c)) for c in labelled for e, _ in run[str(c)][1].values()]
    return {"windows": f"{sum(e == y for e, y in windows)}/{len(windows)}",
            "window_accuracy": round(sum(e == y for e, y in windows) / len(windows), 4),
            "clips": f"{sum(run[str(c)][0] == clip_label(c) for c in labelled)}/{len(labelled)}"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop-minutes", type=float, default=None, help="also the looped CREMA-D video of this length")
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "timeline_frames.json")
    args = parser.parse_args()
    if not REAL.is_dir():
        raise SystemExit(f"timeline_frames: {REAL} not found (the development data beside the project)")
    import emonet
    model = emonet.load_model()
    sets = {"real clips": sorted(p for p in REAL.rglob("*") if p.suffix in (".mp4", ".flv"))}
    with tempfile.TemporaryDirectory(prefix="timeline_frames_") as work:
        if args.loop_minutes:
            sys.path.insert(0, str(REPO / "experiments"))
            from bench_timeline import make_cycle, make_video
            sets["looped CREMA-D"] = [make_video(make_cycle(Path(work)), args.loop_minutes, Path(work))]
        record = {"what": "emonet-base timelines (2 s windows every 1 s) at 4, 8 and 16 sampled frames per second",
                  "commit": git_commit(), "sets": {}}
        for name, clips in sets.items():
            runs, seconds = {}, {}
            for rate, share in SHARES.items():
                start = time.perf_counter()
                runs[rate] = timelines(clips, model, share)
                seconds[rate] = round(time.perf_counter() - start, 1)
            entry = {"clips": len(clips), "seconds_in_process": seconds,
                     "agreement": {f"{a} vs {b}": compare(runs[a], runs[b]) for a, b in itertools.combinations(SHARES, 2)}}
            if name == "real clips":
                entry["accuracy"] = {rate: accuracy(runs[rate], clips) for rate in SHARES}
            record["sets"][name] = entry
    timeline_module.WINDOW_FRAME_SHARE = SHARES["4 fps"]
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    for name, entry in record["sets"].items():
        for pair, figures in entry["agreement"].items():
            print(f"{name:15s} {pair:15s} windows {figures['windows']:4d}  labels agree {figures['label_agreement']:.3f}  "
                  f"mean |dp| {figures['mean_abs_probability_difference']:.4f}  clip labels {figures['clip_label_agreement']}")
        for rate, figures in entry.get("accuracy", {}).items():
            print(f"{name:15s} {rate:15s} window accuracy {figures['windows']} = {figures['window_accuracy']:.3f}, "
                  f"clips {figures['clips']}")
    print(f"-> {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()
