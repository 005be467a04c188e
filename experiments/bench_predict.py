"""Prediction speed of the shipped model emonet-base, from a cold start and warm.

Measures, per clip set, with ``emonet.inference.predict.predict_clips`` (batch 16):

- ``first call``: a fresh process running ``emonet predict --format json`` on the
  set, wall time including Python and TensorFlow start-up and the model load
  (what one command-line call costs); median of ``--repeats`` runs;
- ``warm``: in this one process, the model loaded once (``TrainedRun``), then
  ``predict_clips(paths, loaded_run)`` on the set ``--repeats`` times; the median
  of the calls after the first (the first pays tf.function tracing). That is
  decode + faces + audio + embed + classify, what a caller keeping the model
  (``emonet.load_model``) gets;
- ``reload``: the same calls given the run folder instead, so that each call
  loads the model again (and retraces it) before classifying;
- ``load``: ``TrainedRun(shipped_model_dir())`` alone, after TensorFlow is
  imported (first construction and median of all).

Each as clips/s and seconds of footage per second of wall time (footage: the
container duration from ``preprocessing.probe.probe``; a photo counts as 0 s).

Sets: the six bundled CREMA-D clips (tests/data/crema_d, FLV/VP6 480x360 with
audio, 2-3 s), the two bundled photos (tests/data/stills), and when
../shared/data/real exists the MEAD clips without audio
(mead_video_only/*.mp4, 256x256) and one 1080p MEAD clip (mead/M030_sad_3_001.mp4).

Run:  .venv/bin/python experiments/bench_predict.py [--repeats 3]
Writes experiments/results/bench_predict.json and prints a table. Measures only: it asserts no timings.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from preprocessing.constants import IMAGE_SUFFIXES
from preprocessing.extraction import library_versions
from preprocessing.files import atomic_write_text
from preprocessing.probe import probe

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
REAL = REPO.parent / "shared" / "data" / "real"
BATCH_SIZE = 16  # clips per model call: the CLI default


def clip_sets():
    """(name, description, paths) of every set present on this machine."""
    sets = [("crema_d", "bundled CREMA-D, FLV/VP6 480x360 + audio, 2-3 s",
             sorted((TEST_DATA / "crema_d").glob("*.flv"))),
            ("stills", "bundled photos (JPEG, 0 s of footage)", sorted((TEST_DATA / "stills").glob("*.jpg")))]
    if REAL.is_dir():
        sets += [("mead_video_only", "MEAD, H.264 256x256, no audio",
                  sorted((REAL / "mead_video_only").glob("*.mp4"))),
                 ("mead_1080p", "MEAD, H.264 1920x1080 + audio", [REAL / "mead" / "M030_sad_3_001.mp4"])]
    return [(name, text, paths) for name, text, paths in sets if paths]


def footage_seconds(path):
    """Container duration of a clip in seconds; 0 for a photo."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return 0.0
    duration = probe(path).duration
    if duration is None:
        raise SystemExit(f"bench_predict: {path}: ffmpeg reports no duration")
    return duration


def emonet_command():
    """The ``emonet`` console script of the interpreter running this file."""
    script = Path(sys.executable).parent / "emonet"
    if not script.is_file():
        raise SystemExit(f"bench_predict: {script} not found (pip install -e . into this environment)")
    return [str(script)]


def first_call_seconds(paths):
    """Wall time of one fresh ``emonet predict`` process on ``paths`` (checks it classified them all)."""
    cmd = emonet_command() + ["predict", "--format", "json", "--no-progress",
                              "--batch-size", str(BATCH_SIZE), *map(str, paths)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench_predict: {' '.join(cmd[:3])} ... exited {proc.returncode}: "
                         f"{proc.stderr.strip().splitlines()[-1:]}")
    classified = len(json.loads(proc.stdout))
    if classified != len(paths):
        raise SystemExit(f"bench_predict: emonet predict classified {classified} of {len(paths)} clips")
    return seconds


def timed_calls(paths, model, repeats):
    """Wall seconds of ``repeats`` predict_clips calls on ``paths``, and the failures of the last.

    ``model`` is a loaded TrainedRun (reused) or a run folder (loaded by every call).
    """
    from emonet.inference.predict import predict_clips
    seconds, failures = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        _, failures = predict_clips(paths, model, batch_size=BATCH_SIZE, progress=False)
        seconds.append(time.perf_counter() - start)
    return seconds, failures


def rates(seconds, n_clips, footage):
    """Median wall time of a list of runs and the throughput it gives."""
    median = statistics.median(seconds)
    return {"seconds_median": round(median, 3), "seconds_all": [round(s, 3) for s in seconds],
            "clips_per_second": round(n_clips / median, 3),
            "footage_seconds_per_second": round(footage / median, 3)}


def git_commit():
    proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], check=False,
                          capture_output=True, text=True)
    return proc.stdout.strip() or None


def uncommitted_files():
    """Tracked files that differ from the commit (the measured code may include them)."""
    proc = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], check=False,
                          capture_output=True, text=True)
    return [line[3:] for line in proc.stdout.splitlines()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (warm: first is dropped)")
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "bench_predict.json")
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error(f"--repeats must be >= 2 (the first warm call is dropped); received {args.repeats}")
    load_before = os.getloadavg()  # 1/5/15-min load: other work on the machine skews every figure
    sets = clip_sets()
    footage = {name: sum(footage_seconds(p) for p in paths) for name, _, paths in sets}

    # 1. first call: fresh processes, before this one imports TensorFlow (no contention from this process)
    first = {}
    for name, _, paths in sets:
        first[name] = [first_call_seconds(paths) for _ in range(args.repeats)]
        print(f"first call    {name:16s} " + " ".join(f"{s:.2f}" for s in first[name]) + " s", file=sys.stderr)

    # 2. model load alone, TensorFlow already imported
    start = time.perf_counter()
    from emonet.inference import trained_run
    tf_import_seconds = time.perf_counter() - start  # importing emonet's Keras/TensorFlow stack
    model_dir = trained_run.shipped_model_dir()
    load_seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        loaded = trained_run.TrainedRun(model_dir)
        load_seconds.append(time.perf_counter() - start)

    # 3. warm: the loaded model passed to predict_clips; reload: the run folder passed, loaded by each call
    warm, reload, failures = {}, {}, {}
    for name, _, paths in sets:
        warm[name], failures[name] = timed_calls(paths, loaded, args.repeats)
        reload[name], _ = timed_calls(paths, model_dir, args.repeats)
        print(f"warm / reload {name:16s} " + " ".join(f"{s:.2f}" for s in warm[name]) + " / "
              + " ".join(f"{s:.2f}" for s in reload[name]) + " s", file=sys.stderr)

    import keras
    import tensorflow as tf
    record = {
        "what": "emonet-base prediction speed: fresh `emonet predict` process vs predict_clips with the model loaded",
        "commit": git_commit(),
        "uncommitted": uncommitted_files(),  # tracked files changed since that commit when measured
        "model": str(model_dir.relative_to(REPO)),
        "batch_size": BATCH_SIZE,
        "repeats": args.repeats,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "machine": platform.machine(), "processor": platform.processor() or None,
                    "load_average_before": [round(x, 2) for x in load_before],  # 1, 5, 15 min
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "versions": {**library_versions(), "tensorflow": tf.__version__, "keras": keras.__version__},
        "tensorflow_import_seconds": round(tf_import_seconds, 3),  # in the warm process, once
        "model_load_seconds": {"first": round(load_seconds[0], 3),  # TrainedRun(...) after TF import
                               "median": round(statistics.median(load_seconds), 3),
                               "all": [round(s, 3) for s in load_seconds]},
        "sets": {},
    }
    for name, text, paths in sets:
        n = len(paths)
        record["sets"][name] = {
            "description": text,
            "clips": n,
            "footage_seconds": round(footage[name], 3),  # sum of container durations, photos 0
            "failed": len(failures[name]),  # skipped clips in the last warm call
            "first_call": rates(first[name], n, footage[name]),  # fresh process, median of all runs
            "warm": {**rates(warm[name][1:], n, footage[name]),  # median of calls after the first
                     "first_in_process_seconds": round(warm[name][0], 3)},
            "reload": {**rates(reload[name][1:], n, footage[name]),  # run folder passed: a model load per call
                       "first_in_process_seconds": round(reload[name][0], 3)},
        }
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")

    print(f"emonet-base on {os.cpu_count()} CPUs ({platform.platform()}); medians of {args.repeats} runs, "
          f"warm/reload = calls after the first; load average before {load_before[0]:.2f}, "
          f"after {os.getloadavg()[0]:.2f}")
    print(f"{'set':16s} {'clips':>5s} {'footage s':>9s}   {'first call':^20s}   {'warm':^20s}   {'reload':^20s}")
    print(f"{'':16s} {'':5s} {'':9s}   {'clips/s':>9s} {'footage/s':>10s}   {'clips/s':>9s} {'footage/s':>10s}"
          f"   {'clips/s':>9s} {'footage/s':>10s}")
    for name, entry in record["sets"].items():
        cells = "   ".join(f"{entry[k]['clips_per_second']:9.2f} {entry[k]['footage_seconds_per_second']:10.2f}"
                           for k in ("first_call", "warm", "reload"))
        print(f"{name:16s} {entry['clips']:5d} {entry['footage_seconds']:9.2f}   {cells}")
    load = record["model_load_seconds"]
    print(f"model load (TrainedRun, TF imported): first {load['first']:.2f} s, median {load['median']:.2f} s; "
          f"TensorFlow import {record['tensorflow_import_seconds']:.2f} s")
    print(f"-> {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()
