"""Face detectors compared on real clips: detection rate and milliseconds per detection.

For every clip in ../shared/data/real/* and 42 composite clips (3 per class and split),
frames are decoded at 25 fps with the longest side at 320 px and each detector runs on
every 5th frame (what extraction does). Reported per folder and detector: share of
sampled frames with a face, and ms per detect() call.

Run:  .venv/bin/python experiments/bench_faces.py
Writes experiments/results/faces.json and prints a table. Needs ../shared/data.
"""

import json
import statistics
import sys
import time
from pathlib import Path

from preprocessing import faces, media
from preprocessing.datasets import build_manifest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def clip_sets():
    sets = {name: sorted((DATA / "real" / name).glob("*.*"))
            for name in ("crema_d", "mead", "mead_video_only", "selfrecorded")}
    composite = list(build_manifest(DATA / "composite", layout="afew"))
    picked, seen = [], {}
    for record in composite:
        key = (record.split, record.label)
        if seen.get(key, 0) < 3:
            picked.append(record.path)
            seen[key] = seen.get(key, 0) + 1
    sets["composite"] = picked
    return sets


def main():
    if not DATA.is_dir():
        sys.exit(f"bench_faces: {DATA} not found (development data is not in a fresh clone)")
    results = {}
    detectors = {name: faces.make_detector(name) for name in faces.DETECTORS}
    for name, detector in detectors.items():  # load models outside the timings
        detector.detect(media.decode_frames(next(iter(clip_sets()["crema_d"])), max_frames=1)[0])
    for folder, clips in clip_sets().items():
        for name, detector in detectors.items():
            found, times = [], []
            for clip in clips:
                frames = media.decode_frames(clip, max_side=320, max_frames=150)
                for frame in frames[::5]:
                    start = time.perf_counter()
                    box = detector.detect(frame)
                    times.append(1000 * (time.perf_counter() - start))
                    found.append(box is not None)
            results.setdefault(folder, {})[name] = {
                "clips": len(clips), "frames": len(found),
                "detection_rate": round(sum(found) / max(1, len(found)), 4),
                "ms_per_detection": round(statistics.median(times), 1) if times else None,
            }
    out = REPO / "experiments" / "results" / "faces.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'folder':16s} {'clips':>5s} {'frames':>6s} " + " ".join(f"{n + ' rate':>11s} {n + ' ms':>9s}"
                                                                for n in detectors))
    for folder, row in results.items():
        first = next(iter(row.values()))
        print(f"{folder:16s} {first['clips']:5d} {first['frames']:6d} " + " ".join(
            f"{100 * row[n]['detection_rate']:10.1f}% {row[n]['ms_per_detection']:9.1f}" for n in detectors))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
