"""One clip -> everything the store keeps for it: the per-clip half of extraction.

:func:`extract_clip` decodes a clip and computes its face crops, audio
functionals and MFCC sequence (a still image is a clip of one frame, see
:mod:`preprocessing.images`); :func:`process_record` wraps it for a worker
process, turning any failure into a one-line result so a batch survives one
bad file. The batch itself (worker pools, the store, the summary) is
:mod:`preprocessing.runner`.

Examples
--------
>>> arrays, attrs, notes = extract_clip("clip.mp4", ExtractParams())   # doctest: +SKIP
>>> arrays["faces"].shape, attrs["duration"]                             # doctest: +SKIP
((75, 64, 64, 3), 3.0)
"""

import dataclasses
import functools
import json
import platform
import subprocess

import numpy as np
from threadpoolctl import threadpool_limits

from . import audio, defaults, faces, images, media
from .audio_augment import check_speeds, speed_functionals
from .constants import CLASSES, FPS, N_MFCC, SAMPLE_RATE
from .errors import ConfigError, EmonetError, one_line
from .face_corpora import read_fer2013_face
from .store import ClipFeatures, clip_key


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
    audio_speeds : tuple of float
        Also store the audio functionals of the clip played at each of these speeds
        (``audio_speed_functionals`` [shape=(len(audio_speeds), D)], see
        :mod:`preprocessing.audio_augment`): training copies that sound like other
        speakers. Empty (the default): not computed, and not part of :meth:`as_dict`,
        so stores written before this setting existed keep matching.
    """

    analysis_side: int = defaults.ANALYSIS_SIDE
    crop_size: int = defaults.CROP_SIZE
    margin: float = defaults.MARGIN
    detector: str = defaults.DEFAULT_DETECTOR
    detect_every: int = defaults.DETECT_EVERY
    max_frames: int = defaults.MAX_FRAMES
    keep_frames: bool = False
    n_mfcc: int = N_MFCC
    audio_speeds: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "audio_speeds", check_speeds(self.audio_speeds, name="extraction parameter "
                                                                                     "audio_speeds"))
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
        params = {**dataclasses.asdict(self), "fps": FPS, "sample_rate": SAMPLE_RATE}
        if self.audio_speeds:
            params["audio_speeds"] = list(self.audio_speeds)  # as JSON reads it back from a store
        else:
            del params["audio_speeds"]
        return params

    def differences(self, stored):
        """Settings in which a store's recorded ``params`` differ from these.

        Parameters
        ----------
        stored : dict
            ``FeatureStore.params`` (the JSON of :meth:`as_dict` the store was built with).

        Returns
        -------
        dict
            ``{key: (stored value, value here)}``, empty when the store was built with these settings.
        """
        ours = json.loads(json.dumps(self.as_dict()))  # as the store records them: tuples become lists
        return {key: (stored.get(key), ours.get(key)) for key in sorted(set(stored) | set(ours))
                if stored.get(key) != ours.get(key)}


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


def extract_clip(path, params, *, detector=None, face_crop=False, row_offset=None):
    """Decode one clip and compute everything the store keeps for it.

    Parameters
    ----------
    path : str or os.PathLike
        A video, audio or still-image file (an image is one frame without audio:
        :func:`preprocessing.images.extract_still`), or a FER2013 CSV with ``row_offset``.
    params : ExtractParams
    detector : object, optional
        A face detector from :func:`preprocessing.faces.make_detector` to reuse.
    face_crop : bool
        The image is already the face crop (``ClipRecord.face_crop``): no detection.
    row_offset : int, optional
        Byte offset of the clip's row in the FER2013 CSV ``path`` (``ClipRecord.row_offset``).

    Returns
    -------
    arrays : dict of str to np.ndarray
        faces (T,S,S,3) uint8, face_found (T,), face_boxes (T,4), frame_index (T,),
        optionally frames (T,S,S,3), audio_functionals (D,), mfcc (N, n_mfcc), and with
        ``params.audio_speeds`` audio_speed_functionals (K, D) (zeros for a clip without audio).
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
    if row_offset is not None:
        return images.extract_still(read_fer2013_face(path, row_offset), params, face_crop=face_crop,
                                    detector=detector)
    if images.is_image(path):
        return images.extract_still(images.read_image(path), params, face_crop=face_crop, detector=detector)
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
    if params.audio_speeds:
        arrays["audio_speed_functionals"] = (
            np.zeros((len(params.audio_speeds), len(arrays["audio_functionals"])), np.float32) if silent
            else speed_functionals(y, params.audio_speeds, n_mfcc=params.n_mfcc))
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
    """Attributes of the clip group that come from its record; ``soft_label`` only when it has one."""
    label = record.label
    attrs = {
        "relpath": record.relpath, "source": str(record.path), "split": record.split,
        "label": label or "", "label_index": CLASSES.index(label) if label in CLASSES else -1,
        "speaker": record.speaker or "", "subject": record.subject or "", "face_crop": bool(record.face_crop),
    }
    if record.soft_label is not None:
        attrs["soft_label"] = np.asarray(record.soft_label, np.float32)
    return attrs


def process_record(record, params):
    """Worker entry point: extract one manifest record, never raising for bad media.

    Returns
    -------
    tuple
        ``("ok", ClipFeatures)`` or ``("failed", key, relpath, source, reason)``.
    """
    try:
        with threadpool_limits(limits=1):  # one BLAS thread per worker: workers are the parallelism
            arrays, attrs, notes = extract_clip(record.path, params, detector=_worker_detector(params.detector),
                                                face_crop=record.face_crop, row_offset=record.row_offset)
    except EmonetError as exc:  # its message already names the file
        return _failed(record, str(exc))
    except Exception as exc:  # noqa: BLE001 - a batch survives one bad file, whatever broke
        return failure_result(record, f"unexpected {type(exc).__name__}: {exc}")
    return ("ok", ClipFeatures(key=clip_key(record.relpath), arrays=arrays,
                               attrs={**attrs, **_record_attrs(record)}, notes=notes))


def failure_result(record, cause):
    """The ``("failed", key, relpath, source, reason)`` result of a record, reason naming the file."""
    return _failed(record, f"{record.path}: {cause}")


def _failed(record, reason):
    """The failure tuple of ``record`` with its one-line ``reason`` (at most 400 characters)."""
    return ("failed", clip_key(record.relpath), record.relpath, str(record.path), one_line(reason, 400))


@functools.lru_cache(maxsize=None)
def _worker_detector(name):
    """One detector per worker process (models load once, not once per clip)."""
    return faces.make_detector(name)
