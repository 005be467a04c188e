"""The extraction job: a manifest of clips -> the HDF5 feature store.

Clips are extracted by worker processes (local by default, or the workers of a
Dask cluster), and the calling process is the store's only writer. A clip that
fails is recorded with its one-line reason and the batch carries on; the
summary counts done, skipped (already in the store), failed and clips/s.

Examples
--------
>>> from preprocessing.datasets import build_manifest            # doctest: +SKIP
>>> manifest = build_manifest("AFEW", layout="afew")             # doctest: +SKIP
>>> summary = run_extraction(manifest, "features.h5", ExtractParams(), workers=2)  # doctest: +SKIP
"""

import concurrent.futures as cf
import contextlib
import dataclasses
import functools
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from . import audio, faces, media
from .constants import CLASSES, FPS, N_MFCC, SAMPLE_RATE
from .errors import ConfigError, EmonetError, StoreError, one_line
from .store import ClipFeatures, FeatureStore, StoreWriter, clip_key


@dataclasses.dataclass(frozen=True)
class ExtractParams:
    """Extraction settings; a store records them and refuses other ones.

    Attributes
    ----------
    analysis_side : int
        Longest side in pixels of the frames faces are detected on.
    crop_size : int
        Side in pixels of the stored square face crops (and context frames).
    margin : float
        Extra border around the detected face, as a fraction of its size per side.
    detector : str
        Face detector name (see :data:`preprocessing.faces.DETECTORS`).
    detect_every : int
        Run the detector on every n-th frame (5 = five times per second at 25 fps).
    max_frames : int
        Cap on stored frames per clip; longer clips are sampled uniformly (150 = 6 s).
    keep_frames : bool
        Also store the whole frame, resized to ``crop_size`` (context).
    n_mfcc : int
        MFCC coefficients.
    """

    analysis_side: int = 320
    crop_size: int = 64
    margin: float = 0.1
    detector: str = faces.DEFAULT_DETECTOR
    detect_every: int = 5
    max_frames: int = 150
    keep_frames: bool = False
    n_mfcc: int = N_MFCC

    def __post_init__(self):
        checks = {
            "analysis_side": self.analysis_side >= 32, "crop_size": 8 <= self.crop_size <= 512,
            "margin": 0 <= self.margin <= 2, "detect_every": self.detect_every >= 1,
            "max_frames": self.max_frames >= 1, "n_mfcc": 1 <= self.n_mfcc <= 128,
            "detector": self.detector in faces.DETECTORS,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"extraction parameter {name}: out of range; received {getattr(self, name)!r}")

    def as_dict(self):
        """Everything that decides the stored values, including the fixed rates."""
        return {**dataclasses.asdict(self), "fps": FPS, "sample_rate": SAMPLE_RATE}


def library_versions():
    """Versions of the libraries that decide extracted values (stored as provenance)."""
    import cv2
    import h5py
    import librosa
    versions = {"python": platform.python_version(), "numpy": np.__version__, "h5py": h5py.__version__,
                "librosa": librosa.__version__, "opencv": cv2.__version__}
    try:
        out = subprocess.run([media.ffmpeg_binary(), "-version"], capture_output=True, timeout=30)
        versions["ffmpeg"] = out.stdout.decode(errors="replace").split("\n", 1)[0]
    except (OSError, EmonetError) as exc:
        versions["ffmpeg"] = f"unknown ({exc})"
    return versions


def extract_clip(path, params, *, detector=None):
    """Decode one clip and compute everything the store keeps for it.

    Parameters
    ----------
    path : str or os.PathLike
    params : ExtractParams
    detector : object, optional
        A face detector from :func:`preprocessing.faces.make_detector` to reuse.

    Returns
    -------
    arrays : dict of str to np.ndarray
        faces (T,S,S,3) uint8, face_found (T,), face_boxes (T,4), frame_index (T,),
        optionally frames (T,S,S,3), audio_functionals (D,), mfcc (N, n_mfcc).
    attrs : dict
        duration, has_video, has_audio, audio_silent, face_rate, source_fps,
        width, height, rotation, n_frames.
    notes : list of str
        One-line remarks (e.g. "no audio stream: stored a silent audio vector").

    Raises
    ------
    MediaError
        The clip cannot be probed or decoded.
    """
    info = media.probe(path)
    notes = []
    size = params.crop_size
    arrays = {}
    duration = info.duration
    if info.has_video:
        frames, index = media.decode_frames_with_index(path, max_side=params.analysis_side,
                                                       max_frames=params.max_frames, info=info)
        track = faces.crop_faces(frames, detector=detector or params.detector, crop_size=size,
                                 margin=params.margin, detect_every=params.detect_every)
        arrays.update(faces=track.crops, face_found=track.found, face_boxes=track.boxes,
                      frame_index=index.astype(np.int32))
        if params.keep_frames:
            arrays["frames"] = _resize_frames(frames, size)
        n_video = int(index[-1]) + 1
        face_rate = float(track.found.mean())
        if face_rate == 0:
            notes.append("no face found in any frame: stored centre crops")
    else:
        notes.append("no video stream (audio-only file): stored audio features only")
        empty = np.zeros((0, size, size, 3), np.uint8)
        arrays.update(faces=empty, face_found=np.zeros(0, bool), face_boxes=np.zeros((0, 4), np.float32),
                      frame_index=np.zeros(0, np.int32))
        if params.keep_frames:
            arrays["frames"] = empty
        n_video, face_rate = 0, 0.0
    silent = True
    if info.has_audio:
        y = media.decode_audio(path, info=info)
        silent = audio.is_silent(y)
        if duration is None:
            duration = len(y) / SAMPLE_RATE
    else:
        y = np.zeros(0, np.float32)
        notes.append("no audio stream (video-only file): stored a silent audio vector")
    if duration is None:
        duration = n_video / FPS
    n_audio_frames = n_video or int(round(duration * FPS))
    if silent:
        if info.has_audio:
            notes.append("silent audio track: stored a silent audio vector")
        arrays["audio_functionals"] = audio.silent_functionals(n_mfcc=params.n_mfcc)
        arrays["mfcc"] = np.zeros((n_audio_frames, params.n_mfcc), np.float32)
    else:
        arrays["audio_functionals"], _ = audio.audio_functionals(y, n_mfcc=params.n_mfcc)
        arrays["mfcc"] = audio.mfcc_sequence(y, n_mfcc=params.n_mfcc, n_frames=n_audio_frames)
    attrs = {
        "duration": float(duration), "has_video": info.has_video, "has_audio": info.has_audio,
        "audio_silent": bool(silent), "face_rate": face_rate, "n_frames": int(len(arrays["faces"])),
        "source_fps": float(info.fps or 0.0), "width": info.width, "height": info.height,
        "rotation": info.rotation,
    }
    return arrays, attrs, notes


def _resize_frames(frames, size):
    """Whole frames (T,H,W,3) -> (T,size,size,3) uint8 (aspect not kept: context only)."""
    import cv2
    return np.stack([cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA) for frame in frames]) \
        if len(frames) else np.zeros((0, size, size, 3), np.uint8)


def _record_attrs(record):
    label = record.label
    return {
        "relpath": record.relpath, "source": str(record.path), "split": record.split,
        "label": label or "", "label_index": CLASSES.index(label) if label in CLASSES else -1,
        "speaker": record.speaker or "", "subject": record.subject or "",
    }


def process_record(record, params):
    """Worker entry point: extract one manifest record, never raising for bad media.

    Returns
    -------
    tuple
        ``("ok", ClipFeatures)`` or ``("failed", key, relpath, source, reason)``.
    """
    try:
        with threadpool_limits(limits=1):  # one BLAS thread per worker: workers are the parallelism
            arrays, attrs, notes = extract_clip(record.path, params, detector=_worker_detector(params.detector))
    except EmonetError as exc:  # its message already names the file
        return ("failed", clip_key(record.relpath), record.relpath, str(record.path), one_line(str(exc), 400))
    except Exception as exc:  # noqa: BLE001 - a batch survives one bad file, whatever broke
        return _failure(record, f"unexpected {type(exc).__name__}: {exc}")
    return ("ok", ClipFeatures(key=clip_key(record.relpath), arrays=arrays,
                               attrs={**attrs, **_record_attrs(record)}, notes=notes))


def _failure(record, cause):
    """The ``("failed", key, relpath, source, reason)`` result of a record, reason naming the file."""
    return ("failed", clip_key(record.relpath), record.relpath, str(record.path),
            one_line(f"{record.path}: {cause}", 400))


@functools.lru_cache(maxsize=None)
def _worker_detector(name):
    """One detector per worker process (models load once, not once per clip)."""
    return faces.make_detector(name)


@dataclasses.dataclass
class JobSummary:
    """Counts and timing of an extraction run."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list = dataclasses.field(default_factory=list)

    @property
    def clips_per_second(self):
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def line(self, out_path):
        return (f"done {self.done}, skipped {self.skipped} (already stored), failed {self.failed} "
                f"in {self.seconds:.1f} s ({self.clips_per_second:.2f} clips/s) -> {out_path}")


def run_extraction(manifest, out_path, params, *, workers=None, scheduler=None, progress=True, log=None):
    """Extract every clip of ``manifest`` not yet in the store at ``out_path``.

    Parameters
    ----------
    manifest : iterable of preprocessing.datasets.ClipRecord
    out_path : str or os.PathLike
    params : ExtractParams
    workers : int, optional
        Local worker processes (default: number of CPUs); 0 extracts in this process.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``); overrides ``workers``.
    progress : bool
        Show a progress bar on stderr.
    log : callable, optional
        Receives one-line messages (failures and notes); default prints to stderr.

    Returns
    -------
    JobSummary
    """
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    records = list(manifest)
    start = time.perf_counter()
    summary = JobSummary()
    if _all_stored(out_path, params, records):
        summary.skipped = len(records)
        summary.seconds = time.perf_counter() - start
        return summary
    with StoreWriter(out_path, params=params.as_dict(), versions=library_versions(),
                     audio_feature_names=audio.feature_names(n_mfcc=params.n_mfcc)) as writer:
        todo = [r for r in records if clip_key(r.relpath) not in writer.done]
        summary.skipped = len(records) - len(todo)
        bar = _progress_bar(len(todo), progress)

        def handle(result):
            if result[0] == "ok":
                clip = result[1]
                writer.write_clip(clip)
                summary.done += 1
                for note in clip.notes:
                    log(f"note: {clip.attrs['source']}: {note}")
            else:
                _, key, relpath, source, reason = result
                writer.write_failure(key, relpath=relpath, source=source, reason=reason)
                summary.failed += 1
                summary.failures.append((relpath, reason))
                log(f"skipping: {reason}")
            bar.update(1)

        try:
            if scheduler:
                _run_dask(todo, params, scheduler, handle)
            elif workers == 0:
                for record in todo:
                    handle(process_record(record, params))
            else:
                _run_local(todo, params, workers or os.cpu_count() or 1, handle)
        finally:
            bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def _all_stored(out_path, params, records):
    """True when the store at ``out_path`` already holds every record, built with ``params``.

    A read-only check that takes no writer lock, so several runs can share a complete store
    (two trainings started together on one store no longer refuse each other). Anything else
    (missing clips, recorded failures to retry, pending shards, other parameters) goes through
    :class:`StoreWriter`, which reports it.
    """
    path = Path(out_path)
    if not path.is_file():
        return False
    try:
        with FeatureStore(path) as store:
            if store.params != json.loads(json.dumps(params.as_dict())) or store.pending_count():
                return False
            return all(clip_key(r.relpath) in store for r in records)
    except (StoreError, OSError):
        return False


def _progress_bar(total, enabled):
    from tqdm import tqdm
    return tqdm(total=total, unit="clip", desc="extract", disable=not enabled or total == 0,
                file=sys.stderr, dynamic_ncols=True)


def _worker_init():
    """Runs in each worker: one OpenCV thread (the workers are the parallelism), and die with
    the parent (Linux), so a killed job leaves no orphans."""
    import cv2
    cv2.setNumThreads(1)
    if sys.platform.startswith("linux"):
        import ctypes
        import signal
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _run_local(records, params, workers, handle):
    """Extract in a pool of ``workers`` processes, at most 2 clips per worker in flight.

    Workers come from a fork server, not from ``fork()`` of this process: a forked
    worker would inherit the store's lock file descriptor (and TensorFlow's threads,
    if loaded) and keep the store locked after this process is killed.
    """
    context = multiprocessing.get_context("forkserver")
    queue = iter(records)
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init) as pool:
        in_flight = {}

        def submit_next():
            record = next(queue, None)
            if record is not None:
                in_flight[pool.submit(process_record, record, params)] = record
            return record is not None

        for _ in range(2 * workers):
            if not submit_next():
                break
        while in_flight:
            finished, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                record = in_flight.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - a crashed worker fails its clip, not the batch
                    result = _failure(record, f"worker crashed ({type(exc).__name__}: {exc})")
                handle(result)
                submit_next()


def _run_dask(records, params, address, handle):
    """Extract on the workers of the Dask cluster at ``address``; results come back here."""
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise ConfigError(f"--scheduler {address}: dask.distributed is not installed ({exc})") from exc
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(f"--scheduler {address}: cannot connect to the Dask scheduler ({one_line(str(exc))})") \
            from exc
    with client:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        queue = iter(records)
        futures = {}
        pending = as_completed()

        def submit_next():
            record = next(queue, None)
            if record is not None:
                future = client.submit(process_record, record, params, pure=False)
                futures[future] = record
                pending.add(future)

        for _ in range(4 * n_workers):
            submit_next()
        for future in pending:
            record = futures.pop(future)
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker fails its clip, not the batch
                result = _failure(record, f"Dask task failed ({type(exc).__name__}: {exc})")
            handle(result)
            submit_next()
