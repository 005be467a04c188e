"""Prediction over many clips: serial vs pipelined (helper processes extract while the model classifies).

Measured side by side in one run, on the same clips (default: the 175 clips of the composite
corpus's Val_AFEW, ../shared/data/composite, linked into a temporary AFEW-layout folder;
``--limit N`` takes N spread over the classes), each a fresh process as a user runs it:

- ``extraction``: ``emonet extract DIR --layout afew --split val -o STORE --workers 2`` (the
  job: decoding, faces, audio functionals, the store written), the pace to match;
- ``prediction``: ``emonet predict DIR/Val_AFEW -f csv -o FILE --workers W`` for W = 0
  (serial: extract, embed, classify one clip after the other in one process), 1 and 2
  (helpers extract the next clips while the main process embeds and classifies; they
  start before TensorFlow loads). Start-up (Python, TensorFlow, model load) is included;
  ``first_result_seconds`` is when ``FILE.partial`` got its first batch (16 clips). The CSVs
  of every W are compared with W = 0 (``identical_to_serial``).
- ``start_up``: ``emonet predict ONE_CLIP -f json`` (default workers and ``--workers 0``).

Runs alternate (extraction, W = 0, 1, 2, then again for ``--repeats``; medians) so the
machine's load drifts evenly over them; the load average before and after is recorded (the
machine is shared: ratios measured in one run matter more than absolute figures).

Run:   .venv/bin/python experiments/bench_predict.py [--limit N] [--repeats 1]
Writes experiments/results/bench_predict.json (the previous record's figures kept under
"before") and prints a table. Measures only: it asserts no timings.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emonet.experiment.rundir import git_commit
from preprocessing.extraction import library_versions
from preprocessing.files import atomic_write_text
from preprocessing.media import ffmpeg_binary
from preprocessing.probe import probe

REPO = Path(__file__).resolve().parents[1]
COMPOSITE_VAL = REPO.parent / "shared" / "data" / "composite" / "Val_AFEW"
BATCH_SIZE = 16  # clips per model call: the CLI default
WORKERS = (0, 1, 2)


def clip_set(limit, folder):
    """Link the chosen Val_AFEW clips into ``folder``/Val_AFEW/<Emotion>/; returns (description, paths)."""
    every = sorted(COMPOSITE_VAL.glob("*/*.mp4"))
    if not every:
        raise SystemExit(f"bench_predict: no clips in {COMPOSITE_VAL} (the composite corpus of ../shared/data)")
    chosen = every[::max(1, len(every) // limit)][:limit] if limit else every  # spread over the classes
    paths = []
    for clip in chosen:
        target = folder / "Val_AFEW" / clip.parent.name / clip.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(clip)
        paths.append(target)
    return "composite Val_AFEW: H.264 160x160 30 fps + AAC, 2.5-4 s", paths


def emonet(*args):
    """The ``emonet`` console script of this interpreter with ``args``."""
    return [str(Path(sys.executable).parent / "emonet"), *map(str, args)]


def timed(cmd, partial=None):
    """Wall seconds of a fresh process (exit status 0 or 1 accepted), and when ``partial`` first held data."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = None
    while proc.poll() is None:
        if partial is not None and first is None and partial.exists() and partial.stat().st_size > 0:
            first = time.perf_counter() - start
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"bench_predict: {' '.join(cmd[1:3])} ... exited {proc.returncode}: "
                         f"{proc.stderr.read().decode(errors='replace')[-400:]}")
    return seconds, first


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="clips of Val_AFEW to use (default: all 175)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement (median)")
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "bench_predict.json")
    args = parser.parse_args()
    from emonet.inference.workers import default_workers
    load_before = os.getloadavg()  # 1/5/15-min load: other work on the machine skews every figure
    work = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    try:
        description, paths = clip_set(args.limit, work / "data")
        footage = sum(probe(p).duration or 0.0 for p in paths)
        start_up = {"default_workers": [], "workers_0": []}
        runs = {"extraction": [], **{f"prediction_{w}": [] for w in WORKERS}}
        firsts = {f"prediction_{w}": [] for w in WORKERS}
        outputs = {}
        for repeat in range(args.repeats):
            start_up["default_workers"].append(timed(emonet("predict", paths[0], "-f", "json", "--no-progress"))[0])
            start_up["workers_0"].append(timed(emonet("predict", paths[0], "-f", "json", "--no-progress",
                                                      "--workers", 0))[0])
            store = work / f"store_{repeat}.h5"
            runs["extraction"].append(timed(emonet("extract", work / "data", "--layout", "afew", "--split", "val",
                                                   "-o", store, "--workers", 2, "--no-progress"))[0])
            for w in WORKERS:
                out = work / f"predict_{w}_{repeat}.csv"
                seconds, first = timed(emonet("predict", work / "data" / "Val_AFEW", "-f", "csv", "-o", out,
                                              "--workers", w, "--no-progress"), partial=out.with_name(out.name + ".partial"))
                runs[f"prediction_{w}"].append(seconds)
                firsts[f"prediction_{w}"].append(first)
                outputs[w] = out.read_text()
            print(f"repeat {repeat}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in runs.items()), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def rate(seconds):
        median = statistics.median(seconds)
        return {"seconds_median": round(median, 2), "seconds_all": [round(s, 2) for s in seconds],
                "clips_per_second": round(len(paths) / median, 2),
                "footage_seconds_per_second": round(footage / median, 2)}

    extraction = rate(runs["extraction"])
    prediction = {str(w): {**rate(runs[f"prediction_{w}"]),
                           "first_result_seconds": [None if f is None else round(f, 2) for f in firsts[f"prediction_{w}"]],
                           "identical_to_serial": outputs[w] == outputs[0]} for w in WORKERS}
    best = max(WORKERS, key=lambda w: prediction[str(w)]["clips_per_second"])
    record = {
        "what": "emonet predict over many clips: serial vs helper processes extracting while the model classifies",
        "commit": git_commit(),  # "-dirty" when the working tree measured had local changes
        "clips": {"set": description, "count": len(paths), "footage_seconds": round(footage, 1)},
        "batch_size": BATCH_SIZE,
        "repeats": args.repeats,
        "default_workers": default_workers(),
        "ffmpeg": {"binary": ffmpeg_binary(), "version": library_versions()["ffmpeg"]},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "load_average_before": [round(x, 2) for x in load_before],  # 1, 5, 15 min
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "extraction": {"command": "emonet extract DIR --layout afew --split val -o STORE --workers 2", **extraction},
        "prediction": {"command": "emonet predict DIR/Val_AFEW -f csv -o FILE --workers W", **prediction},
        # extraction's clips/s over prediction's (default workers); target <= 1.5
        "extraction_over_prediction": round(extraction["clips_per_second"]
                                            / prediction[str(default_workers())]["clips_per_second"], 3),
        "pipelined_speed_up": round(prediction[str(default_workers())]["clips_per_second"]
                                    / prediction["0"]["clips_per_second"], 3),  # default workers over serial
        "start_up_seconds": {k: {"median": round(statistics.median(v), 2), "all": [round(s, 2) for s in v]}
                             for k, v in start_up.items()},  # fresh `emonet predict ONE_CLIP`
    }
    if args.out.exists():
        previous = json.loads(args.out.read_text())
        record["before"] = previous.get("before", previous) if "pipelined_speed_up" in previous else previous
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")

    print(f"{len(paths)} clips ({description}), {footage:.0f} s of footage, on {os.cpu_count()} CPUs; load average "
          f"before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; fresh processes, start-up included")
    print(f"extraction (emonet extract --workers 2): {extraction['clips_per_second']:.2f} clips/s")
    print(f"{'workers':>8s} {'predict clips/s':>16s} {'first batch s':>14s} {'identical':>10s}")
    for w in WORKERS:
        entry = prediction[str(w)]
        print(f"{w:>8d} {entry['clips_per_second']:16.2f} {str(entry['first_result_seconds']):>14s} "
              f"{str(entry['identical_to_serial']):>10s}")
    print(f"extraction / prediction (default {default_workers()} helpers): {record['extraction_over_prediction']:.2f}x "
          f"(target <= 1.5); fastest: {best} helpers")
    print(f"fresh `emonet predict ONE_CLIP`: {record['start_up_seconds']['default_workers']['median']:.2f} s "
          f"(--workers 0: {record['start_up_seconds']['workers_0']['median']:.2f} s)")
    print(f"-> {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()
