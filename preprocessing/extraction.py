"""One clip -> everything the store keeps for it: the per-clip half of extraction.

:func:`extract_clip` decodes a clip and computes its face crops, audio
functionals and MFCC sequence (a still image is a clip of one frame, see
:mod:`preprocessing.images`); :func:`extract_arrays` does the same for frames and
audio already in memory; :func:`process_record` wraps it for a worker
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
import json
import platform
import subprocess

import numpy as np

from . import audio, av_decode, defaults, faces, images, media
from .audio_augment import check_speeds, speed_functionals
from .constants import AUDIO_SUFFIXES, CLASSES, FPS, N_MFCC, SAMPLE_RATE
from .errors import ConfigError, EmonetError, one_line
from .face_corpora import read_fer2013_face
from .store import ClipFeatures, clip_key
from .threads import one_blas_thread


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
    speed_copies_without_face_only : bool
        Compute the ``audio_speeds`` copies only for clips without a face (no video, or no
        face found in any frame): prediction with a fusion model, whose voice weighs little
        when a face is there, while four copies cost about as much CPU as the rest of a clip's
        extraction (experiments/bench_voice_copies.py).
        False (the default) is not part of :meth:`as_dict`.
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
    speed_copies_without_face_only: bool = False

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
        if not self.speed_copies_without_face_only:
            del params["speed_copies_without_face_only"]
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
        One-line remarks (e.g. "no audio stream (video-only file)", "cut short: <file>: ...").

    Raises
    ------
    MediaError
        The clip cannot be probed, or too little of it decodes (see :mod:`preprocessing.media`).
    """
    if row_offset is not None:
        return images.extract_still(read_fer2013_face(path, row_offset), params, face_crop=face_crop,
                                    detector=detector)
    if images.is_image(path):
        return images.extract_still(images.read_image(path), params, face_crop=face_crop, detector=detector)
    cut_notes = []  # a file cut short keeps what decodes (see preprocessing.media); one ffmpeg for both streams
    clip = av_decode.decode_clip(path, max_side=params.analysis_side, max_frames=params.max_frames, notes=cut_notes)
    info = clip.info
    source = {"source_fps": float(info.fps or 0.0), "width": info.width, "height": info.height,
              "rotation": info.rotation}
    return _stream_features(clip.frames, clip.index, clip.audio, params, detector=detector, duration=info.duration,
                            source=source, notes=cut_notes,
                            origin="audio file" if str(path).lower().endswith(AUDIO_SUFFIXES) else "file")


def check_arrays(frames, y, *, fps=FPS, sample_rate=SAMPLE_RATE):
    """``(frames, y)`` of :func:`extract_arrays` as NumPy arrays (``y`` float32), or :class:`ConfigError`.

    The rules: at least one given; ``frames`` uint8 (T, H, W, 3) with T, H, W >= 1; ``y`` a
    non-empty 1-D float array of finite samples; ``fps`` and ``sample_rate`` numbers > 0.
    """
    if frames is None and y is None:
        raise ConfigError("frames, audio: give frames, audio or both; received neither")
    for name, value in (("fps", fps), ("sample_rate", sample_rate)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 < value < np.inf:
            raise ConfigError(f"{name}: must be a number > 0; received {value!r}")
    if frames is not None:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ConfigError(f"frames: must be RGB uint8 of shape (T, H, W, 3) (a photo: image[None]); "
                              f"received {frames.dtype} {frames.shape}")
        if min(frames.shape[:3]) < 1:
            raise ConfigError(f"frames: need at least one frame of at least 1x1 pixels; received shape {frames.shape}")
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.floating):
            raise ConfigError(f"audio: must be a mono float waveform of shape (N,) in [-1, 1] (stereo: "
                              f"audio.mean(axis=1); PCM: audio / 32768); received {y.dtype} {y.shape}")
        if not len(y):
            raise ConfigError("audio: must hold at least one sample; received shape (0,)")
        if not np.all(np.isfinite(y)):
            raise ConfigError(f"audio: must be finite; received {int(np.sum(~np.isfinite(y)))} NaN/inf samples")
        y = y.astype(np.float32)
    return frames, y


def extract_arrays(frames, y, params, *, fps=FPS, sample_rate=SAMPLE_RATE, detector=None):
    """Everything :func:`extract_clip` computes for a clip, from arrays in memory instead of a file.

    Each step mirrors the decoding of a file: the frames are resampled to :data:`FPS`
    frames per second (frame ``j`` is the last one starting before ``(j + 0.5) / 25`` s:
    the frames and count ffmpeg's ``fps`` filter gives), at most ``params.max_frames`` of them kept
    uniformly (:func:`preprocessing.media.uniform_indices`), resized to
    :func:`preprocessing.media.output_size` of ``params.analysis_side`` (OpenCV area averaging, not
    ffmpeg's bicubic: on CREMA-D 480x360 crops differ by 4 grey levels on average, boxes by < 2 px), then
    faces are tracked and cropped (:func:`preprocessing.faces.crop_faces`). The audio is
    resampled to :data:`SAMPLE_RATE` (``librosa.resample``, soxr) and summarised by
    :func:`preprocessing.audio.audio_functionals`; silent audio
    (:func:`preprocessing.audio.is_silent`) counts as no audio, as for a file. A single
    frame is a photo: one frame whatever ``fps``, processed as
    :func:`preprocessing.images.extract_still` does.

    Parameters
    ----------
    frames : np.ndarray [shape=(T, H, W, 3), dtype=uint8] or None
        RGB frames at ``fps`` frames per second (T=1 for a photo); None: audio only.
    y : np.ndarray [shape=(N,), dtype=float] or None
        Mono waveform in [-1, 1] at ``sample_rate`` Hz; None: no audio.
    params : ExtractParams
    fps : float > 0
        Frame rate of ``frames``.
    sample_rate : float > 0
        Sample rate of ``y`` in Hz.
    detector : object, optional
        A face detector from :func:`preprocessing.faces.make_detector` to reuse.

    Returns
    -------
    arrays, attrs, notes
        As :func:`extract_clip` returns them; ``source_fps``, ``width`` and ``height``
        are those of ``frames`` (0 without frames), ``rotation`` 0.

    Raises
    ------
    ConfigError
        Bad arrays or rates (:func:`check_arrays`).

    Examples
    --------
    >>> frames = np.zeros((50, 360, 480, 3), np.uint8)               # 2 s at 25 fps
    >>> arrays, attrs, notes = extract_arrays(frames, None, ExtractParams())
    >>> arrays["faces"].shape, attrs["duration"], attrs["has_audio"]
    ((50, 64, 64, 3), 2.0, False)
    """
    frames, y = check_arrays(frames, y, fps=fps, sample_rate=sample_rate)
    source = {"source_fps": 0.0, "width": 0, "height": 0, "rotation": 0}
    durations, index = [], None
    if frames is not None:
        n_total = 1 if len(frames) == 1 else max(1, int(round(len(frames) * FPS / fps)))
        index = media.uniform_indices(n_total, params.max_frames).astype(np.int32)
        shown = np.clip(np.ceil((index + 0.5) * fps / FPS).astype(np.int64) - 1, 0, len(frames) - 1)
        height, width = frames.shape[1:3]
        size = media.output_size(width, height, params.analysis_side)
        frames = np.stack([images.resize(frames[i], *size) for i in shown])
        source.update(source_fps=float(fps), width=int(width), height=int(height))
        durations.append(n_total / FPS)
    if y is not None:
        durations.append(len(y) / sample_rate)
        if sample_rate != SAMPLE_RATE:
            import librosa
            y = librosa.resample(y, orig_sr=sample_rate, target_sr=SAMPLE_RATE, res_type="soxr_hq").astype(np.float32)
    return _stream_features(frames, index, y, params, detector=detector, duration=max(durations), source=source,
                            origin="arrays")


#: Notes for a missing stream (video, audio), by where the clip came from (None: expected, no note).
_ABSENT_NOTES = {"file": ("no video stream (audio-only file)",
                          "no audio stream (video-only file)"),
                 "audio file": (None, "no audio stream"),
                 "arrays": ("no frames given (audio only)",
                            "no audio given (video only)")}


def _stream_features(frames, index, y, params, *, detector, duration, source, origin, notes=()):
    """Shared by :func:`extract_clip` and :func:`extract_arrays`: 25 fps analysis-size ``frames`` (their
    ``index`` in the 25 fps stream) and 16 kHz ``y`` (None: no such stream) -> features. ``duration`` None:
    the audio's, else the video's; ``source``: the source_fps, width, height and rotation attributes;
    ``notes``: notes so far (e.g. a file cut short)."""
    notes = list(notes)
    size = params.crop_size
    arrays = {}
    if frames is not None:
        track = faces.crop_faces(frames, detector=detector or params.detector, crop_size=size,
                                 margin=params.margin, detect_every=params.detect_every)
        arrays.update(faces=track.crops, face_found=track.found, face_boxes=track.boxes,
                      frame_index=index.astype(np.int32))
        if params.keep_frames:
            arrays["frames"] = _resize_frames(frames, size)
        n_video = int(index[-1]) + 1
        face_rate = float(track.found.mean())
        if face_rate == 0:
            notes.append("no face found in any frame: centre crops instead")
    else:
        notes += [_ABSENT_NOTES[origin][0]] if _ABSENT_NOTES[origin][0] else []
        empty = np.zeros((0, size, size, 3), np.uint8)
        arrays.update(faces=empty, face_found=np.zeros(0, bool), face_boxes=np.zeros((0, 4), np.float32),
                      frame_index=np.zeros(0, np.int32))
        if params.keep_frames:
            arrays["frames"] = empty
        n_video, face_rate = 0, 0.0
    silent = True
    has_audio = y is not None
    if has_audio:
        silent = audio.is_silent(y)
        if duration is None:
            duration = len(y) / SAMPLE_RATE
    else:
        y = np.zeros(0, np.float32)
        notes.append(_ABSENT_NOTES[origin][1])
    if duration is None:
        duration = n_video / FPS
    n_audio_frames = n_video or int(round(duration * FPS))
    if silent:
        if has_audio:
            notes.append("silent audio track: read as no audio")
        arrays["audio_functionals"] = audio.silent_functionals(n_mfcc=params.n_mfcc)
        arrays["mfcc"] = np.zeros((n_audio_frames, params.n_mfcc), np.float32)
    else:
        arrays["audio_functionals"], arrays["mfcc"] = audio.functionals_and_sequence(
            y, n_mfcc=params.n_mfcc, n_frames=n_audio_frames)
    if params.audio_speeds and not (params.speed_copies_without_face_only and face_rate > 0):
        arrays["audio_speed_functionals"] = (
            np.zeros((len(params.audio_speeds), len(arrays["audio_functionals"])), np.float32) if silent
            else speed_functionals(y, params.audio_speeds, n_mfcc=params.n_mfcc))
    attrs = {
        "duration": float(duration), "has_video": frames is not None, "has_audio": has_audio,
        "audio_silent": bool(silent), "face_rate": face_rate, "n_frames": int(len(arrays["faces"])), **source,
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
        with one_blas_thread():  # one BLAS thread per worker: workers are the parallelism
            arrays, attrs, notes = extract_clip(record.path, params, detector=faces.process_detector(params.detector),
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
