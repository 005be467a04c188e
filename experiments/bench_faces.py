"""Face detectors compared on real clips: detection rate, plausibility and ms per detection.

What it measures
----------------
For every clip in ../shared/data/real/{crema_d,mead,mead_video_only,selfrecorded} and
42 composite clips (the first 3 per class and split, Train and Val), the whole clip is
decoded at 25 fps with the longest side at most 320 px (``media.decode_frames``) and each
detector in ``faces.DETECTORS`` runs on every 5th frame (what extraction does). Per
folder and detector:

- ``detection_rate``: share of sampled frames where detect() returned a box;
- ``plausible_rate``: share of those boxes that lie inside the image (1 px tolerance),
  whose shorter side is > 10 % of the image's shorter side and whose aspect (w/h) is
  within 0.5-2;
- ``iou_with_other``: median IoU with the other detector's box on frames where both
  found one (low values would mean one of them locks onto something else);
- ``ms_per_detection``: median and mean wall time of one detect() call (models loaded
  beforehand, one process, this 2-core machine).

It also times ``faces.crop_faces`` (default detector, 64 px crops, detect every 5th
frame) on the CREMA-D clips, as ms per 100 frames.

Tracking (``--tracking``; the key ``tracking`` of the record)
--------------------------------------------------------------
The same clips, decoded as extraction decodes them (at most 150 frames), with Haar run on
*every* frame as the reference, against ``faces.track_faces`` two ways: ``full`` (a full
detection on every 5th frame, the tracker before guided re-detection) and ``guided`` (the
default: after a find, the next detections search near the previous box, downscaled;
full search when that misses). Per folder and way: ``found_where_haar_finds`` (share of
the frames where per-frame Haar finds a face that the tracker covers; target >= 99 %),
``iou_with_per_frame`` (median, mean and 10th percentile of the box IoU with per-frame
Haar on those frames), ``crop_diff_vs_full`` (mean absolute difference of the 64 px crops
from the ``full`` way, grey levels), and ms per clip of tracking (detections included).

Run:  .venv/bin/python experiments/bench_faces.py [--tracking]
Writes experiments/results/faces.json and prints a table. Needs ../shared/data (exits
with a message, status 0, when it is absent). Takes about 2-3 minutes, mostly MTCNN;
``--tracking`` runs only the tracking comparison and updates that key of the record.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from preprocessing import faces, media  # noqa: E402
from preprocessing.tracking import box_iou  # noqa: E402
from preprocessing.datasets import build_manifest  # noqa: E402

DATA = REPO.parent / "shared" / "data"
REAL_FOLDERS = ("crema_d", "mead", "mead_video_only", "selfrecorded")
COMPOSITE_PER_CLASS_AND_SPLIT = 3  # 7 classes x 2 splits x 3 = 42 clips
DETECT_EVERY = 5                   # frames; 5 detections per second at 25 fps
MAX_SIDE = 320                     # px, longest side of the decoded frames


def clip_sets():
    """Folder name -> list of clip paths."""
    sets = {name: sorted(p for p in (DATA / "real" / name).glob("*.*") if p.is_file())
            for name in REAL_FOLDERS}
    picked, seen = [], {}
    for record in build_manifest(DATA / "composite", layout="afew"):
        key = (record.split, record.label)
        if seen.get(key, 0) < COMPOSITE_PER_CLASS_AND_SPLIT:
            picked.append(record.path)
            seen[key] = seen.get(key, 0) + 1
    sets["composite"] = picked
    return sets


def plausible(box, height, width):
    """Inside the image (1 px slack), shorter side > 10 % of the image's, aspect 0.5-2."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    inside = x0 >= -1 and y0 >= -1 and x1 <= width + 1 and y1 <= height + 1
    return bool(inside and min(w, h) > 0.1 * min(height, width) and 0.5 <= w / max(h, 1e-6) <= 2.0)


def crop_speed(clips):
    """ms per 100 frames of crop_faces with the default detector, over ``clips``."""
    detector = faces.make_detector(faces.DEFAULT_DETECTOR)
    total_ms, total_frames = 0.0, 0
    for clip in clips:
        frames = media.decode_frames(clip, max_side=MAX_SIDE)
        start = time.perf_counter()
        faces.crop_faces(frames, detector=detector, crop_size=64, detect_every=DETECT_EVERY)
        total_ms += 1000 * (time.perf_counter() - start)
        total_frames += len(frames)
    return round(100 * total_ms / max(1, total_frames), 1), total_frames


def tracking_record(sets, max_frames=150):
    """Per folder: guided and full tracking against Haar on every frame (see the module docstring)."""
    detector = faces.make_detector("haar")
    out = {}
    for folder, clips in sets.items():
        stats = {way: {"found": [], "iou": [], "ms": [], "diff": []} for way in ("full", "guided")}
        n_frames = n_reference = 0
        for clip in clips:
            frames = media.decode_frames(clip, max_side=MAX_SIDE, max_frames=max_frames)
            reference = [detector.detect(frame) for frame in frames]
            has = np.array([box is not None for box in reference])
            n_frames, n_reference = n_frames + len(frames), n_reference + int(has.sum())
            crops = {}
            for way in stats:
                start = time.perf_counter()
                boxes, found = faces.track_faces(frames, detector=detector, detect_every=DETECT_EVERY,
                                                 guided=way == "guided")
                stats[way]["ms"].append(1000 * (time.perf_counter() - start))
                stats[way]["found"] += found[has].tolist()
                stats[way]["iou"] += [box_iou(boxes[i], reference[i]) if found[i] else 0.0
                                      for i in np.flatnonzero(has)]
                crops[way] = np.stack([faces.square_crop(f, b, crop_size=64, margin=0.1)
                                       for f, b, ok in zip(frames, boxes, found) if ok] or [np.zeros((64, 64, 3))])
            if crops["full"].shape == crops["guided"].shape:
                stats["guided"]["diff"].append(float(np.abs(crops["guided"].astype(float) - crops["full"]).mean()))
        out[folder] = {"clips": len(clips), "frames": n_frames, "frames_where_haar_finds": n_reference}
        for way, s in stats.items():
            iou = np.array(s["iou"])
            out[folder][way] = {
                "found_where_haar_finds": round(float(np.mean(s["found"])), 4) if s["found"] else None,
                "iou_with_per_frame_median": round(float(np.median(iou)), 3) if len(iou) else None,
                "iou_with_per_frame_mean": round(float(np.mean(iou)), 3) if len(iou) else None,
                "iou_with_per_frame_p10": round(float(np.percentile(iou, 10)), 3) if len(iou) else None,
                "ms_per_clip_mean": round(statistics.fmean(s["ms"]), 1),
            }
        out[folder]["guided"]["crop_diff_vs_full"] = round(statistics.fmean(stats["guided"]["diff"]), 2) \
            if stats["guided"]["diff"] else None
    return out


def print_tracking(tracking):
    print(f"{'folder':16s} {'frames':>6s} {'way':>6s} {'found':>7s} {'IoU med':>7s} {'IoU p10':>7s} "
          f"{'ms/clip':>8s} {'crop diff':>9s}")
    for folder, row in tracking.items():
        for way in ("full", "guided"):
            r = row[way]
            found = f"{100 * r['found_where_haar_finds']:6.2f}%" if r["found_where_haar_finds"] is not None else "      -"
            iou_med = f"{r['iou_with_per_frame_median']:7.3f}" if r["iou_with_per_frame_median"] is not None else "      -"
            iou_p10 = f"{r['iou_with_per_frame_p10']:7.3f}" if r["iou_with_per_frame_p10"] is not None else "      -"
            diff = r.get("crop_diff_vs_full")
            print(f"{folder:16s} {row['frames']:6d} {way:>6s} {found} {iou_med} {iou_p10} "
                  f"{r['ms_per_clip_mean']:8.1f} {'' if diff is None else f'{diff:9.2f}'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking", action="store_true", help="only the tracking comparison (updates its key)")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"bench_faces: {DATA} not found (development data is not in a fresh clone); skipped")
        return
    sets = clip_sets()
    out = REPO / "experiments" / "results" / "faces.json"
    tracking = tracking_record(sets)
    tracking_note = {"command": ".venv/bin/python experiments/bench_faces.py --tracking",
                     "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()], "per_folder": tracking}
    print_tracking(tracking)
    if args.tracking:
        record = json.loads(out.read_text()) if out.is_file() else {}
        record["tracking"] = tracking_note
        out.write_text(json.dumps(record, indent=2) + "\n")
        print(f"-> {out}")
        return
    detectors = {name: faces.make_detector(name) for name in faces.DETECTORS}
    warm = media.decode_frames(sets["crema_d"][0], max_side=MAX_SIDE, max_frames=1)[0]
    for detector in detectors.values():  # load models / trace TensorFlow outside the timings
        detector.detect(warm)
    results = {}
    for folder, clips in sets.items():
        stats = {name: {"found": [], "plausible": [], "ms": [], "iou": []} for name in detectors}
        n_frames = 0
        for clip in clips:
            frames = media.decode_frames(clip, max_side=MAX_SIDE)
            height, width = frames.shape[1:3]
            for frame in frames[::DETECT_EVERY]:
                n_frames += 1
                boxes = {}
                for name, detector in detectors.items():
                    start = time.perf_counter()
                    box = detector.detect(frame)
                    stats[name]["ms"].append(1000 * (time.perf_counter() - start))
                    stats[name]["found"].append(box is not None)
                    if box is not None:
                        stats[name]["plausible"].append(plausible(box, height, width))
                        boxes[name] = box
                if len(boxes) == 2:
                    a, b = boxes.values()
                    overlap = box_iou(a, b)
                    for name in detectors:
                        stats[name]["iou"].append(overlap)
        row = {}
        for name, s in stats.items():
            row[name] = {
                "clips": len(clips),
                "sampled_frames": n_frames,
                "detection_rate": round(float(np.mean(s["found"])), 4) if s["found"] else None,
                "plausible_rate": round(float(np.mean(s["plausible"])), 4) if s["plausible"] else None,
                "iou_with_other": round(statistics.median(s["iou"]), 3) if s["iou"] else None,
                "ms_per_detection_median": round(statistics.median(s["ms"]), 1) if s["ms"] else None,
                "ms_per_detection_mean": round(statistics.fmean(s["ms"]), 1) if s["ms"] else None,
            }
        results[folder] = row
    crop_ms, crop_frames = crop_speed(sets["crema_d"])
    record = {
        "what": "face detection rate, box plausibility and ms per detect() call, every 5th frame "
                "at 25 fps, longest side <= 320 px",
        "command": ".venv/bin/python experiments/bench_faces.py",
        "machine": f"{platform.machine()}, {platform.python_version()}, 2 cores, CPU only",
        "default_detector": faces.DEFAULT_DETECTOR,
        "per_folder": results,
        "crop_faces_ms_per_100_frames": {"detector": faces.DEFAULT_DETECTOR, "crop_size": 64,
                                         "clips": "real/crema_d", "frames": crop_frames,
                                         "ms": crop_ms},
    }
    record["tracking"] = tracking_note
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")

    print(f"{'folder':16s} {'clips':>5s} {'frames':>6s} {'detector':>8s} {'rate':>7s} {'plaus.':>7s} "
          f"{'IoU':>5s} {'ms med':>7s} {'ms mean':>7s}")
    for folder, row in results.items():
        for name, r in row.items():
            def pct(v):
                return f"{100 * v:6.1f}%" if v is not None else "      -"
            iou_text = f"{r['iou_with_other']:5.2f}" if r["iou_with_other"] is not None else "    -"
            print(f"{folder:16s} {r['clips']:5d} {r['sampled_frames']:6d} {name:>8s} "
                  f"{pct(r['detection_rate'])} {pct(r['plausible_rate'])} {iou_text} "
                  f"{r['ms_per_detection_median']:7.1f} {r['ms_per_detection_mean']:7.1f}")
    print(f"crop_faces ({faces.DEFAULT_DETECTOR}, 64 px): {crop_ms} ms per 100 frames "
          f"over {crop_frames} CREMA-D frames")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
