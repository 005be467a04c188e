"""Extraction at scale: 100, 1,000, 10,000 short clips through ``emonet extract``.

For each size N (``--sizes``) a corpus is laid out in the AFEW layout: short generated clips
(ffmpeg ``testsrc2``, ``mandelbrot``, ``smptebars``, ``rgbtestsrc``, ``life``, ``cellauto``
sources, 1-2 s, 160x120 at 30 fps, H.264 + AAC with a sine tone of varying pitch) and the six
real CREMA-D clips of tests/data (about 2% of the corpus). Generating 10,000 files one ffmpeg
call each would take longer than extracting them, so a pool of at most ``--pool`` distinct
generated clips is written once and hard-linked under N distinct paths; every path is a clip
to the job, which decodes it like any other.

The local job (``emonet extract DIR --out store.h5``, default workers = CPU count) runs as a
child process; every 0.1 s the benchmark reads /proc for the job's process tree. Reported:

- ``clips_per_second``: clips / wall seconds of the job (start-up included);
- ``writer_peak_rss_mb``: VmHWM of the calling process (the store's only writer);
  ``worker_peak_rss_mb``: VmHWM of each worker process (children of the fork server);
- ``writer_bytes_written``: write_bytes of the writer (from ``wait4``'s ru_oublock, i.e. every
  byte it dirtied: pending shards, commit copies, the final store), and ``write_amplification``
  = that / the final store size (target <= 3);
- ``store_bytes``; ``open_index_seconds``: ``FeatureStore(path)`` + ``index()`` (attributes of
  every clip) and ``h5py_keys_seconds``: ``h5py.File`` + listing the clip keys.

Targets (issue 11): peak memory flat within 10% from 100 to 10,000 clips; bytes written at
most 3x the final store.

``--writer-only`` isolates the store's writer: a child process extracts one generated clip
with the real extractor and hands N copies of its features (distinct keys) straight to a
``StoreWriter``, then prints the summary the CLI prints (``describe_store``). It measures the
writer's peak RSS, its bytes written (/proc/self/io) and the store size for N clips in
minutes where the whole job takes an hour (``writer_only`` in the record).

Run:  .venv/bin/python experiments/bench_scale.py --sizes 100 1000 [10000] [--workdir DIR]
      .venv/bin/python experiments/bench_scale.py --writer-only --sizes 100 1000 10000
Writes experiments/results/bench_scale.json (sizes already in it are kept unless rerun).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py

from preprocessing.probe import ffmpeg_binary
from preprocessing.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]
CREMA_D = REPO / "tests" / "data" / "crema_d"
CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
SOURCES = ("testsrc2=size=160x120:rate=30", "mandelbrot=size=160x120:rate=30", "smptebars=size=160x120:rate=30",
           "rgbtestsrc=size=160x120:rate=30", "life=size=160x120:rate=30:mold=10:ratio=0.5",
           "cellauto=size=160x120:rate=30:rule=110")
MB = 2**20


def make_pool(folder, n):
    """``n`` distinct generated clips (source, length 1-2 s and tone vary), written once."""
    folder.mkdir(parents=True, exist_ok=True)
    pool = []
    for i in range(n):
        path = folder / f"g{i:04d}.mp4"
        if not path.exists():
            seconds = 1.0 + (i % 11) / 10
            subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i",
                            SOURCES[i % len(SOURCES)], "-f", "lavfi", "-i",
                            f"sine=frequency={200 + 37 * i % 700}:sample_rate=44100:duration={seconds}",
                            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                            "-t", str(seconds), str(path)], check=True)
        pool.append(path)
    return pool


def lay_out(dataset, n, pool):
    """N clip paths in the AFEW layout: hard links to the pool and, every 50th, a real CREMA-D clip."""
    real = sorted(CREMA_D.glob("*.flv"))
    for i in range(n):
        source = real[(i // 50) % len(real)] if i % 50 == 0 else pool[i % len(pool)]
        target = dataset / ("Train_AFEW" if i % 5 else "Val_AFEW") / CLASSES[i % 7] / f"c{i:05d}{source.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:  # another file system: copy
            shutil.copy(source, target)


def process_tree(root):
    """{pid: ppid} of ``root`` and all its descendants (from /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    tree, frontier = {root: parents.get(root, 0)}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree[child] = pid
                frontier.append(child)
    return tree


def read_proc(pid):
    """(comm, cmdline, VmHWM bytes, write_bytes) of ``pid``, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        with open(f"/proc/{pid}/io") as f:
            io = dict(line.split(": ") for line in f.read().splitlines())
    except OSError:
        return None
    comm = re.search(r"^Name:\s*(\S+)", status, re.M).group(1)
    hwm = re.search(r"^VmHWM:\s*(\d+) kB", status, re.M)
    return comm, cmdline, int(hwm.group(1)) * 1024 if hwm else 0, int(io["write_bytes"])


def run_job(dataset, out, log):
    """Run the job and watch its process tree; returns the measured figures."""
    cmd = [str(Path(sys.executable).with_name("emonet")), "extract", str(dataset), "--out", str(out),
           "--no-progress"]
    start = time.perf_counter()
    with open(log, "w") as err:
        job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        seen = {}  # pid -> dict(role, hwm, write_bytes)
        status = rusage = None
        while status is None:
            tree = process_tree(job.pid)
            fork_servers = {p for p, pp in tree.items() if pp == job.pid and "forkserver" in _cmd(seen, p)}
            for pid, parent in tree.items():
                info = read_proc(pid)
                if info is None:
                    continue
                comm, cmdline, hwm, written = info
                role = ("writer" if pid == job.pid else "worker" if parent in fork_servers
                        else "ffmpeg" if comm.startswith("ffmpeg") else "other")
                entry = seen.setdefault(pid, {"role": role, "cmd": cmdline, "hwm": 0, "write_bytes": 0})
                entry["role"] = role if entry["role"] == "other" else entry["role"]
                entry["hwm"], entry["write_bytes"] = max(entry["hwm"], hwm), max(entry["write_bytes"], written)
            pid, status, rusage = os.wait4(job.pid, os.WNOHANG)
            status = None if pid == 0 else status
            time.sleep(0.1)
        seconds = time.perf_counter() - start
        stdout = job.stdout.read()
    job.returncode = os.waitstatus_to_exitcode(status)
    summary = re.search(r"done (\d+), skipped (\d+) \(already stored\), failed (\d+)", stdout)
    if job.returncode not in (0, 1) or summary is None:
        sys.exit(f"bench_scale: emonet extract exited {job.returncode} without a summary; see {log}")
    workers = [e for e in seen.values() if e["role"] == "worker"]
    return {
        "seconds": round(seconds, 1), "done": int(summary.group(1)), "failed": int(summary.group(3)),
        "writer_peak_rss_mb": round(max(seen[job.pid]["hwm"], 0) / MB, 1),
        "worker_peak_rss_mb": [round(w["hwm"] / MB, 1) for w in workers],
        "writer_bytes_written": rusage.ru_oublock * 512,
        "other_processes_bytes_written": sum(e["write_bytes"] for p, e in seen.items() if p != job.pid),
    }


def _cmd(seen, pid):
    if pid in seen:
        return seen[pid]["cmd"]
    info = read_proc(pid)
    return info[1] if info else ""


def measure(n, workdir, pool):
    dataset, out = workdir / f"data_{n}", workdir / f"store_{n}.h5"
    shutil.rmtree(dataset, ignore_errors=True)
    for stale in (out, Path(str(out) + ".lock")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(str(out) + ".pending", ignore_errors=True)
    lay_out(dataset, n, pool)
    row = {"clips": n, **run_job(dataset, out, workdir / f"job_{n}.log"), "load_average": os.getloadavg()}
    row["clips_per_second"] = round(n / row["seconds"], 2)
    row["store_bytes"] = out.stat().st_size
    row["write_amplification"] = round(row["writer_bytes_written"] / row["store_bytes"], 2)
    start = time.perf_counter()
    with FeatureStore(out) as store:
        rows = store.index()
    row["open_index_seconds"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    with h5py.File(out, "r") as f:
        keys = list(f["clips"].keys())
    row["h5py_keys_seconds"] = round(time.perf_counter() - start, 3)
    row["clips_stored"] = len(rows)
    assert len(keys) == len(rows) == n - row["failed"], (len(keys), len(rows), n, row["failed"])
    shutil.rmtree(dataset)
    out.unlink()
    return row


def writer_child(n, workdir):
    """In this (fresh) process: N copies of one clip's real features through StoreWriter; prints JSON."""
    import dataclasses

    from emonet.cli import describe_store
    from preprocessing import audio
    from preprocessing.datasets import build_manifest
    from preprocessing.extraction import ExtractParams, library_versions, process_record
    from preprocessing.store_writer import StoreWriter

    def status(field):
        with open("/proc/self/status") as f:
            return int(re.search(rf"^{field}:\s*(\d+) kB", f.read(), re.M).group(1)) * 1024

    def written():
        with open("/proc/self/io") as f:
            return int(dict(line.split(": ") for line in f.read().splitlines())["write_bytes"])

    lay_out(workdir / "one", 2, make_pool(workdir / "pool", 2))
    record = next(r for r in build_manifest(workdir / "one", layout="afew") if r.path.suffix == ".mp4")
    params = ExtractParams()
    clip = process_record(record, params)[1]
    out = workdir / f"writer_{n}.h5"
    for stale in (out, Path(f"{out}.lock")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(f"{out}.pending", ignore_errors=True)
    base, before = status("VmRSS"), written()
    with StoreWriter(out, params=params.as_dict(), versions=library_versions(),
                     audio_feature_names=audio.feature_names(n_mfcc=params.n_mfcc)) as writer:
        writer.expect(n)
        for i in range(n):
            writer.write_clip(dataclasses.replace(clip, key=f"c{i:05d}"))
    with FeatureStore(out) as store:
        describe_store(store)
    row = {"clips": n, "baseline_rss_mb": round(base / MB, 1), "peak_rss_mb": round(status("VmHWM") / MB, 1),
           "growth_over_baseline_mb": round((status("VmHWM") - base) / MB, 1), "bytes_written": written() - before,
           "store_bytes": out.stat().st_size}
    row["write_amplification"] = round(row["bytes_written"] / row["store_bytes"], 2)
    out.unlink()
    shutil.rmtree(workdir / "one")
    print(json.dumps(row))


def writer_only(sizes, workdir):
    rows = []
    for n in sizes:
        child = subprocess.run([sys.executable, __file__, "--writer-child", str(n), "--workdir", str(workdir)],
                               capture_output=True, text=True, check=True)
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(f"writer only, {n:6d} clips: peak {rows[-1]['peak_rss_mb']} MB (+{rows[-1]['growth_over_baseline_mb']} "
              f"MB over its baseline); written {rows[-1]['write_amplification']}x the store "
              f"({rows[-1]['store_bytes'] / MB:.0f} MB)", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--pool", type=int, default=300, help="distinct generated clips at most")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder on a real disk (default: temp)")
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "bench_scale.json")
    parser.add_argument("--writer-only", action="store_true", help="measure the store writer alone (see above)")
    parser.add_argument("--writer-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.writer_child is not None:
        return writer_child(args.writer_child, workdir)
    if args.writer_only:
        rows = writer_only(args.sizes, workdir)
        record = json.loads(args.out.read_text()) if args.out.exists() else {}
        record["writer_only"] = {"runs": rows, "peak_vs_smallest": {
            r["clips"]: round(r["peak_rss_mb"] / rows[0]["peak_rss_mb"], 3) for r in rows}}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
        return print(f"-> {args.out}")
    pool = make_pool(workdir / "pool", min(args.pool, max(args.sizes)))
    record = json.loads(args.out.read_text()) if args.out.exists() else {}
    by_size = {r["clips"]: r for r in record.get("runs", [])}
    for n in args.sizes:
        row = measure(n, workdir, pool)
        by_size[n] = row
        print(f"{n:6d} clips: {row['clips_per_second']:6.2f} clips/s; writer peak {row['writer_peak_rss_mb']} MB, "
              f"workers {row['worker_peak_rss_mb']} MB; written {row['writer_bytes_written'] / MB:.0f} MB = "
              f"{row['write_amplification']}x the store ({row['store_bytes'] / MB:.0f} MB); open+index "
              f"{row['open_index_seconds']} s", flush=True)
        runs = [by_size[k] for k in sorted(by_size)]
        base = runs[0]
        record = {
            **record, "ffmpeg": ffmpeg_binary(), "cpus": os.cpu_count(), "pool_distinct_clips": len(pool),
            "real_clips_share": 0.02, "runs": runs,
            "writer_peak_vs_smallest": {r["clips"]: round(r["writer_peak_rss_mb"] / base["writer_peak_rss_mb"], 3)
                                        for r in runs},
            "worker_peak_vs_smallest": {r["clips"]: round(max(r["worker_peak_rss_mb"]) / max(base["worker_peak_rss_mb"]),
                                                          3) for r in runs},
            "targets": {"peak_memory_flat_within": 0.10, "max_write_amplification": 3.0},
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    if args.workdir is None:
        shutil.rmtree(workdir)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
