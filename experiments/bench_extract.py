"""Extraction speed on the composite corpus, next to the decode-only floor.

Measures, per clip and in one run on the same clips:

- ``floor``: ffmpeg decoding the clip to the null muxer (video and audio), the
  least any extractor built on ffmpeg can cost;
- ``decode``: our frame decoding (25 fps, longest side 320 px, raw RGB pipe)
  plus 16 kHz mono audio decoding into numpy;
- ``faces``: Haar detection on every 5th frame, tracking and 64x64 crops;
- ``audio``: 1,475 audio functionals and the MFCC sequence;
- ``job``: the whole ``emonet extract`` job (2 local worker processes, HDF5
  writes included) as clips per second.

Run:  .venv/bin/python experiments/bench_extract.py [--clips 70] [--workers 2]
Writes experiments/results/extract.json and prints a table. Needs ../shared/data/composite.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from preprocessing import audio, faces, media
from preprocessing.datasets import build_manifest
from preprocessing.extraction import ExtractParams
from preprocessing.runner import run_extraction

REPO = Path(__file__).resolve().parents[1]
COMPOSITE = REPO.parent / "shared" / "data" / "composite"


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, 1000 * (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=70, help="clips measured (spread over classes and splits)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "extract.json")
    args = parser.parse_args()
    if not COMPOSITE.is_dir():
        sys.exit(f"bench_extract: {COMPOSITE} not found (development data is not in a fresh clone)")
    manifest = list(build_manifest(COMPOSITE, layout="afew"))
    step = max(1, len(manifest) // args.clips)
    records = manifest[::step][: args.clips]
    exe = media.ffmpeg_binary()
    detector = faces.make_detector("haar")
    audio.audio_functionals(np.zeros(16000, np.float32))  # warm up numba outside the timings
    rows = {"floor": [], "decode": [], "faces": [], "audio": []}
    face_rate = []
    for record in records:
        _, ms = timed(subprocess.run, [exe, "-v", "error", "-nostdin", "-i", str(record.path), "-f", "null", "-"],
                      check=True)
        rows["floor"].append(ms)
        start = time.perf_counter()
        info = media.probe(record.path)
        frames = media.decode_frames(record.path, max_side=320, max_frames=150, info=info)
        y = media.decode_audio(record.path, info=info)
        rows["decode"].append(1000 * (time.perf_counter() - start))
        crops, ms = timed(faces.crop_faces, frames, detector=detector, crop_size=64)
        rows["faces"].append(ms)
        face_rate.append(float(crops.found.mean()))
        start = time.perf_counter()
        audio.audio_functionals(y)
        audio.mfcc_sequence(y, n_frames=len(frames))
        rows["audio"].append(1000 * (time.perf_counter() - start))
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_extraction(records, Path(tmp) / "bench.h5", ExtractParams(), workers=args.workers,
                                 progress=False)
    result = {
        "clips": len(records), "workers": args.workers,
        "ms_per_clip_median": {k: round(statistics.median(v), 1) for k, v in rows.items()},
        "ms_per_clip_mean": {k: round(statistics.fmean(v), 1) for k, v in rows.items()},
        "face_found_rate": round(float(np.mean(face_rate)), 4),
        "job_clips_per_second": round(summary.clips_per_second, 2),
        "job_failed": summary.failed,
        "single_process_clips_per_second": round(1000 / sum(statistics.fmean(v) for k, v in rows.items()
                                                            if k != "floor"), 2),
        "floor_clips_per_second": round(1000 / statistics.fmean(rows["floor"]), 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(records)} composite clips (160x160 30 fps H.264 + AAC, 2.5-4 s)")
    print(f"{'stage':8s} {'median ms/clip':>15s} {'mean ms/clip':>13s}")
    for k in rows:
        print(f"{k:8s} {result['ms_per_clip_median'][k]:15.1f} {result['ms_per_clip_mean'][k]:13.1f}")
    print(f"face found in {100 * result['face_found_rate']:.1f}% of frames")
    print(f"single process: {result['single_process_clips_per_second']} clips/s; "
          f"ffmpeg decode-only floor: {result['floor_clips_per_second']} clips/s; "
          f"whole job with {args.workers} workers: {result['job_clips_per_second']} clips/s")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
