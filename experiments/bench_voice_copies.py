"""What the voice's test-time speed copies cost: extraction time per clip, with and without them.

``emonet predict`` with emonet-base extracts the clip's audio functionals and, for a clip without a
face, the functionals of four speed-perturbed copies (``model.test_audio_speeds``; docs/DESIGN.md,
"Prosody, voice quality and test-time speed copies"). Measured here in one process, one OpenCV and
one BLAS thread (as a prediction helper runs), on

- ``speech``: RAVDESS utterances (audio files: no face, so copies), and
- ``footage``: composite Val_AFEW clips (a face: no copies with a fusion model),

each extracted with emonet-base's prediction settings and with the same settings without copies.
Reported: median CPU milliseconds per clip of this process over ``--repeats`` passes (ffmpeg's
decoding runs in a child process and is not counted), and the ratio.

Run:  .venv/bin/python experiments/bench_voice_copies.py [--clips 60] [--repeats 3]
Writes experiments/results/bench_voice_copies.json.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from emonet.inference.runtime import folder_prediction_params, shipped_model_dir  # noqa: E402
from preprocessing.extraction import extract_clip  # noqa: E402
from preprocessing.faces import make_detector  # noqa: E402
from preprocessing.files import atomic_write_text  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def cpu_ms_per_clip(paths, params, detector, repeats):
    """Median over ``repeats`` passes of the process CPU time per clip (ms), and how many clips got copies."""
    passes, with_copies = [], 0
    for _ in range(repeats):
        start = time.process_time()
        with_copies = sum("audio_speed_functionals" in extract_clip(p, params, detector=detector)[0] for p in paths)
        passes.append((time.process_time() - start) / len(paths) * 1000)
    return float(np.median(passes)), with_copies


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=60, help="clips per set")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import cv2
    cv2.setNumThreads(1)
    sets = {"speech": sorted((SHARED / "speech" / "ravdess").glob("*.flac"))[::18][:args.clips],
            "footage": sorted((SHARED / "composite" / "Val_AFEW").glob("*/*.mp4"))[:args.clips]}
    with_copies = folder_prediction_params(shipped_model_dir())
    without = dataclasses.replace(with_copies, audio_speeds=(), speed_copies_without_face_only=False)
    detector = make_detector(with_copies.detector)
    extract_clip(sets["footage"][0], with_copies, detector=detector)  # warm-up: imports, numba kernels
    record = {"what": __doc__.splitlines()[0], "speeds": list(with_copies.audio_speeds),
              "copies_without_face_only": with_copies.speed_copies_without_face_only, "repeats": args.repeats,
              "load_average_at_start": os.getloadavg()[0], "sets": {}}
    for name, paths in sets.items():
        plain, _ = cpu_ms_per_clip(paths, without, detector, args.repeats)
        copied, n_copies = cpu_ms_per_clip(paths, with_copies, detector, args.repeats)
        record["sets"][name] = {"clips": len(paths), "clips_with_copies": n_copies, "cpu_ms_without": round(plain, 1),
                                "cpu_ms_with": round(copied, 1), "ratio": round(copied / plain, 3)}
        print(name, record["sets"][name], flush=True)
    target = REPO / "experiments" / "results" / "bench_voice_copies.json"
    atomic_write_text(target, json.dumps(record, indent=2) + "\n")
    print(f"-> {target}")


if __name__ == "__main__":
    main()
