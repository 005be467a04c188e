"""Per-window timelines on long videos: memory stays flat, speed stays near a whole-clip prediction.

What it measures, for videos of 1, 10 and 60 minutes made by looping the six bundled
CREMA-D clips (tests/data/crema_d, a real face and voice; re-encoded once to H.264
480x360 25 fps + AAC, then looped with ``ffmpeg -stream_loop``):

- ``timeline``: a fresh ``emonet predict VIDEO --window 2 --hop 1 -f csv -o FILE``
  process per size: wall time (Python and TensorFlow start-up and the model load
  included), seconds of footage per second, and the process's peak resident memory
  (``os.wait4`` rusage of that one child; ffmpeg's decoders are its own children and
  not counted);
- ``whole clip``: the same for a plain ``emonet predict VIDEO -f json`` (one answer for
  the clip) on the same video, the speed a timeline is compared with; and
  ``timeline_serial``: the timeline with ``--workers 0`` (no helper processes). On the
  compared videos (``--compare``, default the shortest) the three alternate ``--repeats``
  times (medians), as the machine's load drifts, and the entry records
  ``slowdown_vs_whole_clip`` (timeline wall time / whole clip's - 1, from the same runs);
  the other videos run the timeline once. Each run records the 1-minute load average at
  its start (``load_1min_all``): the machine is shared, so ratios of the same run are what compare.
- ``peak_tree_rss_mib``: the peak of the summed resident memory of the emonet process and
  its descendants (helper processes, ffmpeg), sampled every 0.1 s with psutil, beside the
  emonet process's own ``peak_rss_mib`` (``os.wait4``: the largest of it and its reaped children).

Flat memory means the peak RSS at 60 (or the longest) minutes is at most 10 % above the
1-minute one; the verdicts are printed and recorded, nothing is asserted. A smaller peak on a
longer video is flat too: this machine's DAMON reclaim (kdamond, "pageout" of memory idle for a
while) drops cold pages, such as TensorFlow's mapped libraries, from a process that runs longer.

Run:   .venv/bin/python experiments/bench_timeline.py [--minutes 1 10 60] [--repeats 3] [--compare 1 10]
Smoke: .venv/bin/python experiments/bench_timeline.py --minutes 1 --out /tmp/bench_timeline.json
Writes experiments/results/bench_timeline.json (with the ffmpeg binary and the git commit;
the previous record's figures, without their own "before", kept under "before") and prints a table. The videos go to a temporary folder (``--work`` to keep them).
"""

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from emonet.experiment.rundir import git_commit
from preprocessing.extraction import library_versions
from preprocessing.files import atomic_write_text
from preprocessing.media import ffmpeg_binary, probe

REPO = Path(__file__).resolve().parents[1]
CLIPS = sorted((REPO / "tests" / "data" / "crema_d").glob("*.flv"))
WINDOW, HOP = 2.0, 1.0  # seconds: the windows --annotate uses by default (each second in two windows)
SIZE = (480, 360)  # pixels: the CREMA-D clips' own size
FLAT_TOLERANCE = 0.10  # peak RSS may grow this much from the shortest to the longest video


def ffmpeg(*args):
    """Run the project's ffmpeg with ``args``; SystemExit with its stderr on failure."""
    proc = subprocess.run([ffmpeg_binary(), "-nostdin", "-v", "error", "-y", *map(str, args)],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"bench_timeline: ffmpeg failed: {proc.stderr.strip()[-300:]}")


def make_cycle(folder):
    """The six CREMA-D clips back to back (~13 s), H.264 480x360 25 fps + AAC 16 kHz mono."""
    cycle = folder / "cycle.mp4"
    inputs = [arg for clip in CLIPS for arg in ("-i", clip)]
    chains = "".join(f"[{i}:v]scale={SIZE[0]}:{SIZE[1]},fps=25,setsar=1[v{i}];[{i}:a]aresample=16000[a{i}];"
                     for i in range(len(CLIPS)))
    joined = "".join(f"[v{i}][a{i}]" for i in range(len(CLIPS)))
    ffmpeg(*inputs, "-filter_complex", f"{chains}{joined}concat=n={len(CLIPS)}:v=1:a=1[v][a]",
           "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-ac", "1", cycle)
    return cycle


def make_video(cycle, minutes, folder):
    """``minutes`` of the cycle looped, re-encoded (clean timestamps), as ``long_<minutes>min.mp4``."""
    out = folder / f"long_{minutes:g}min.mp4"
    if not out.exists():
        ffmpeg("-stream_loop", "-1", "-i", cycle, "-t", minutes * 60, "-c:v", "libx264", "-preset", "ultrafast",
               "-pix_fmt", "yuv420p", "-c:a", "aac", out)
    return out


def tree_rss_poller(pid, peak):
    """Thread body: ``peak[0]`` = the largest summed RSS (bytes) of process ``pid`` and its descendants seen."""
    import psutil
    try:
        root = psutil.Process(pid)
        while root.is_running() and root.status() != psutil.STATUS_ZOMBIE:
            total = 0
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
            peak[0] = max(peak[0], total)
            time.sleep(0.1)
    except psutil.Error:
        return


def run_measured(cmd, stdout_path):
    """Wall seconds, peak RSS (MiB) of one child process running ``cmd`` (os.wait4) and of its process tree,
    and the 1-minute load average at its start."""
    load = os.getloadavg()[0]
    with open(stdout_path, "wb") as stdout, tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr)
        peak = [0]
        poller = threading.Thread(target=tree_rss_poller, args=(proc.pid, peak), daemon=True)
        poller.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        poller.join(timeout=1)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            stderr.seek(0)
            raise SystemExit(f"bench_timeline: {' '.join(map(str, cmd[:4]))} ... exited {proc.returncode}: "
                             f"{stderr.read().decode(errors='replace').strip()[-300:]}")
    return seconds, usage.ru_maxrss / 1024, peak[0] / 2 ** 20, load  # ru_maxrss is in KiB on Linux


def emonet_command():
    """The ``emonet`` console script of the interpreter running this file."""
    script = Path(sys.executable).parent / "emonet"
    if not script.is_file():
        raise SystemExit(f"bench_timeline: {script} not found (pip install -e . into this environment)")
    return [str(script)]


def predict_command(video, out, *, kind):
    """``emonet predict`` of ``video``: a timeline as CSV into ``out`` (``timeline_serial``: ``--workers 0``),
    or one whole-clip answer as JSON."""
    extra = ["--window", str(WINDOW), "--hop", str(HOP), "-f", "csv", "-o", str(out)] if kind != "whole_clip" \
        else ["-f", "json"]
    extra += ["--workers", "0"] if kind == "timeline_serial" else []
    return emonet_command() + ["predict", str(video), "--no-progress", *extra]


def measure(video, footage, repeats, folder, *, kinds=("timeline",)):
    """Per kind ("timeline", "timeline_serial", "whole_clip"): median wall time, max peak RSS and row
    count of fresh processes.

    The runs alternate (timeline, whole clip, timeline, ...), so a change in the machine's
    load between them does not favour any.
    """
    runs = {kind: [] for kind in kinds}
    outs = {"timeline": folder / (video.stem + ".csv"), "timeline_serial": folder / (video.stem + "_serial.csv"),
            "whole_clip": folder / (video.stem + ".json")}
    for _ in range(repeats):
        for kind in kinds:
            cmd = predict_command(video, outs[kind], kind=kind)
            runs[kind].append(run_measured(cmd, outs[kind] if kind == "whole_clip" else folder / "stdout.txt"))
    result = {}
    for kind, measured in runs.items():
        seconds = statistics.median(s for s, _, _, _ in measured)
        text = outs[kind].read_text()
        result[kind] = {
            "wall_seconds": round(seconds, 2), "wall_seconds_all": [round(s, 2) for s, _, _, _ in measured],
            "load_1min_all": [round(load, 2) for _, _, _, load in measured],  # at the start of each run
            "footage_seconds_per_second": round(footage / seconds, 2),  # footage / wall time (median)
            "peak_rss_mib": round(max(r for _, r, _, _ in measured), 1),  # the emonet process (os.wait4), max of runs
            "peak_tree_rss_mib": round(max(t for _, _, t, _ in measured), 1),  # with helpers and ffmpeg, summed
            # window rows (the CSV also has one clip-label row per clip)
            "rows": sum(',window,' in line for line in text.splitlines()) if kind != "whole_clip"
            else len(json.loads(text))}
    if "timeline_serial" in result and (outs["timeline"].read_text() != outs["timeline_serial"].read_text()):
        raise SystemExit("bench_timeline: the timeline with helper processes differs from the one without")
    if "whole_clip" in result:  # wall time against the whole clip's, medians of the same alternating runs
        for kind in ("timeline", "timeline_serial"):
            result[kind]["slowdown_vs_whole_clip"] = round(
                result[kind]["wall_seconds"] / result["whole_clip"]["wall_seconds"] - 1, 4)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60], help="video lengths")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh processes per kind on the compared videos, alternating (median); others run once")
    parser.add_argument("--compare", type=float, nargs="+", default=None,
                        help="video lengths (of --minutes) also measured as a whole clip and with --workers 0 "
                             "(default: the shortest)")
    parser.add_argument("--work", type=Path, default=None, help="keep the videos in this folder")
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "bench_timeline.json")
    args = parser.parse_args()
    if args.repeats < 1 or min(args.minutes) <= 0:
        parser.error("--repeats must be >= 1 and --minutes > 0")
    compared = set(args.compare or [min(args.minutes)])
    if not compared <= set(args.minutes):
        parser.error("--compare lengths must be among --minutes")
    load_before = os.getloadavg()  # 1/5/15-min load: other work on the machine skews every figure
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_timeline_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        cycle = make_cycle(work)
        sizes = []
        for minutes in sorted(args.minutes):
            video = make_video(cycle, minutes, work)
            footage = probe(video).duration
            compare = minutes in compared  # the comparison: one answer for the same footage
            kinds = ("timeline", "whole_clip", "timeline_serial") if compare else ("timeline",)
            repeats = args.repeats if compare else 1  # longer videos: start-up noise is small beside them
            entry = {"minutes": minutes, "footage_seconds": footage, "repeats": repeats,
                     "load_average_before": [round(x, 2) for x in os.getloadavg()],
                     **measure(video, footage, repeats, work, kinds=kinds)}
            sizes.append(entry)
            print(f"{minutes:g} min: {json.dumps(entry)}", file=sys.stderr)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    first, last = sizes[0], sizes[-1]
    compare = next(entry for entry in sizes if "whole_clip" in entry)  # the shortest compared video
    rss_growth = last["timeline"]["peak_rss_mib"] / first["timeline"]["peak_rss_mib"] - 1
    tree_growth = last["timeline"]["peak_tree_rss_mib"] / first["timeline"]["peak_tree_rss_mib"] - 1
    slowdown = compare["timeline"]["slowdown_vs_whole_clip"]
    record = {
        "what": "emonet predict --window 2 --hop 1 on long looped videos: peak RSS and speed vs a whole-clip predict",
        "commit": git_commit(),
        "command": f"emonet predict VIDEO --window {WINDOW:g} --hop {HOP:g} -f csv -o FILE --no-progress",
        "videos": f"the {len(CLIPS)} CREMA-D clips of tests/data/crema_d looped, H.264 {SIZE[0]}x{SIZE[1]} 25 fps + AAC",
        "ffmpeg": {"binary": ffmpeg_binary(), "version": library_versions()["ffmpeg"]},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "load_average_before": [round(x, 2) for x in load_before],  # 1, 5, 15 min
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "sizes": sizes,
        "peak_rss_growth": round(rss_growth, 4),  # longest vs shortest video, timeline process
        "peak_rss_flat": rss_growth <= FLAT_TOLERANCE,
        "peak_tree_rss_growth": round(tree_growth, 4),  # the same for the summed process tree
        "peak_tree_rss_flat": tree_growth <= FLAT_TOLERANCE,
        # wall time on the shortest compared video, fresh processes (each compared size has its own in "sizes")
        "timeline_slowdown_vs_whole_clip": slowdown,
        "timeline_serial_slowdown_vs_whole_clip": compare["timeline_serial"]["slowdown_vs_whole_clip"],  # --workers 0
    }
    if args.out.exists():  # the figures this record replaces (their own "before" dropped: one level kept)
        previous = json.loads(args.out.read_text())
        record["before"] = {k: v for k, v in previous.items() if k != "before"}
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")

    print(f"emonet predict --window {WINDOW:g} --hop {HOP:g} on {os.cpu_count()} CPUs; load average before "
          f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; fresh process per run, start-up included")
    print(f"{'video':>8s} {'windows':>8s} {'wall s':>8s} {'footage/s':>10s} {'peak RSS MiB':>13s} {'tree MiB':>9s}")
    for entry in sizes:
        t = entry["timeline"]
        print(f"{entry['minutes']:>6g} m {t['rows']:8d} {t['wall_seconds']:8.1f} {t['footage_seconds_per_second']:10.2f} "
              f"{t['peak_rss_mib']:13.1f} {t['peak_tree_rss_mib']:9.1f}")
    for entry in sizes:
        if "whole_clip" not in entry:
            continue
        t, s, w = entry["timeline"], entry["timeline_serial"], entry["whole_clip"]
        print(f"{entry['minutes']:g} min (load {entry['load_average_before'][0]:.1f} at the start): timeline "
              f"{t['wall_seconds']:.1f} s, whole clip {w['wall_seconds']:.1f} s ({100 * t['slowdown_vs_whole_clip']:+.1f}%), "
              f"timeline --workers 0 {s['wall_seconds']:.1f} s ({100 * s['slowdown_vs_whole_clip']:+.1f}%); whole clip "
              f"peak RSS {w['peak_rss_mib']:.1f} MiB")
    print(f"peak RSS {first['minutes']:g} -> {last['minutes']:g} min: {100 * rss_growth:+.1f}% "
          f"({'flat' if record['peak_rss_flat'] else 'NOT flat'}, tolerance {100 * FLAT_TOLERANCE:.0f}%)")
    print(f"-> {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()
