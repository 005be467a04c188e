"""Start-up of ``emonet predict`` on one clip: a fresh process, from its start to its exit.

What a user waits for when classifying one file: Python start-up, imports, TensorFlow,
loading emonet-base, decoding and extracting the clip, the two model calls, writing the
answer, and the interpreter's exit. Runs alternate between the default (helper processes)
and ``--workers 0`` (all in one process), ``--repeats`` times each (medians), on the bundled
clip ``tests/data/crema_d/1001_DFA_HAP_XX.flv`` (FLV/VP6, 1.9 s). Each run's wall seconds
and its CPU seconds and peak resident memory (``os.wait4`` of that child: the largest of it
and its reaped children) are recorded, with the load average before each run.

Run:  .venv/bin/python experiments/bench_startup.py [--repeats 5]
Writes experiments/results/bench_startup.json and prints the medians. Measures only.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emonet.experiment.rundir import git_commit  # noqa: E402
from preprocessing.files import atomic_write_text  # noqa: E402

CLIP = REPO / "tests" / "data" / "crema_d" / "1001_DFA_HAP_XX.flv"
RECORD = REPO / "experiments" / "results" / "bench_startup.json"
VARIANTS = {"default_workers": [], "workers_0": ["--workers", "0"]}


def one_run(extra):
    """(wall s, CPU s, peak RSS MiB, 1-min load before) of one fresh ``emonet predict CLIP -f json``."""
    cmd = [str(Path(sys.executable).parent / "emonet"), "predict", str(CLIP), "-f", "json", "--no-progress", *extra]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench_startup: {' '.join(cmd)} failed")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, load


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    runs = {name: [] for name in VARIANTS}
    one_run([])  # warm the page cache (not counted)
    for _ in range(args.repeats):
        for name, extra in VARIANTS.items():
            runs[name].append(one_run(extra))
    record = {"what": __doc__.splitlines()[0], "commit": git_commit(), "clip": str(CLIP.relative_to(REPO)),
              "repeats": args.repeats, "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()}}
    for name, rows in runs.items():
        walls, cpus, peaks, loads = zip(*rows)
        record[name] = {"wall_seconds": round(statistics.median(walls), 2), "wall_all": [round(w, 2) for w in walls],
                        "cpu_seconds": round(statistics.median(cpus), 2), "peak_rss_mib": round(max(peaks), 1),
                        "load_1min_before": [round(x, 2) for x in loads]}
        print(f"{name:16s} wall {record[name]['wall_seconds']:.2f} s (all {record[name]['wall_all']}), "
              f"CPU {record[name]['cpu_seconds']:.2f} s, peak {record[name]['peak_rss_mib']:.0f} MiB, "
              f"load {min(loads):.1f}-{max(loads):.1f}")
    atomic_write_text(RECORD, json.dumps(record, indent=2) + "\n")
    print(f"-> {RECORD}")


if __name__ == "__main__":
    main()
