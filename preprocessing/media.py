"""Decoding of clips into numpy arrays with ffmpeg (and, re-exported, its discovery and probing).

Every clip goes through one ffmpeg binary, found and probed by
:mod:`preprocessing.probe` (:func:`ffmpeg_binary`, :func:`probe`,
:class:`MediaInfo`, importable from here too).

Commands are built with ffmpeg-python (argument lists, never shell strings);
frames and samples are streamed from ffmpeg's stdout into numpy, no temporary
files. ffmpeg's own error text ends up in the raised :class:`MediaError`. Extraction decodes
a clip's frames and audio with one process instead (:mod:`preprocessing.av_decode`).

A file cut short (a partial download, a copy interrupted) is kept for what
decodes: when ffmpeg reports errors but at least :data:`MIN_DECODED_SHARE` of the
probed duration came out (and :data:`MIN_FRAMES` frames, or :data:`MIN_AUDIO_SECONDS`
of audio), :func:`decode_frames_with_index` and :func:`decode_audio` return it and
add a one-line note ("cut short: <file>: video 111 of 157 frames decoded (<cause>)")
to ``notes``; with less left, they raise "truncated or corrupt". The same rule
holds whichever ffmpeg build runs, however loudly it reports the damage
(:mod:`preprocessing.truncation`).

Examples
--------
>>> info = probe("clip.mp4")                         # doctest: +SKIP
>>> frames = decode_frames("clip.mp4", max_side=320)  # doctest: +SKIP
>>> frames.shape                                      # doctest: +SKIP
(75, 320, 240, 3)
>>> y = decode_audio("clip.mp4")                      # 16 kHz mono float32  # doctest: +SKIP
"""

import subprocess
import threading

import ffmpeg
import numpy as np

from .constants import FPS, SAMPLE_RATE
from .errors import ConfigError, MediaError
from .pipes import run_streaming
from .probe import FFMPEG_ENV, MediaInfo, check_readable, ffmpeg_binary, ffmpeg_cause, probe
from .truncation import MIN_AUDIO_SECONDS, MIN_DECODED_SHARE, MIN_FRAMES, TRUNCATION_RATIO, judge_damage

__all__ = [
    "FFMPEG_ENV", "MIN_AUDIO_SECONDS", "MIN_DECODED_SHARE", "MIN_FRAMES", "TRUNCATION_RATIO", "MediaInfo",
    "FramePicker", "check_readable", "decode_audio", "decode_frames", "decode_frames_with_index", "ffmpeg_binary", "ffmpeg_cause", "iter_audio", "iter_frames", "output_size", "probe",
    "judged_audio", "judged_frames", "rgb_filter", "rgb_output", "run_streaming", "uniform_indices", "video_output",
]

def output_size(width, height, max_side):
    """Size (width, height) that fits ``max_side`` keeping the aspect ratio, both even.

    Sources smaller than ``max_side`` are not upscaled.

    Parameters
    ----------
    width, height : int
        Display size of the source in pixels.
    max_side : int or None
        Longest side of the output in pixels; ``None`` keeps the source size.
    """
    if width <= 0 or height <= 0:
        raise ConfigError(f"output_size: width and height must be positive; received {width}x{height}")
    scale = 1.0 if max_side is None else min(1.0, max_side / max(width, height))
    even = lambda v: max(2, int(round(v * scale / 2)) * 2)  # noqa: E731 - yuv-friendly sizes
    return even(width), even(height)


def decode_frames(path, *, max_side=320, size=None, max_frames=None, info=None, notes=None):
    """Decode a clip's video at exactly :data:`FPS` frames per second into RGB frames.

    ffmpeg's ``fps`` filter resamples any source rate (23.976, 29.97, 60,
    variable) to 25 fps; frames are streamed through a pipe, so at most
    ``max_frames`` frames are held in memory.

    Parameters
    ----------
    path : str or os.PathLike
    max_side : int, optional
        Longest side of the output frames in pixels (aspect kept). Ignored
        when ``size`` is given.
    size : tuple of int (width, height), optional
        Exact output size in pixels.
    max_frames : int, optional
        Cap on the number of frames returned. Longer clips are sampled
        uniformly over their whole length (see :func:`uniform_indices`).
    info : MediaInfo, optional
        A probe result to reuse.
    notes : list of str, optional
        Receives a one-line note when the clip is cut short but kept (see the module
        docstring); without it the note is logged as a warning.

    Returns
    -------
    frames : np.ndarray [shape=(T, height, width, 3), dtype=uint8]
        RGB frames; ``T`` is about ``duration * 25`` (or ``max_frames``), fewer for a
        clip cut short.

    Raises
    ------
    MediaError
        No video stream, no frame could be decoded, or ffmpeg reported errors and fewer
        than :data:`MIN_DECODED_SHARE` of the expected frames came out.
    """
    frames, _ = decode_frames_with_index(path, max_side=max_side, size=size,
                                         max_frames=max_frames, info=info, notes=notes)
    return frames


def video_output(path, info, size, max_side):
    """``(info, (width, height))``: the probe (``info`` or a new one) and the decoded frame size in px:
    ``size`` when given, else the source's scaled to ``max_side``. MediaError without a sized video stream."""
    info = info or probe(path)
    if not info.has_video:
        raise MediaError(f"{path}: no video stream (audio-only file)")
    if size is None:
        if not info.width:
            raise MediaError(f"{path}: video stream of unknown size")
        size = output_size(info.width, info.height, max_side)
    return info, tuple(size)


def decode_frames_with_index(path, *, max_side=320, size=None, max_frames=None, info=None, notes=None):
    """Like :func:`decode_frames`, also returning each kept frame's index in the 25 fps stream.

    Returns
    -------
    frames : np.ndarray [shape=(T, height, width, 3), dtype=uint8]
    index : np.ndarray [shape=(T,), dtype=int32]
        Position of each frame in the full 25 fps sequence (time = index / 25 s).
    """
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"decode_frames: max_frames must be >= 1; received {max_frames}")
    info, (width, height) = video_output(path, info, size, max_side)
    frame_bytes = width * height * 3
    stream = rgb_output(ffmpeg.input(str(path)), width, height).global_args("-nostdin", "-v", "error")
    expected = None if info.duration is None else int(round(info.duration * FPS))
    picker = FramePicker(max_frames, expected)
    returncode, stderr = run_streaming(stream.compile(cmd=ffmpeg_binary()), frame_bytes, picker.offer)
    return judged_frames(path, picker, expected, (width, height), returncode=returncode, stderr=stderr, notes=notes)


def judged_frames(path, picker, expected, size, *, returncode, stderr, notes):
    """The frames a :class:`FramePicker` kept, as (frames (T, H, W, 3) uint8, index (T,) int32), once judged.

    ``expected`` frames were promised (None: unknown), ``size`` is (width, height) in px; a cut-short
    stream gets a note, too little of a damaged one or no frame at all is a :class:`MediaError`
    (:func:`preprocessing.truncation.judge_damage`).
    """
    judge_damage(path, "video", picker.position, expected, returncode=returncode, stderr=stderr, notes=notes,
                 minimum=MIN_FRAMES, slack=2, unit="frames")
    if not picker.frames:
        raise MediaError(f"{path}: no video frame could be decoded ({ffmpeg_cause(stderr) or 'empty stream'})")
    width, height = size
    frames = np.stack([np.frombuffer(buf, np.uint8).reshape(height, width, 3) for buf in picker.frames])
    return frames, np.asarray(picker.index, dtype=np.int32)


def rgb_output(source, width, height, target="pipe:"):
    """ffmpeg-python output node: ``source``'s video at :data:`FPS` fps, ``width`` x ``height`` px, raw RGB24 to
    ``target`` (stdout by default). Shared by every whole-clip decode, so their frames are identical."""
    return (source.video.filter("fps", fps=FPS).filter("scale", width, height).filter("setsar", 1)
            .output(target, format="rawvideo", pix_fmt="rgb24"))


def rgb_filter(width, height):
    """The filters of :func:`rgb_output` as ffmpeg's filter text (for a decode that reads its filter from a pipe,
    :mod:`preprocessing.av_session`): :data:`FPS` fps, ``width`` x ``height`` px, square pixels."""
    return f"fps=fps={FPS},scale={width}:{height},setsar=1"


def uniform_indices(n_total, n_keep):
    """Indices of ``n_keep`` frames spread uniformly over ``n_total`` (centre of each bin).

    Returns
    -------
    np.ndarray [shape=(min(n_total, n_keep),), dtype=int64], strictly increasing.
    """
    if n_total <= n_keep:
        return np.arange(n_total)
    return np.floor((np.arange(n_keep) + 0.5) * n_total / n_keep).astype(np.int64)


class FramePicker:
    """Keeps a bounded, uniformly spread subset of a stream of frames.

    With a known expected length the kept indices are :func:`uniform_indices`;
    frames beyond the expectation, or a stream of unknown length, fall back to
    stride doubling: keep every ``stride``-th frame and, when the cap is
    exceeded, drop every other kept frame and double the stride.
    """

    def __init__(self, max_frames, expected):
        self.max_frames = max_frames
        self.wanted = None
        if max_frames is not None and expected is not None and expected > max_frames:
            self.wanted = set(uniform_indices(expected, max_frames).tolist())
        self.stride = 1
        self.frames, self.index = [], []
        self.position = 0

    def offer(self, buf):
        position = self.position
        self.position += 1
        if self.max_frames is None:
            keep = True
        elif self.wanted is not None:
            keep = position in self.wanted
        else:
            keep = position % self.stride == 0
        if not keep:
            return
        self.frames.append(buf)
        self.index.append(position)
        if self.max_frames is not None and len(self.frames) > self.max_frames:
            if self.wanted is not None:  # more frames than probed: switch to stride doubling
                self.wanted = None
                self.stride = max(1, position // self.max_frames)
            self.frames, self.index = self.frames[::2], self.index[::2]
            self.stride *= 2


def decode_audio(path, *, sample_rate=SAMPLE_RATE, info=None, max_seconds=None, notes=None):
    """Decode a clip's first audio stream to mono float32 at ``sample_rate`` Hz.

    Parameters
    ----------
    path : str or os.PathLike
    sample_rate : int
        Output rate in Hz (default 16 kHz).
    info : MediaInfo, optional
        A probe result to reuse.
    max_seconds : float, optional
        Decode at most this many seconds.
    notes : list of str, optional
        Receives a one-line note when the audio is cut short but kept (see the module
        docstring); without it the note is logged as a warning.

    Returns
    -------
    y : np.ndarray [shape=(n_samples,), dtype=float32]
        Samples in [-1, 1]; fewer than the probed duration for a clip cut short.

    Raises
    ------
    MediaError
        No audio stream, or ffmpeg reported errors and less than :data:`MIN_AUDIO_SECONDS`
        or :data:`MIN_DECODED_SHARE` of the probed duration came out.
    """
    info = info or probe(path)
    if not info.has_audio:
        raise MediaError(f"{path}: no audio stream (video-only file)")
    output_args = {"format": "f32le", "ac": 1, "ar": sample_rate}
    if max_seconds is not None:
        output_args["t"] = max_seconds
    stream = (
        ffmpeg.input(str(path)).audio
        .output("pipe:", **output_args)
        .global_args("-nostdin", "-v", "error")
    )
    proc = subprocess.run(stream.compile(cmd=ffmpeg_binary()), capture_output=True, timeout=600)
    expected = info.duration if max_seconds is None or info.duration is None else min(info.duration, max_seconds)
    return judged_audio(path, proc.stdout, expected, sample_rate, returncode=proc.returncode,
                        stderr=proc.stderr.decode("utf-8", "replace"), notes=notes)


def judged_audio(path, raw, expected, sample_rate, *, returncode, stderr, notes):
    """ffmpeg's f32le bytes ``raw`` as mono float32 samples (N,), once judged against ``expected`` seconds.

    A trailing partial sample is dropped; a cut-short stream gets a note, too little of a
    damaged one is a :class:`MediaError` (:func:`preprocessing.truncation.judge_damage`).
    """
    y = np.frombuffer(raw[:len(raw) // 4 * 4], dtype="<f4").astype(np.float32)
    minimum = MIN_AUDIO_SECONDS if expected is None else min(MIN_AUDIO_SECONDS, TRUNCATION_RATIO * expected)
    judge_damage(path, "audio", len(y) / sample_rate, expected, returncode=returncode, stderr=stderr, notes=notes,
                 minimum=minimum, slack=0.1, unit="s")
    return y


def iter_frames(path, *, fps=FPS, max_side=320, size=None, block=1, info=None):
    """Stream a clip's video as blocks of RGB frames, holding at most ``block`` frames at a time.

    The streaming counterpart of :func:`decode_frames` for clips too long to hold:
    ffmpeg's ``fps`` filter resamples the source to ``fps`` frames per second (frame
    ``j`` shows time ``j / fps`` s) and the pipe is read ``block`` frames at a time.

    Parameters
    ----------
    path : str or os.PathLike
    fps : int, float, str or fractions.Fraction or None
        Output frame rate in frames per second (``"16/3"`` and ``Fraction(16, 3)`` are
        exact); ``None`` keeps the source's own frames.
    max_side : int or None
        Longest side of the output frames in pixels (aspect kept). Ignored when ``size``
        is given; ``None`` keeps the display size.
    size : tuple of int (width, height), optional
        Exact output size in pixels.
    block : int
        Frames per yielded array.
    info : MediaInfo, optional
        A probe result to reuse.

    Yields
    ------
    frames : np.ndarray [shape=(n, height, width, 3), dtype=uint8]
        ``n == block`` except for the last array. Closing the generator early stops ffmpeg.

    Raises
    ------
    MediaError
        No video stream, ffmpeg failed, or no frame could be decoded.
    """
    if block < 1:
        raise ConfigError(f"iter_frames: block must be >= 1; received {block}")
    info, (width, height) = video_output(path, info, size, max_side)
    video = ffmpeg.input(str(path)).video
    if fps is not None:
        video = video.filter("fps", fps=str(fps))
    stream = (video.filter("scale", width, height).filter("setsar", 1)
              .output("pipe:", format="rawvideo", pix_fmt="rgb24").global_args("-nostdin", "-v", "error"))
    frame_bytes = width * height * 3
    decoded = 0
    for buf in _stream_blocks(stream.compile(cmd=ffmpeg_binary()), frame_bytes, block, path, "video"):
        frames = np.frombuffer(buf, np.uint8).reshape(-1, height, width, 3)
        decoded += len(frames)
        yield frames
    if not decoded:
        raise MediaError(f"{path}: no video frame could be decoded (empty stream)")


def iter_audio(path, *, sample_rate=SAMPLE_RATE, block_seconds=1.0, info=None):
    """Stream a clip's first audio stream as mono float32 blocks at ``sample_rate`` Hz.

    The streaming counterpart of :func:`decode_audio`: the samples are the same, read
    ``block_seconds`` at a time.

    Parameters
    ----------
    path : str or os.PathLike
    sample_rate : int
        Output rate in Hz (default 16 kHz).
    block_seconds : float
        Seconds of audio per yielded array.
    info : MediaInfo, optional
        A probe result to reuse.

    Yields
    ------
    y : np.ndarray [shape=(n,), dtype=float32]
        Samples in [-1, 1]; ``n == round(block_seconds * sample_rate)`` except for the last.

    Raises
    ------
    MediaError
        No audio stream, or ffmpeg failed.
    """
    if not block_seconds > 0:
        raise ConfigError(f"iter_audio: block_seconds must be > 0; received {block_seconds}")
    info = info or probe(path)
    if not info.has_audio:
        raise MediaError(f"{path}: no audio stream (video-only file)")
    stream = (ffmpeg.input(str(path)).audio.output("pipe:", format="f32le", ac=1, ar=sample_rate)
              .global_args("-nostdin", "-v", "error"))
    n = max(1, int(round(block_seconds * sample_rate)))
    for buf in _stream_blocks(stream.compile(cmd=ffmpeg_binary()), 4, n, path, "audio"):
        yield np.frombuffer(buf, dtype="<f4").astype(np.float32)


def _stream_blocks(cmd, item_bytes, per_block, path, what):
    """Run ``cmd`` and yield its stdout in blocks of ``per_block`` whole items of ``item_bytes``.

    A trailing partial item is dropped; stderr is drained by a thread. Closing the
    generator early kills ffmpeg; a failed ffmpeg raises :class:`MediaError` at the end.
    """
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    errors = []
    drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
    drain.start()
    finished = False
    try:
        while True:
            buf = proc.stdout.read(item_bytes * per_block)
            usable = len(buf) // item_bytes * item_bytes
            if usable:
                yield buf[:usable]
            if len(buf) < item_bytes * per_block:
                break
        finished = True
    finally:
        if not finished:
            proc.kill()
        proc.stdout.close()
        returncode = proc.wait()
        drain.join()
    if returncode:
        raise MediaError(f"{path}: ffmpeg failed decoding {what} ({ffmpeg_cause(b''.join(errors))})")
