"""Extraction speed on the composite corpus, next to the decode-only floor, in one run.

Measures, per clip and in one run on the same clips (stages interleaved clip by clip, so
a change in the machine's load hits them alike):

- ``floor``: ffmpeg decoding the clip to the null muxer (video and audio, one process),
  the least any extractor built on ffmpeg can cost;
- ``probe``: ``ffmpeg -i`` reading the stream layout (one short process; a reference: extraction
  no longer runs it);
- ``decode``: frames (25 fps, longest side 320 px, scaled inside ffmpeg, raw RGB) and
  16 kHz mono audio from ONE ffmpeg process that describes the clip itself, no probe
  (:func:`preprocessing.av_decode.decode_clip`, :mod:`preprocessing.av_session`): the extraction path;
- ``decode_probed``: ``probe`` then the same one-process decode built from its answer (the path before);
- ``decode_two_processes``: a probe and one process per stream (the path before session 7,
  for comparison; the arrays are identical);
- ``faces``: Haar tracking with guided re-detection and 64x64 crops (``crop_faces``);
- ``faces_full_detection``: the tracker before (a full Haar search on every 5th frame);
- ``audio``: the 3,361 audio values (functionals and the voice encoder's statistics) and the MFCC sequence
  (:func:`preprocessing.audio.functionals_and_sequence`, as extraction computes them);
- ``job``: the whole ``emonet extract`` job (local worker processes, HDF5 writes
  included, pool start-up included) as clips per second at 1 and 2 workers.

``ratio_floor_to_job`` is floor clips/s over job clips/s (target <= 2). The record also
says which ffmpeg ran (path and version line) and the load average (2 cores shared with
other jobs: a load above 2 slows every figure). Figures before session 7 are kept under
``before``, and the main figures of the record this run replaces under ``previous``.

Run:  .venv/bin/python experiments/bench_extract.py [--clips 210] [--workers 1 2]
Writes experiments/results/extract.json and prints a table. Needs ../shared/data/composite.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from preprocessing import audio, av_decode, faces, media
from preprocessing.datasets import build_manifest
from preprocessing.extraction import ExtractParams, library_versions
from preprocessing.runner import run_extraction

REPO = Path(__file__).resolve().parents[1]
COMPOSITE = REPO.parent / "shared" / "data" / "composite"
STAGES = ("floor", "probe", "decode", "decode_probed", "decode_two_processes", "faces", "faces_full_detection",
          "audio")
#: The stages one clip goes through in extraction (the others are references).
PIPELINE = ("decode", "faces", "audio")


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, 1000 * (time.perf_counter() - start)


def stage_times(records, exe, detector):
    """ms per clip of every stage (dict of lists), and the share of frames with a tracked face."""
    rows = {k: [] for k in STAGES}
    face_rate = []
    for record in records:
        _, ms = timed(subprocess.run, [exe, "-v", "error", "-nostdin", "-i", str(record.path), "-f", "null", "-"],
                      check=True)
        rows["floor"].append(ms)
        clip, ms = timed(av_decode.decode_clip, record.path, max_side=320, max_frames=150)
        rows["decode"].append(ms)
        assert clip.processes == 1, record.path
        info, probe_ms = timed(media.probe, record.path)
        rows["probe"].append(probe_ms)
        _, ms = timed(av_decode.decode_clip, record.path, max_side=320, max_frames=150, info=info)
        rows["decode_probed"].append(probe_ms + ms)
        _, ms = timed(av_decode.decode_clip, record.path, max_side=320, max_frames=150, info=info,
                      single_process=False)
        rows["decode_two_processes"].append(probe_ms + ms)
        crops, ms = timed(faces.crop_faces, clip.frames, detector=detector, crop_size=64)
        rows["faces"].append(ms)
        face_rate.append(float(crops.found.mean()))
        _, ms = timed(faces.track_faces, clip.frames, detector=detector, guided=False)
        rows["faces_full_detection"].append(ms)
        _, ms = timed(audio.functionals_and_sequence, clip.audio, n_frames=len(clip.frames))
        rows["audio"].append(ms)
    return rows, float(np.mean(face_rate))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=210, help="clips measured (spread over classes and splits)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "extract.json")
    args = parser.parse_args()
    if not COMPOSITE.is_dir():
        sys.exit(f"bench_extract: {COMPOSITE} not found (development data is not in a fresh clone)")
    manifest = list(build_manifest(COMPOSITE, layout="afew"))
    step = max(1, len(manifest) // args.clips)
    records = manifest[::step][: args.clips]
    exe = media.ffmpeg_binary()
    import cv2
    cv2.setNumThreads(1)  # as in the job's workers
    detector = faces.make_detector("haar")
    audio.audio_functionals(np.zeros(16000, np.float32))  # warm up numba outside the timings
    load_before = os.getloadavg()
    rows, face_rate = stage_times(records, exe, detector)
    jobs = {}
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            summary = run_extraction(records, Path(tmp) / "bench.h5", ExtractParams(), workers=workers,
                                     progress=False)
        jobs[str(workers)] = {"clips_per_second": round(summary.clips_per_second, 2), "failed": summary.failed,
                              "seconds": round(summary.seconds, 1)}
    floor_cps = 1000 / statistics.fmean(rows["floor"])
    best = max(job["clips_per_second"] for job in jobs.values())
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result = {
        "what": "composite clips (160x160 30 fps H.264 + AAC, 2.5-4 s), stages interleaved per clip, then the job",
        "command": f".venv/bin/python experiments/bench_extract.py --clips {args.clips} "
                   f"--workers {' '.join(map(str, args.workers))}",
        "ffmpeg": {"path": exe, "version": library_versions()["ffmpeg"]},
        "ffmpeg_processes_per_clip": 1 if av_decode.SINGLE_PROCESS else 3,  # probe included
        "load_average_1_5_15": {"before": [round(v, 2) for v in load_before],
                                "after": [round(v, 2) for v in os.getloadavg()]},
        "cpu_count": os.cpu_count(),
        "clips": len(records),
        "ms_per_clip_median": {k: round(statistics.median(v), 1) for k, v in rows.items()},
        "ms_per_clip_mean": {k: round(statistics.fmean(v), 1) for k, v in rows.items()},
        "face_found_rate": round(face_rate, 4),
        "single_process_clips_per_second": round(1000 / sum(statistics.fmean(rows[k]) for k in PIPELINE), 2),
        "floor_clips_per_second": round(floor_cps, 2),
        "job": jobs,
        "ratio_floor_to_job": round(floor_cps / best, 2),
        "before": old.get("before", old if "job" not in old else None),
        # the main figures of the record this run replaces
        "previous": {k: old[k] for k in ("command", "load_average_1_5_15", "ms_per_clip_median",
                                         "single_process_clips_per_second", "floor_clips_per_second", "job",
                                         "ratio_floor_to_job") if k in old},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(records)} composite clips; ffmpeg {result['ffmpeg']['version']} ({exe})")
    print(f"{'stage':22s} {'median ms/clip':>15s} {'mean ms/clip':>13s}")
    for k in rows:
        print(f"{k:22s} {result['ms_per_clip_median'][k]:15.1f} {result['ms_per_clip_mean'][k]:13.1f}")
    print(f"face found in {100 * result['face_found_rate']:.1f}% of frames")
    print(f"floor {result['floor_clips_per_second']} clips/s; one process, stages summed: "
          f"{result['single_process_clips_per_second']} clips/s; "
          + "; ".join(f"job with {w} worker(s): {j['clips_per_second']} clips/s" for w, j in jobs.items())
          + f"; floor / job = {result['ratio_floor_to_job']}")
    print(f"load average before {result['load_average_1_5_15']['before']}, after {result['load_average_1_5_15']['after']}")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
