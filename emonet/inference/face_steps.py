"""The video producer of a timeline: sampled frames in, steps of tracked face crops out.

:func:`video_steps` turns the sampled frames of :func:`preprocessing.media.iter_frames` into
steps of face records (crops, the tracked box in source pixels, whether a face was found). It
needs no model, so it runs in a helper process (:mod:`emonet.inference.workers`) or, with
``workers=0``, in the process holding the model; :class:`emonet.inference.window_streams.FaceStream`
embeds its crops there.

Faces are found as extraction finds them (the tracker of :func:`preprocessing.faces.crop_faces`
with the run's crop size and margin), with a detection every :func:`detection_stride` sampled
frames (at most one per :data:`DETECT_INTERVAL` s) and the boxes tracked in between; frames
without a tracked face are centre crops, as in a whole clip. Each step is tracked with the
frames of the previous :data:`TRACK_HOLD` s as context, and :class:`CachedDetector` keeps each
frame's first answer, so a frame is searched once and the guided search follows the face along
the whole video (a full search at the start and after losing the face, as in extraction). The
numerical work runs with one OpenCV and one BLAS thread (:func:`one_thread`).

Memory: the producer holds only the frames of the current step, its context and one look-ahead
frame, however long the video, in one array allocated once and filled a frame at a time (81 frames
of 320 x 240, 18 MiB, at 4 fps). Reading 64-frame blocks (15 MiB each) and concatenating them to
the context (33 MiB) per step had kept ~80 MiB alive at once, and glibc's heap, whose mmap threshold
rises to the largest block freed, kept ~185 MiB resident in the video helper from the second minute
of a video on (~115 MiB on a 1-minute one); now 85 MiB (``experiments/bench_timeline.py``).
"""

import contextlib
import dataclasses
import hashlib
import math
from collections import OrderedDict

import numpy as np

from preprocessing import media
from preprocessing.faces import centre_box, process_detector, square_crop
from preprocessing.threads import one_blas_thread
from preprocessing.tracking import track_faces

#: Sampled frames tracked and embedded per step, rounded up to a multiple of the detection stride.
FRAMES_PER_STEP = 64

#: Seconds a tracked box is held before the first and after the last detection that found a face
#: (``track_faces``' ``max_gap``, :func:`track_hold`); also the tracking context kept before a step.
TRACK_HOLD = 3.0

#: Shortest time between two face detections, in seconds (see :func:`detection_stride`).
DETECT_INTERVAL = 2.0


def detection_stride(rate, detect_every):
    """Sampled frames from one face detection to the next: ``detect_every``, or :data:`DETECT_INTERVAL`'s worth if more.

    Detection is the dearest step per frame (Haar on a 320 px frame: ~30 ms searching the
    whole frame, ~5 ms guided near the previous box). One every 2 s is what a whole-clip
    prediction does on a one-minute clip (150 frames kept, a detection on every 5th), so a
    timeline costs about as much; the tracker interpolates the boxes in between (8 sampled
    frames at 4 fps).
    """
    return max(int(detect_every), math.ceil(float(rate) * DETECT_INTERVAL - 1e-9))


def track_hold(rate, detect_every):
    """Sampled frames a box is held (:data:`TRACK_HOLD` s), at least one detection stride (:func:`detection_stride`)."""
    return max(detection_stride(rate, detect_every), round(float(rate) * TRACK_HOLD))


def step_frames(rate, detect_every):
    """Sampled frames per step of :func:`video_steps`: :data:`FRAMES_PER_STEP` rounded up to whole detection strides."""
    every = detection_stride(rate, detect_every)
    return every * math.ceil(FRAMES_PER_STEP / every)


@dataclasses.dataclass(frozen=True)
class FaceParams:
    """What :func:`video_steps` reads of the extraction settings (``ExtractParams``' fields of the same names).

    Attributes
    ----------
    crop_size : int
        Side of a face crop in pixels.
    margin : float
        Border around the face box, as a fraction of its side.
    detect_every : int
        Frames between two face detections at least (:func:`detection_stride`).
    detector : str
        Face detector name (``preprocessing.faces.make_detector``).
    """

    crop_size: int
    margin: float
    detect_every: int
    detector: str

    @classmethod
    def of(cls, params):
        """The fields of an ``ExtractParams`` (or anything with them)."""
        return cls(params.crop_size, params.margin, params.detect_every, params.detector)


class CachedDetector:
    """A face detector that answers once per image (keyed by content), whichever search is asked.

    Tracking steps overlap by their context frames, and each step's tracking starts over
    with a full search on its first frame. Here a frame already searched keeps its first
    answer: a face found by either search (full or guided near a box) is that frame's face
    for every later query, so a frame is searched once however many steps cover it, and
    the overlapping steps agree on its box. A search that found nothing is remembered per
    kind (a guided miss still lets the tracker try the full search once).
    """

    def __init__(self, detector, size=256):
        self.detector, self.size = detector, size
        self._answers = OrderedDict()   # image key -> {"face": box} or {"full": None, "near": None}
        if hasattr(detector, "detect_near"):  # guided re-detection near a previous box, when the detector has it
            self.detect_near = self._detect_near

    def _answer(self, image, kind, search):
        key = hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest()
        known = self._answers.get(key)
        if known is None:
            known = self._answers[key] = {}
            if len(self._answers) > self.size:
                self._answers.popitem(last=False)
        if "face" in known:
            return known["face"]
        if kind not in known:
            box = search()
            if box is not None:
                known.clear()
                known["face"] = box
                return box
            known[kind] = None
        return None

    def detect(self, image):
        """The face box ``(x0, y0, x1, y1)`` (or None) on ``image`` (H, W, 3) uint8: the remembered one, or a full search."""
        return self._answer(image, "full", lambda: self.detector.detect(image))

    def _detect_near(self, image, box):
        """The remembered face of ``image``, or the detector's guided search near ``box`` (4,)."""
        return self._answer(image, "near", lambda: self.detector.detect_near(image, box))


def video_steps(path, *, rate, size, scale, params, info=None, detector=None):
    """Face records of a video's sampled frames, one step (:func:`step_frames` frames) at a time.

    Parameters
    ----------
    path : str or os.PathLike
    rate : fractions.Fraction
        Sampled frames per second (frame ``j`` shows time ``j / rate`` s).
    size : tuple of int
        Analysed frame size (width, height) in pixels.
    scale : tuple of float
        Source pixels per analysed pixel (x, y).
    params : FaceParams or preprocessing.extraction.ExtractParams
        ``crop_size``, ``margin``, ``detect_every``, ``detector`` (a helper is sent
        :class:`FaceParams`, so it need not import the extraction module to read them).
    info : MediaInfo, optional
    detector : object with ``detect(image)``, optional
        Default: this process's detector for ``params.detector``.

    Yields
    ------
    crops : np.ndarray [shape=(n, S, S, 3), dtype=uint8]
        Face crops (centre crops where no face is tracked), ``S = params.crop_size``.
    boxes : np.ndarray [shape=(n, 4), dtype=float32]
        Tracked box ``(x0, y0, x1, y1)`` in source pixels, NaN without a face.
    found : np.ndarray [shape=(n,), dtype=bool]
    """
    every = detection_stride(rate, params.detect_every)
    hold = track_hold(rate, params.detect_every)
    step, context = step_frames(rate, params.detect_every), every * math.ceil(hold / every)
    detector = CachedDetector(detector if detector is not None else process_detector(params.detector))
    factors = np.array([scale[0], scale[1], scale[0], scale[1]], np.float32)
    frames = media.iter_frames(path, fps=rate, size=size, block=1, info=info)
    held, held_start, seen, done, exhausted = None, 0, 0, 0, False   # frames kept: indices held_start...seen
    try:
        while True:
            while seen < done + step + 1 and not exhausted:  # + 1: a look-ahead detection
                frame = next(frames, None)
                if frame is None:
                    exhausted = True
                    break
                if held is None:  # allocated once: the context, a step and the look-ahead frame
                    held = np.empty((context + step + 1, *frame.shape[1:]), np.uint8)
                held[seen - held_start] = frame[0]
                seen += 1
            if seen <= done:
                return
            # track over the context, this step and one look-ahead frame; keep the step's frames [done, upto)
            upto = min(done + step, seen)
            first = max(held_start, done - context)
            tracked = held[first - held_start:min(upto + 1, seen) - held_start]
            with one_thread():
                boxes, found = track_faces(tracked, detector=detector, detect_every=every, max_gap=hold)
                part = slice(done - first, upto - first)
                crops = step_crops(tracked[part], boxes[part], found[part], params)
            yield crops, boxes[part] * factors, found[part]
            done = upto
            keep = max(held_start, done - context)
            for i in range(seen - keep):  # the context to the front, frame by frame (no overlapping copy)
                held[i] = held[keep - held_start + i]
            held_start = keep
    finally:
        frames.close()  # stops ffmpeg when the consumer stops early


def step_crops(frames, boxes, found, params):
    """Crops (n, S, S, 3) uint8 of frames (n, H, W, 3) along their tracked boxes (n, 4) analysed px, as
    :func:`preprocessing.faces.crop_faces` cuts them: the face with ``params.margin``, else the centre square."""
    crops = np.zeros((len(frames), params.crop_size, params.crop_size, 3), np.uint8)
    fallback = centre_box(*frames.shape[1:3])
    for i, frame in enumerate(frames):
        crops[i] = square_crop(frame, boxes[i] if found[i] else fallback, crop_size=params.crop_size,
                               margin=params.margin if found[i] else 0.0)
    return crops


@contextlib.contextmanager
def one_thread():
    """Run the block with one OpenCV thread and one BLAS thread, then restore the previous counts.

    A timeline's producers compute many small things (a Haar search on a 320 px frame, a 2 s
    window's functionals), for which the thread hand-offs cost more than they save; with two
    producers and the model sharing the cores, one thread each is the parallelism. Measured on
    2 cores: a 2 s window's functionals 27 -> 11 ms, the same values. The BLAS limit is
    extraction's (:func:`preprocessing.threads.one_blas_thread`, libraries listed once per process).
    """
    import cv2
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with one_blas_thread():
            yield
    finally:
        cv2.setNumThreads(threads)
