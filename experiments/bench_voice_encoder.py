"""The voice encoder on long utterances: time and memory of one pass against blocks of 10 s.

:func:`preprocessing.audio_voice_encoder.voice_encoder_statistics` reads an utterance
``BLOCK_FRAMES`` frames (10 s) at a time, each block continuing from the state the last ended in,
and keeps running sums instead of every hidden state. ``one pass`` sets ``BLOCK_FRAMES`` to the
utterance's length: the whole sequence at once, as session 14's code ran it (its input projections
and three layers of hidden states held together). Each measurement is a fresh process on a
synthetic signal (a 220 Hz tone, amplitude-modulated at 0.5 Hz, plus noise; 16 kHz), one BLAS
thread, as an extraction worker runs it; the peak RSS is counted from just before the call (the
signal and the libraries already loaded).

Run:   .venv/bin/python experiments/bench_voice_encoder.py [--minutes 1 5 30]
Writes experiments/results/bench_voice_encoder.json and prints a table. Measures only.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emonet.experiment.rundir import git_commit  # noqa: E402
from preprocessing.audio_voice_encoder import BLOCK_FRAMES  # noqa: E402
from preprocessing.files import atomic_write_text  # noqa: E402

PROBE = """
import json, resource, sys, time
import numpy as np
import preprocessing.audio_voice_encoder as encoder
minutes, one_pass = float(sys.argv[1]), sys.argv[2] == "one pass"
t = np.arange(int(16000 * 60 * minutes)) / 16000
noise = np.random.default_rng(0).standard_normal(len(t))
y = (0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(np.pi * t)) + 0.01 * noise).astype(np.float32)
del t, noise
encoder.voice_encoder_statistics(y[:16000])
if one_pass:
    encoder.BLOCK_FRAMES = len(y) // encoder.MEL_HOP + 1
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.perf_counter()
values = encoder.voice_encoder_statistics(y)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mib": round(peak), "rss_before_mib": round(before),
                  "added_mib": round(peak - before), "values": values.tolist()}))
"""


def measure(minutes, mode):
    """One fresh process: {"seconds", "peak_rss_mib", "rss_before_mib", "added_mib", "values"}."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE, str(minutes), mode], capture_output=True, text=True,
                          cwd=REPO, env=env, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0, 30.0])
    args = parser.parse_args()
    rows = []
    for minutes in args.minutes:
        results = {mode: measure(minutes, mode) for mode in ("one pass", "blocks")}
        difference = float(np.max(np.abs(np.subtract(results["one pass"].pop("values"),
                                                     results["blocks"].pop("values")))))
        rows.append({"minutes": minutes, **results, "max_abs_difference": difference})
        print(f"{minutes:5.1f} min: one pass {results['one pass']['seconds']:6.1f} s +"
              f"{results['one pass']['added_mib']:5d} MiB | blocks {results['blocks']['seconds']:6.1f} s +"
              f"{results['blocks']['added_mib']:5d} MiB | values differ by at most {difference:.1e}", flush=True)
    record = {"what": __doc__.splitlines()[0], "commit": git_commit(), "block_frames": BLOCK_FRAMES,
              "machine": {"cpu_count": os.cpu_count(), "load_average_before": [round(x, 2) for x in os.getloadavg()]},
              "rows": rows}
    target = REPO / "experiments" / "results" / "bench_voice_encoder.json"
    atomic_write_text(target, json.dumps(record, indent=2) + "\n")
    print(f"-> {target}")


if __name__ == "__main__":
    main()
