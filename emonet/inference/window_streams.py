"""Streaming readers of a timeline: decoded frames and samples in, per-window data out, memory flat.

:class:`FaceStream` turns the sampled frames of :func:`preprocessing.media.iter_frames` into
one record per frame (face embedding, tracked box in source pixels, whether a face was found);
:class:`SoundStream` holds the 16 kHz samples of :func:`preprocessing.media.iter_audio`;
:func:`window_spans` walks the windows over both (the rule is
:mod:`emonet.inference.timeline`'s).

Faces are found as extraction finds them (:func:`preprocessing.faces.crop_faces` with the
run's crop size and margin), with a detection every :func:`detection_stride` sampled frames
(at most one per :data:`DETECT_INTERVAL` s) and the boxes tracked in between; frames without
a tracked face are centre crops, as in a whole clip. Each sampled frame is tracked, cropped
and embedded once, however many windows overlap it.

Streaming. ffmpeg's video and audio pipes are read incrementally; only the frames of the
current step and of the tracking context (:data:`TRACK_CONTEXT` frames back) are held, and
per-frame records (embedding, box) only back to the current window's start, so memory stays
flat however long the video.
"""

import hashlib
import math
from collections import OrderedDict

import numpy as np

from preprocessing.constants import SAMPLE_RATE
from preprocessing.faces import crop_faces

#: Sampled frames tracked and embedded per step, rounded up to a multiple of the detection stride.
FRAMES_PER_STEP = 64

#: Face tracking context before a step, in sampled frames (``track_faces``'s default hold).
TRACK_CONTEXT = 25

#: Shortest time between two face detections, in seconds (see :func:`detection_stride`).
DETECT_INTERVAL = 2.0


def detection_stride(rate, detect_every):
    """Sampled frames from one face detection to the next: ``detect_every``, or :data:`DETECT_INTERVAL`'s worth if more.

    Detection (Haar, ~25 ms per 320 px frame) is the largest cost of a timeline. One every
    2 s is what a whole-clip prediction does on a one-minute clip (150 frames kept, a
    detection on every 5th), so a timeline costs about as much; the tracker interpolates
    the boxes in between (16 sampled frames at 8 fps).
    """
    return max(int(detect_every), math.ceil(float(rate) * DETECT_INTERVAL - 1e-9))


def frame_range(start, end, rate):
    """Indices ``[first, stop)`` of the sampled frames (frame ``j`` at ``j / rate`` s) inside ``[start, end)``."""
    return math.ceil(start * rate - 1e-6), math.ceil(end * rate - 1e-6)


class CachedDetector:
    """A face detector that remembers its answers for recently seen images (keyed by content).

    Tracking steps overlap by their context frames; this keeps each frame to one detection.
    """

    def __init__(self, detector, size=256):
        self.detector, self.size = detector, size
        self._answers = OrderedDict()

    def detect(self, image):
        key = hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest()
        if key not in self._answers:
            self._answers[key] = self.detector.detect(image)
            if len(self._answers) > self.size:
                self._answers.popitem(last=False)
        return self._answers[key]


class FaceStream:
    """Sampled frames -> one record per frame (embedding, face box in source pixels, found), step by step.

    Parameters
    ----------
    blocks : iterator of np.ndarray [shape=(n, h, w, 3), dtype=uint8]
        Frames at ``rate`` frames per second (:func:`preprocessing.media.iter_frames`).
    run : TrainedRun
    params : ExtractParams
    detector : object with ``detect(image)``
    scale : tuple of float
        Source pixels per analysed pixel (x, y).
    """

    def __init__(self, blocks, *, run, params, detector, scale, rate, keep_track=False):
        self._blocks, self._run, self._params = blocks, run, params
        self._detector = CachedDetector(detector)
        self._scale = np.array([scale[0], scale[1], scale[0], scale[1]], np.float32)
        self._every = every = detection_stride(rate, params.detect_every)
        self._step = every * math.ceil(FRAMES_PER_STEP / every)   # steps start on detection frames
        self._context = every * math.ceil(TRACK_CONTEXT / every)
        self._images, self._image_start = None, 0       # frames kept for tracking: indices image_start...
        self._records, self._record_start = None, 0     # (embedding, box, found) per frame
        self.done = 0        # frames with a record
        self.exhausted = False
        self._track = [] if keep_track else None

    @property
    def seen(self):
        """Frames decoded so far."""
        return self._image_start + (0 if self._images is None else len(self._images))

    def advance_to(self, stop):
        """Decode and process until frames ``< stop`` have records (or the video ended)."""
        while self.done < stop and not (self.exhausted and self.done >= self.seen):
            while self.seen < self.done + self._step + 1 and not self.exhausted:  # + 1: a look-ahead detection
                self._read()
            if self.seen > self.done:
                self._process(min(self.done + self._step, self.seen))

    def _read(self):
        block = next(self._blocks, None)
        if block is None:
            self.exhausted = True
        elif self._images is None:
            self._images = block
        else:
            self._images = np.concatenate([self._images, block])

    def _process(self, upto):
        """Track over the context, this step and one look-ahead frame; keep the step's frames ``[done, upto)``."""
        p = self._params
        first = max(self._image_start, self.done - self._context)
        frames = self._images[first - self._image_start:min(upto + 1, self.seen) - self._image_start]
        track = crop_faces(frames, detector=self._detector, crop_size=p.crop_size, margin=p.margin,
                           detect_every=self._every)
        part = slice(self.done - first, upto - first)
        if self._run.needs_video:
            embeddings = self._encode(track.crops[part])
        else:
            embeddings = np.zeros((upto - self.done, 0), np.float32)
        boxes = track.boxes[part] * self._scale
        self._append(embeddings, boxes, track.found[part])
        if self._track is not None:
            self._track.append(boxes)
        self.done = upto
        keep = max(self._image_start, self.done - self._context)
        self._images = self._images[keep - self._image_start:]
        self._image_start = keep

    def _encode(self, crops):
        """Embeddings (n, E) of crops (n, S, S, 3), padded to a whole step so the encoder sees one batch shape."""
        n = len(crops)
        if 0 < n < self._step:  # a new batch shape would cost the frame encoder a retrace
            crops = np.concatenate([crops, np.zeros((self._step - n, *crops.shape[1:]), crops.dtype)])
        return self._run.encode_faces(crops)[:n]

    def _append(self, embeddings, boxes, found):
        if self._records is None:
            self._records = (embeddings, boxes, found)
        else:
            self._records = tuple(np.concatenate([a, b]) for a, b in zip(self._records, (embeddings, boxes, found)))

    def frames(self, first, stop):
        """Records of frames ``[first, stop)``: embeddings (n, E), boxes (n, 4) source px, found (n,)."""
        if self._records is None:
            return np.zeros((0, 0), np.float32), np.zeros((0, 4), np.float32), np.zeros(0, bool)
        a, b = max(0, first - self._record_start), max(0, stop - self._record_start)
        return tuple(r[a:b] for r in self._records)

    def drop_before(self, index):
        """Forget the records of frames before ``index``."""
        if self._records is not None and index > self._record_start:
            cut = min(index, self.done) - self._record_start
            self._records = tuple(r[cut:] for r in self._records)
            self._record_start += cut

    def track(self):
        """All tracked boxes (n, 4) in source pixels, NaN without a face (``keep_track`` only)."""
        if not self._track:
            return np.zeros((0, 4), np.float32)
        return np.concatenate(self._track)


class SoundStream:
    """A clip's 16 kHz mono samples, read as far as asked and forgotten before the current window."""

    def __init__(self, blocks):
        self._blocks = blocks
        self._samples, self._start = np.zeros(0, np.float32), 0
        self.exhausted = False

    @property
    def seen(self):
        """Samples decoded so far."""
        return self._start + len(self._samples)

    def advance_to(self, seconds):
        """Decode until the samples reach ``seconds`` (or the audio ended)."""
        need = math.ceil(seconds * SAMPLE_RATE)
        while self.seen < need and not self.exhausted:
            block = next(self._blocks, None)
            if block is None:
                self.exhausted = True
            else:
                self._samples = np.concatenate([self._samples, block])

    def window(self, start, end):
        """Samples of ``[start, end)`` seconds, shape (n,) float32."""
        a = max(0, int(round(start * SAMPLE_RATE)) - self._start)
        b = max(0, int(round(end * SAMPLE_RATE)) - self._start)
        return self._samples[a:b]

    def drop_before(self, seconds):
        """Forget the samples before ``seconds``."""
        cut = min(len(self._samples), max(0, int(round(seconds * SAMPLE_RATE)) - self._start))
        self._samples, self._start = self._samples[cut:], self._start + cut


def window_spans(faces, sound, rate, window, hop):
    """Yield each window's ``(start, end)`` once the streams hold its data (rule: :mod:`emonet.inference.timeline`)."""
    k, previous_end = 0, None
    while True:
        start = k * hop
        end = start + window
        stop = frame_range(start, end, rate)[1] if faces else 0
        if faces:
            faces.advance_to(stop)
        if sound:
            sound.advance_to(end)
        covered = (faces is not None and faces.seen >= stop) or \
                  (sound is not None and sound.seen >= math.ceil(end * SAMPLE_RATE))
        if not covered:  # every stream ended before this window's end
            total = decoded_seconds(faces, sound, rate)
            if k and previous_end >= total - hop / 2:
                return
            end = min(end, total)
        yield start, end
        previous_end = end
        k += 1


def decoded_seconds(faces, sound, rate):
    """Seconds of footage the streams delivered so far (the longer of video and audio)."""
    return max(float(faces.seen / rate) if faces else 0.0, sound.seen / SAMPLE_RATE if sound else 0.0)
