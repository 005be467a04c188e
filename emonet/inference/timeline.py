"""Per-window timelines: a video cut into windows, each classified like a short clip.

This module holds the windowing rule, the classification of each window and the clip label;
the streaming readers of frames and samples are :mod:`emonet.inference.window_streams`, the
text renderings :mod:`emonet.inference.timeline_format` (their public names are importable
from here too).

>>> from emonet.inference.timeline import predict_timeline
>>> timeline = predict_timeline("talk.mp4", window=2.0, hop=1.0)     # doctest: +SKIP
>>> timeline.rows[0]["emotion"], timeline.emotion                     # doctest: +SKIP

Windows. Window ``k`` covers ``[k * hop, k * hop + window)`` seconds, cut at the end of
the clip. Windows follow each other until one reaches the end of the clip or stops less
than half a hop before it (that short tail gets no window of its own); a clip shorter than
one window is one window.

Each window is classified from the face frames and the audio inside it, as
:func:`emonet.inference.predict.predict_clips` classifies a clip:

- Frames. The model reads ``n_frames`` (16 for emonet-base) frames per clip; a window
  samples half of that budget (:func:`window_frames`, 8 for emonet-base): the video is
  decoded at ``min(25, window_frames / window)`` frames per second (4 fps for 2 s windows).
  The frame CNN is most of a timeline's cost, and on real clips half the frames changed the
  window labels no more than sampling other frames does (docs/DESIGN.md, "Timelines").
  Overlapping windows share frames: each sampled frame is tracked, cropped and embedded
  once. Faces are tracked as in extraction, guided by the previous box along the whole
  video, with a detection every :func:`~emonet.inference.window_streams.detection_stride`
  sampled frames (at most one per 2 s) (:mod:`emonet.inference.face_steps`); frames
  without a tracked face are centre crops, as in a whole clip.
- Audio. The window's samples (16 kHz mono) give the audio functionals; a silent window
  counts as one without audio.
- Streaming. ffmpeg's video and audio pipes are read incrementally
  (:mod:`emonet.inference.window_streams`), so memory stays flat however long the video.
  Windows are classified ``batch_size`` per model call (64 by default).
- Helper processes. With ``workers > 0`` (the command line's default) the video (decoding,
  face tracking, crops) and the audio (each window's functionals) are read by two helper
  processes (:class:`~emonet.inference.window_streams.TimelineHelpers`), started before
  TensorFlow loads, while this process embeds the frames and classifies the windows; the
  output is the same as with ``workers=0`` (all in this process). Helpers are started with
  ``spawn``: a script calling this with ``workers > 0`` needs the usual
  ``if __name__ == "__main__":`` guard.

Row of a window: ``start``, ``end`` (seconds), ``emotion``, ``probabilities`` (class ->
float), the face box ``x, y, w, h`` in source pixels (the median of the tracked boxes of
the window's frames with a face; None without one) and ``face_rate`` (share of the
window's sampled frames with a face; None for a clip without video).

Clip label. The clip's probabilities are the mean of its windows' probabilities weighted
by each window's duration (``end - start``); its emotion is their top class.
"""

import dataclasses
import logging
import math
import sys
from fractions import Fraction

import numpy as np

from preprocessing import media
from preprocessing.constants import CLASSES, FPS
from preprocessing.errors import ConfigError, EmonetError, MediaError, one_line
from preprocessing.faces import make_detector

from emonet.inference.predict import check_model_dir, prediction_params
from emonet.inference.runtime import import_tensorflow
# the streaming readers and the text renderings, also importable from here as before the split
from emonet.inference.timeline_format import TEXT_FORMATS, clip_line, format_timelines  # noqa: F401
from emonet.inference.window_streams import (  # noqa: F401
    DETECT_INTERVAL, FRAMES_PER_STEP, TRACK_HOLD, FaceParams, FaceStream, SoundStream, TimelineHelpers,
    audio_windows, decoded_seconds, detection_stride, frame_range, step_frames, video_steps,
    window_audio_features, window_spans,
)
from emonet.inference.workers import check_workers

logger = logging.getLogger(__name__)

#: Window and hop (seconds) when a timeline is asked for without them (``--annotate`` alone).
DEFAULT_WINDOW, DEFAULT_HOP = 2.0, 1.0

#: Shortest hop in seconds: one frame of the 25 fps decoding.
MIN_HOP = 1.0 / FPS

#: Share of the model's frame budget (``n_frames`` per clip) that a window samples (:func:`window_frames`).
WINDOW_FRAME_SHARE = Fraction(1, 2)

#: Windows classified per model call.
WINDOWS_PER_CALL = 64

#: The rule of the clip label, recorded in the JSON output.
CLIP_RULE = "mean of the window probabilities weighted by window duration"


def check_window(window, hop):
    """``(window, hop)`` as floats if they make a timeline, else :class:`ConfigError`.

    Rules: both finite; ``window > 0``; ``1/25 <= hop <= window`` (a longer hop would leave
    parts of the clip in no window).
    """
    for name, value in (("--window", window), ("--hop", hop)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number of seconds; received {value!r}")
    if window <= 0:
        raise ConfigError(f"--window must be > 0 seconds; received {window}")
    if hop <= 0:
        raise ConfigError(f"--hop must be > 0 seconds; received {hop}")
    if hop < MIN_HOP:
        raise ConfigError(f"--hop must be >= {MIN_HOP} s (one frame at {FPS} fps); received {hop}")
    if hop > window:
        raise ConfigError(f"--hop must be <= --window (a longer hop leaves gaps); received hop {hop} > window {window}")
    return float(window), float(hop)


def window_frames(n_frames):
    """Frames sampled per window for a model that reads ``n_frames`` per clip: :data:`WINDOW_FRAME_SHARE` of them, rounded up.

    8 for emonet-base (16): the frame CNN is most of a timeline's cost, and on real clips the
    window labels from 8 frames per 2 s window agreed with those from 16 as often as two
    samplings of 16 different frames agreed with each other (module docstring).
    """
    return max(1, math.ceil(n_frames * WINDOW_FRAME_SHARE))


def sampling_rate(window, n_frames):
    """Frames per second sampled for windows of ``window`` s: ``min(25, window_frames(n_frames) / window)`` (exact fraction)."""
    return min(Fraction(FPS), Fraction(window_frames(n_frames)) / Fraction(window).limit_denominator(1000))


@dataclasses.dataclass
class Timeline:
    """The windows of one clip and the clip label aggregated from them.

    Attributes
    ----------
    clip : str
        The clip's path.
    duration : float
        Seconds of the clip that were decoded (the longer of its streams).
    window, hop : float
        Seconds.
    rows : list of dict
        One per window (module docstring).
    emotion : str
        Top class of ``probabilities``.
    probabilities : dict
        Class -> duration-weighted mean of the window probabilities (:data:`CLIP_RULE`).
    face_rate : float or None
        Duration-weighted mean of the windows' face rates.
    track_times : np.ndarray [shape=(n,), dtype=float64] or None
        Time in seconds of each sampled frame (``keep_track=True`` only).
    track_boxes : np.ndarray [shape=(n, 4), dtype=float32] or None
        Its tracked face box ``(x0, y0, x1, y1)`` in source pixels, NaN without a face.
    """

    clip: str
    duration: float
    window: float
    hop: float
    rows: list
    emotion: str
    probabilities: dict
    face_rate: float | None
    track_times: np.ndarray | None = None
    track_boxes: np.ndarray | None = None

    def to_dict(self, name=None):
        """The JSON form, probabilities flat as in ``emonet predict -f json``: clip fields, the rule of
        the clip label, and ``windows`` (one flat dict per row, the CSV's fields without ``clip`` and ``level``).

        ``name`` replaces the clip's path (the CLI passes the path relative to the clips' common folder).
        """
        windows = [{"start": r["start"], "end": r["end"], "emotion": r["emotion"], **r["probabilities"],
                    **{k: r[k] for k in ("x", "y", "w", "h", "face_rate")}} for r in self.rows]
        return {"clip": self.clip if name is None else name, "duration": round(self.duration, 3),
                "window": self.window, "hop": self.hop, "emotion": self.emotion, **self.probabilities,
                "face_rate": self.face_rate, "clip_rule": CLIP_RULE, "windows": windows}


def box_summary(boxes, found):
    """The window's face box ``(x, y, w, h)`` in whole pixels: the median of its found boxes; None without any.

    Parameters
    ----------
    boxes : np.ndarray [shape=(n, 4)]
        ``(x0, y0, x1, y1)`` per frame.
    found : np.ndarray [shape=(n,), dtype=bool]
    """
    if not found.any():
        return None
    x0, y0, x1, y1 = np.median(boxes[found], axis=0)
    return int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))


def _clip_box(box, width, height):
    """A box ``(x, y, w, h)`` cut to the source frame (or None)."""
    if box is None:
        return None
    x, y, w, h = box
    x0, y0 = min(max(0, x), width), min(max(0, y), height)
    x1, y1 = min(max(0, x + w), width), min(max(0, y + h), height)
    return x0, y0, x1 - x0, y1 - y0


def resolve_model(model, detector=None):
    """``(TrainedRun, detector)`` of a run folder, a TrainedRun, an EmotionModel or None/"emonet-base" (shipped)."""
    import_tensorflow()  # before trained_run imports Keras: TensorFlow's start-up notices held back
    from emonet.inference.trained_run import TrainedRun
    if hasattr(model, "run") and hasattr(model, "detector"):  # an emonet.inference.api.EmotionModel
        run, detector = model.run, detector or model.detector
    elif isinstance(model, TrainedRun):
        run = model
    else:
        run = TrainedRun(check_model_dir(model))
    return run, detector if detector is not None else make_detector(prediction_params(run).detector)


def predict_timeline(path, model=None, *, window=DEFAULT_WINDOW, hop=DEFAULT_HOP, batch_size=WINDOWS_PER_CALL,
                     detector=None, keep_track=False, progress=False, workers=0, helpers=None):
    """Classify each window of a video (or audio file): one row per window and a clip label.

    Parameters
    ----------
    path : str or os.PathLike
        A video or audio file (not a still image).
    model : str or os.PathLike or TrainedRun or EmotionModel, optional
        A run folder or a loaded model; default: the shipped emonet-base.
    window, hop : float
        Window length and the step between window starts, in seconds (:func:`check_window`).
    batch_size : int
        Windows per model call.
    detector : object, optional
        A face detector to reuse (default: the model's, or one for the run's ``extract.detector``).
    keep_track : bool
        Also return every sampled frame's face box (``Timeline.track_*``; for :mod:`annotate`).
    progress : bool
        Progress bar (seconds of footage) on stderr.
    workers : int
        0: decode, track faces and compute audio features in this process; more: in two
        helper processes (:class:`TimelineHelpers`, one per stream) started for this call,
        while this process embeds frames and classifies. Same output either way.
    helpers : TimelineHelpers, optional
        Helper processes already running (reused across clips; ``workers`` is then ignored).

    Returns
    -------
    Timeline

    Raises
    ------
    MediaError
        The clip cannot be probed or decoded, is a still image, or has no stream the model reads.
    ConfigError
        Bad ``window`` / ``hop`` / ``batch_size`` / ``workers``.

    Examples
    --------
    >>> t = predict_timeline("tests/data/crema_d/1001_DFA_HAP_XX.flv", window=1.0)  # doctest: +SKIP
    >>> [(r["start"], r["emotion"]) for r in t.rows]                                  # doctest: +SKIP
    """
    window, hop = check_window(window, hop)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"--batch-size must be an integer >= 1; received {batch_size!r}")
    if helpers is None and check_workers(workers) > 0:
        with TimelineHelpers() as own:
            return predict_timeline(path, model, window=window, hop=hop, batch_size=batch_size, detector=detector,
                                    keep_track=keep_track, progress=progress, helpers=own)
    from preprocessing import images  # SciPy through the audio module: not needed to start the helpers
    if images.is_image(path):
        raise MediaError(f"{path}: a still image has no timeline (classify it without --window)")
    info = media.probe(path)
    run, detector = resolve_model(model, detector)
    params = prediction_params(run)
    rate = sampling_rate(window, run.n_frames)
    faces = sound = None
    try:
        if info.has_video and (run.needs_video or keep_track):
            size = media.output_size(info.width, info.height, params.analysis_side)
            spec = dict(rate=rate, size=size, scale=(info.width / size[0], info.height / size[1]),
                        params=FaceParams.of(params), info=info)
            steps = helpers.video.stream(path, **spec) if helpers else video_steps(path, detector=detector, **spec)
            encode = run.encode_faces if run.needs_video else (lambda crops: np.zeros((len(crops), 0), np.float32))
            faces = FaceStream(steps, encode=encode, pad_to=step_frames(rate, params.detect_every),
                               keep_track=keep_track, duration=info.duration)
        if info.has_audio and run.needs_audio:  # the speed copies only where no video stream competes for CPU
            spec = dict(window=window, hop=hop, n_mfcc=params.n_mfcc, info=info,
                        speeds=() if faces else run.test_audio_speeds)
            sound = SoundStream(helpers.audio.stream(path, **spec) if helpers else audio_windows(path, **spec),
                                n_mfcc=params.n_mfcc)
        if faces is None and sound is None:
            raise MediaError(f"{path}: nothing to classify (the {run.mode} model needs "
                             f"{'video' if run.needs_video else 'audio'})")
        rows = _classify_windows(path, run, faces, sound, rate, window, hop, info, batch_size, progress)
    finally:
        for stream in (faces, sound):
            if stream is not None:
                stream.close()
    duration = decoded_seconds(faces, sound, rate)
    timeline = summarise(str(path), rows, duration=duration, window=window, hop=hop)
    if keep_track and faces:
        timeline.track_boxes = faces.track()
        timeline.track_times = np.arange(len(timeline.track_boxes)) / float(rate)
    return timeline


def _classify_windows(path, run, faces, sound, rate, window, hop, info, batch_size, progress):
    """The rows of every window, ``batch_size`` windows per model call."""
    from tqdm import tqdm

    params = prediction_params(run)
    no_face = run.encode_faces(np.zeros((0, params.crop_size, params.crop_size, 3), np.uint8)) \
        if run.needs_video else np.zeros((0, 1), np.float32)
    rows, pending = [], []
    with tqdm(total=round(info.duration, 1) if info.duration else None, unit="s", desc="timeline",
              disable=not progress, file=sys.stderr) as bar:
        for k, start, end in window_spans(faces, sound, rate, window, hop):
            pending.append(_window_inputs(k, start, end, faces, sound, rate, info, no_face, params.n_mfcc))
            if faces:
                faces.drop_before(frame_range(start + hop, start + hop, rate)[0])
            if len(pending) >= batch_size:
                rows += _classify(run, pending, path)
            bar.update(max(0.0, round(end - bar.n, 3)))
        rows += _classify(run, pending, path)
    return rows


def _window_inputs(k, start, end, faces, sound, rate, info, no_face, n_mfcc):
    """What the model and the row need of window ``k``, ``[start, end)``; ``no_face`` is the (0, E) embedding array."""
    item = {"start": start, "end": end, "embeddings": no_face, "box": None, "face_rate": None}
    if faces:
        embeddings, boxes, found = faces.frames(*frame_range(start, end, rate))
        item["embeddings"] = embeddings if len(embeddings) else no_face
        item["box"] = _clip_box(box_summary(boxes, found), info.width, info.height)
        item["face_rate"] = float(found.mean()) if len(found) else None
    item["audio"], item["has_audio"], item["copies"] = \
        sound.features(k) if sound else window_audio_features(None, n_mfcc)
    return item


def _classify(run, pending, path):
    """Rows of the pending windows (one model call); empties ``pending``."""
    if not pending:
        return []
    proba = run.predict([p["embeddings"] for p in pending], np.stack([p["audio"] for p in pending]),
                        np.array([p["has_audio"] for p in pending]), audio_copies=[p["copies"] for p in pending])
    rows = []
    for item, row in zip(pending, proba):
        box = item["box"] or (None, None, None, None)
        rows.append({"clip": str(path), "start": round(item["start"], 3), "end": round(item["end"], 3),
                     "emotion": CLASSES[int(np.argmax(row))],
                     "probabilities": {c: float(p) for c, p in zip(CLASSES, row)},
                     "x": box[0], "y": box[1], "w": box[2], "h": box[3], "face_rate": item["face_rate"]})
    pending.clear()
    return rows


def summarise(clip, rows, *, duration, window, hop):
    """A :class:`Timeline` whose clip label is the duration-weighted mean of the rows' probabilities."""
    weights = np.array([r["end"] - r["start"] for r in rows], np.float64)
    weights = weights if weights.sum() > 0 else np.ones(len(rows))
    proba = np.array([[r["probabilities"][c] for c in CLASSES] for r in rows], np.float64).reshape(-1, len(CLASSES))
    mean = weights @ proba / weights.sum() if len(rows) else np.full(len(CLASSES), 1 / len(CLASSES))
    rates = [(w, r["face_rate"]) for w, r in zip(weights, rows) if r["face_rate"] is not None]
    face_rate = float(sum(w * f for w, f in rates) / sum(w for w, _ in rates)) if rates else None
    return Timeline(clip=clip, duration=float(duration), window=window, hop=hop, rows=rows,
                    emotion=CLASSES[int(np.argmax(mean))], probabilities={c: float(p) for c, p in zip(CLASSES, mean)},
                    face_rate=face_rate)


def predict_timelines(paths, model, *, window, hop, batch_size=WINDOWS_PER_CALL, keep_track=False, progress=True,
                      workers=None):
    """Timelines of several clips with one loaded model; a clip that fails is skipped and reported.

    ``workers`` (default :func:`~emonet.inference.workers.default_workers`): 0 reads each clip in
    this process; more starts the two :class:`TimelineHelpers` once, before the model loads,
    and reuses them for every clip.

    Returns
    -------
    timelines : list of Timeline
    failures : list of tuple (str, str)
        (path, one-line reason) of the clips skipped (logged as ``skipping <file>: <cause>``).
    """
    helpers = TimelineHelpers() if check_workers(workers) > 0 and paths else None  # starts while TF loads
    try:
        run, detector = resolve_model(model)
        timelines, failures = [], []
        for path in paths:
            try:
                timelines.append(predict_timeline(path, run, window=window, hop=hop, batch_size=batch_size,
                                                  detector=detector, keep_track=keep_track, progress=progress,
                                                  workers=0, helpers=helpers))
            except EmonetError as exc:
                reason = one_line(str(exc), 400)
                failures.append((str(path), reason))
                logger.warning(f"skipping {path}: {reason.removeprefix(f'{path}: ')}")
    finally:
        if helpers is not None:
            helpers.close()
    return timelines, failures
