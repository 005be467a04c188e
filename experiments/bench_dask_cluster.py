"""Extraction on a real Dask cluster of separate processes, with one worker SIGKILLed mid-run.

Starts ``dask scheduler`` and two ``dask worker`` processes (1 thread each) on 127.0.0.1
over TCP, as a cluster runs, and runs ``emonet extract DATASET --scheduler tcp://...`` twice
on the same clips:

- ``healthy``: both workers to the end (clips/s of a 2-worker cluster);
- ``killed``: worker ``w1`` (its whole process tree) gets SIGKILL while it runs a clip, once
  ``--kill-at`` of the clips are done; Dask resubmits its tasks to ``w0``.

Each run's store is checked: every clip stored exactly once (``done`` printed by the job ==
clips == keys in the store, so ``duplicates`` = handled results - distinct clips = 0), no
failure recorded, the store opens and every clip's faces read.

Clips: a spread subset of ../shared/data/composite (AFEW layout) or, where that is absent,
generated ones (ffmpeg ``testsrc2`` + sine, 2 s).

Run:  .venv/bin/python experiments/bench_dask_cluster.py [--clips 120] [--kill-at 0.3]
Writes experiments/results/bench_dask_cluster.json and prints a summary.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distributed import Client

from preprocessing.datasets import build_manifest
from preprocessing.probe import ffmpeg_binary
from preprocessing.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]
COMPOSITE = REPO.parent / "shared" / "data" / "composite"
BIN = Path(sys.executable).parent
CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def corpus(folder, n_clips):
    """Copy ``n_clips`` composite clips (spread over classes and splits) into ``folder``, or generate them."""
    if COMPOSITE.is_dir():
        manifest = list(build_manifest(COMPOSITE, layout="afew"))
        step = max(1, len(manifest) // n_clips)
        for record in manifest[::step][:n_clips]:
            (folder / record.relpath).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(record.path, folder / record.relpath)
        return "composite (../shared/data/composite, 160x160 30 fps H.264 + AAC, 2.5-4 s)"
    for i in range(n_clips):
        path = folder / "Train_AFEW" / CLASSES[i % 7] / f"gen{i:04d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x160:rate=30:d=2",
                        "-f", "lavfi", "-i", f"sine=frequency={220 + 20 * i % 600}:d=2", "-c:v", "libx264",
                        "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)], check=True)
    return "generated (ffmpeg testsrc2 160x160 30 fps + sine, 2 s)"


class Cluster:
    """``dask scheduler`` + workers ``w0``, ``w1``, each in its own session (killable as a tree)."""

    def __init__(self, folder):
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.procs = {}
        self.folder = folder
        self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1],
                                  "--no-dashboard"])
        for name in ("w0", "w1"):
            self._start(name, ["worker", self.address, "--name", name, "--nthreads", "1", "--nworkers", "1",
                               "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(folder / name)])
        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=120)

    def _start(self, name, args):
        with open(self.folder / f"{name}.log", "w") as log:
            self.procs[name] = subprocess.Popen([str(BIN / "dask")] + args, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True, cwd=self.folder)

    def kill(self, name):
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()

    def close(self):
        for proc in reversed(self.procs.values()):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def run_job(dataset, out, cluster, n_clips, kill_at=None):
    """One ``emonet extract --scheduler`` run; with ``kill_at``, SIGKILL w1 when that share is done."""
    cmd = [str(BIN / "emonet"), "extract", str(dataset), "--out", str(out), "--scheduler", cluster.address,
           "--no-progress"]
    start = time.perf_counter()
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kill = None
    if kill_at is not None:
        with Client(cluster.address, timeout="30s") as client:
            while kill is None and job.poll() is None:
                victim = next((a for a, w in client.scheduler_info()["workers"].items() if w.get("name") == "w1"),
                              None)
                running = client.processing(workers=[victim]).get(victim, []) if victim else []
                done = len(list(Path(str(out) + ".pending").glob("*.h5")))
                if running and done >= kill_at * n_clips:
                    cluster.kill("w1")
                    kill = {"seconds_after_start": round(time.perf_counter() - start, 2), "clips_done": done,
                            "tasks_running_on_killed_worker": len(running)}
                else:
                    time.sleep(0.05)
    stdout, stderr = job.communicate()
    seconds = time.perf_counter() - start
    if job.returncode not in (0, 1):
        sys.exit(f"bench_dask_cluster: emonet extract failed ({job.returncode}): {stderr[-800:]}")
    line = re.search(r"done (\d+), skipped (\d+) \(already stored\), failed (\d+)", stdout)
    done, skipped, failed = map(int, line.groups())
    with FeatureStore(out) as store:
        keys = store.keys()
        for key in keys:
            store.clip(key)["faces"][()]
        failures = len(store.failures())
    return {"seconds": round(seconds, 2), "clips_per_second": round(n_clips / seconds, 2),
            "done": done, "skipped": skipped, "failed": failed, "clips_stored": len(keys),
            "distinct_clips_stored": len(set(keys)), "failures_recorded": failures,
            "duplicates": done - len(set(keys)), "store_bytes": out.stat().st_size,
            "every_clip_stored_once": done == len(set(keys)) == n_clips and failed == 0, "kill": kill}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=120)
    parser.add_argument("--kill-at", type=float, default=0.3, help="share of clips done when w1 is killed")
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "bench_dask_cluster.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=REPO.parent if os.access(REPO.parent, os.W_OK) else None) as tmp:
        tmp = Path(tmp)
        (tmp / "data").mkdir()
        source = corpus(tmp / "data", args.clips)
        n_clips = len(list(build_manifest(tmp / "data", layout="afew")))
        (tmp / "dask").mkdir()
        cluster = Cluster(tmp / "dask")
        try:
            with Client(cluster.address, timeout="30s") as client:
                worker_ffmpeg = sorted(set(client.run(ffmpeg_binary).values()))
            healthy = run_job(tmp / "data", tmp / "healthy.h5", cluster, n_clips)
            killed = run_job(tmp / "data", tmp / "killed.h5", cluster, n_clips, kill_at=args.kill_at)
        finally:
            cluster.close()
    version = subprocess.run([worker_ffmpeg[0], "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    result = {"clips": n_clips, "corpus": source, "cluster": "dask scheduler + 2 dask worker processes "
              "(--nthreads 1, nanny) on 127.0.0.1 over TCP", "cpus": os.cpu_count(),
              "ffmpeg": {"path": worker_ffmpeg, "version": version}, "healthy": healthy, "killed_worker": killed}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{n_clips} clips, {source}; ffmpeg on the workers: {', '.join(worker_ffmpeg)} ({version})")
    for name, run in (("healthy", healthy), ("w1 killed", killed)):
        print(f"{name:10s} {run['clips_per_second']:6.2f} clips/s in {run['seconds']:6.1f} s; done {run['done']}, "
              f"stored {run['clips_stored']}, failed {run['failed']}, duplicates {run['duplicates']}")
    if killed["kill"]:
        print(f"w1 SIGKILLed {killed['kill']['seconds_after_start']} s after the start, "
              f"with {killed['kill']['clips_done']} clips done and {killed['kill']['tasks_running_on_killed_worker']} "
              f"running on it")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
