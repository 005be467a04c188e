"""Streaming readers of a timeline: decoded frames and samples in, per-window data out, memory flat.

Producers (generator functions; they need no model, so they run in a helper process of
:mod:`emonet.inference.workers` or, with ``workers=0``, in this one):

- :func:`~emonet.inference.face_steps.video_steps` (:mod:`emonet.inference.face_steps`, its
  names importable from here too) turns the sampled frames of
  :func:`preprocessing.media.iter_frames` into steps of face records: crops, the tracked box
  in source pixels and whether a face was found, per frame;
- :func:`audio_windows` reads the 16 kHz samples of :func:`preprocessing.media.iter_audio`
  and gives each window's audio functionals as soon as its samples are in (computed with
  one BLAS thread, :func:`~emonet.inference.face_steps.one_thread`: a 2 s window's
  functionals took 27 ms with two threads, 11 ms with one, same values).

Consumers (in the process holding the model): :class:`FaceStream` embeds each step's crops
(the frame encoder runs once per sampled frame, however many windows overlap it) and keeps
the records back to the current window's start; :class:`SoundStream` keeps the windows'
functionals; :func:`window_spans` walks the windows over both (the rule is
:mod:`emonet.inference.timeline`'s).

Streaming. ffmpeg's video and audio pipes are read incrementally; a producer holds only the
frames of the current step and of the tracking context, or the samples of the current window,
so memory stays flat however long the video. Both paths (helper process or not) run the same
producers and consumers: same output.
"""

import math

import numpy as np

from preprocessing import media
from preprocessing.audio_augment import speed_functionals
from preprocessing.constants import N_MFCC, SAMPLE_RATE

# the video producer, also importable from here as before it had a module of its own
from emonet.inference.face_steps import (  # noqa: F401
    DETECT_INTERVAL, FRAMES_PER_STEP, TRACK_HOLD, CachedDetector, FaceParams, detection_stride, one_thread,
    step_crops, step_frames, track_hold, video_steps,
)
from emonet.inference.workers import StreamHelper

def frame_range(start, end, rate):
    """Indices ``[first, stop)`` of the sampled frames (frame ``j`` at ``j / rate`` s) inside ``[start, end)``."""
    return math.ceil(start * rate - 1e-6), math.ceil(end * rate - 1e-6)


def sample_range(start, end):
    """Indices ``[a, b)`` of the 16 kHz samples of ``[start, end)`` seconds."""
    return int(round(start * SAMPLE_RATE)), int(round(end * SAMPLE_RATE))


def window_audio_features(y, n_mfcc, speeds=()):
    """A window's audio: functionals (D,) float32 of its samples (None: no audio), whether it has audible
    sound, and the functionals (K, D) of the samples played at each of ``speeds`` (None without speeds or
    sound; :func:`preprocessing.audio_augment.speed_functionals`)."""
    from preprocessing import audio  # SciPy and librosa: imported when first needed (the audio helper)
    if y is None or audio.is_silent(y):
        return audio.silent_functionals(n_mfcc=n_mfcc), False, None
    with one_thread():
        functionals = audio.audio_functionals(y, n_mfcc=n_mfcc)[0]
        return functionals, True, speed_functionals(y, speeds, n_mfcc=n_mfcc) if speeds else None


def warm_audio():
    """The audio helper's start-up (:class:`TimelineHelpers`): SciPy, librosa and its numba kernels, loaded by one
    second of sound's functionals while the model loads (about 1 s of CPU the first window would otherwise wait)."""
    from preprocessing import audio
    with one_thread():  # as the windows run (the thread limit's first call lists the libraries)
        audio.warm_up(N_MFCC)


def audio_windows(path, *, window, hop, n_mfcc, info=None, speeds=()):
    """Each window's audio functionals, as soon as the samples of the window are decoded.

    Window ``k`` holds the samples of ``[k * hop, k * hop + window)`` seconds (fewer at the
    end of the audio; none past it). ``speeds``: also the functionals of the window played at
    these speed factors (the run's ``model.test_audio_speeds``).

    Yields
    ------
    seen : int
        Samples decoded so far.
    ready : list of tuple
        ``(k, functionals (D,) float32, has_audio bool, copies (K, D) or None)`` of the windows completed by them;
        after the last samples, every window that starts before them.
    """
    samples, offset, seen, k = np.zeros(0, np.float32), 0, 0, 0

    def features(k):
        a, b = sample_range(k * hop, k * hop + window)
        return (k, *window_audio_features(samples[max(0, a - offset):max(0, b - offset)], n_mfcc, speeds))

    blocks = media.iter_audio(path, info=info)
    try:
        for block in blocks:
            samples, seen = np.concatenate([samples, block]), seen + len(block)
            ready = []
            while sample_range(k * hop, k * hop + window)[1] <= seen:
                ready.append(features(k))
                k += 1
            cut = min(len(samples), max(0, sample_range(k * hop, k * hop)[0] - offset))
            samples, offset = samples[cut:], offset + cut
            yield seen, ready
    finally:
        blocks.close()
    ready = []
    while sample_range(k * hop, k * hop)[0] < seen:
        ready.append(features(k))
        k += 1
    yield seen, ready


class FaceStream:
    """Face records of the sampled frames (embedding, box, found), read from :func:`video_steps` as needed.

    Parameters
    ----------
    steps : iterator
        :func:`video_steps`' items (from this process or a helper).
    encode : callable
        Crops (n, S, S, 3) uint8 -> embeddings (n, E) float32 (the run's frame encoder).
    pad_to : int
        Crops per encoder call: shorter steps are padded so the encoder sees one batch shape.
    keep_track : bool
        Keep every frame's box for :meth:`track`.
    duration : float, optional
        Seconds of video the probe announced: the video's decoded seconds
        (:func:`decoded_seconds`) stop there, as its last sampled frame stands for up to
        ``1 / rate`` s more (0.8 s in 10 s windows).
    """

    def __init__(self, steps, *, encode, pad_to, keep_track=False, duration=None):
        self._steps, self._encode_crops, self._pad_to = iter(steps), encode, pad_to
        self.duration = duration
        self._records, self._record_start = None, 0     # (embedding, box, found) per frame
        self.seen = 0        # frames with a record
        self.exhausted = False
        self._track = [] if keep_track else None

    def advance_to(self, stop):
        """Read and embed steps until frames ``< stop`` have records (or the video ended)."""
        while self.seen < stop and not self.exhausted:
            step = next(self._steps, None)
            if step is None:
                self.exhausted = True
                break
            crops, boxes, found = step
            self._append(self._encode(crops), boxes, found)
            if self._track is not None:
                self._track.append(boxes)
            self.seen += len(found)

    def _encode(self, crops):
        """Embeddings (n, E) of crops (n, S, S, 3), padded to a whole step (a new batch shape costs a retrace)."""
        n = len(crops)
        if 0 < n < self._pad_to:
            crops = np.concatenate([crops, np.zeros((self._pad_to - n, *crops.shape[1:]), crops.dtype)])
        return self._encode_crops(crops)[:n]

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
            cut = min(index, self.seen) - self._record_start
            self._records = tuple(r[cut:] for r in self._records)
            self._record_start += cut

    def close(self):
        """Stop reading: the producer (and its ffmpeg, or its helper's current task) stops."""
        if hasattr(self._steps, "close"):
            self._steps.close()

    def track(self):
        """All tracked boxes (n, 4) in source pixels, NaN without a face (``keep_track`` only)."""
        if not self._track:
            return np.zeros((0, 4), np.float32)
        return np.concatenate(self._track)


class SoundStream:
    """The windows' audio functionals, read from :func:`audio_windows` as far as asked."""

    def __init__(self, messages, *, n_mfcc):
        self._messages = iter(messages)
        self._ready = {}
        self._silent = window_audio_features(None, n_mfcc)
        self.seen = 0   # samples decoded so far
        self.exhausted = False

    def advance_to(self, seconds):
        """Read until the samples reach ``seconds`` (or the audio ended)."""
        need = math.ceil(seconds * SAMPLE_RATE)
        while self.seen < need and not self.exhausted:
            message = next(self._messages, None)
            if message is None:
                self.exhausted = True
            else:
                self.seen, ready = message
                self._ready.update((k, (f, has, copies)) for k, f, has, copies in ready)

    def close(self):
        """Stop reading: the producer (and its ffmpeg, or its helper's current task) stops."""
        if hasattr(self._messages, "close"):
            self._messages.close()

    def features(self, k):
        """Window ``k``'s functionals (D,), whether it has audible sound and its speed copies (K, D) or None (read
        once; silent past the audio)."""
        return self._ready.pop(k, self._silent)


def window_spans(faces, sound, rate, window, hop):
    """Yield each window's ``(k, start, end)`` once the streams hold its data.

    The rule is :mod:`emonet.inference.timeline`'s; ``k`` counts the windows from 0.
    """
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
        yield k, start, end
        previous_end = end
        k += 1


def decoded_seconds(faces, sound, rate):
    """Seconds of footage the streams delivered so far (the longer of video and audio; the video's at most its
    probed duration, :class:`FaceStream`)."""
    video = float(faces.seen / rate) if faces else 0.0
    if faces and faces.duration:
        video = min(video, float(faces.duration))
    return max(video, sound.seen / SAMPLE_RATE if sound else 0.0)


class TimelineHelpers:
    """Two helper processes for timelines: one reads the video (:func:`video_steps`), one the audio
    (:func:`audio_windows`), while this process embeds frames and classifies windows. Reusable
    across clips; :meth:`close` (or ``with``) stops them. The audio helper loads its libraries as it
    starts (:func:`warm_audio`), while this process loads the model."""

    def __init__(self):
        self.video = StreamHelper(video_steps)
        self.audio = StreamHelper(audio_windows, warm_up=warm_audio)

    def close(self):
        self.video.close()
        self.audio.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
