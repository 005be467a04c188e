"""ffmpeg discovery, probing and decoding of clips into numpy arrays.

Every clip goes through one ffmpeg binary: the system ``ffmpeg`` when it is on
``PATH``, else the static binary shipped in the ``imageio-ffmpeg`` wheel, so
``pip install -r requirements.txt`` alone is enough. That binary has no
ffprobe, so probing parses what ``ffmpeg -i`` prints about the input.

Commands are built with ffmpeg-python (argument lists, never shell strings);
frames and samples are streamed from ffmpeg's stdout into numpy, no temporary
files. ffmpeg's own error text ends up in the raised :class:`MediaError`.

Examples
--------
>>> info = probe("clip.mp4")                         # doctest: +SKIP
>>> frames = decode_frames("clip.mp4", max_side=320)  # doctest: +SKIP
>>> frames.shape                                      # doctest: +SKIP
(75, 320, 240, 3)
>>> y = decode_audio("clip.mp4")                      # 16 kHz mono float32  # doctest: +SKIP
"""

import dataclasses
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import ffmpeg
import numpy as np

from .constants import FPS, SAMPLE_RATE
from .errors import ConfigError, MediaError, one_line

#: Environment variable that overrides the ffmpeg binary (a path).
FFMPEG_ENV = "EMONET_FFMPEG"

#: A clip whose decoding reports errors and yields fewer than this share of the
#: frames its container duration promises is rejected as truncated or corrupt.
#: Clean clips differ from ``duration * FPS`` by a frame or two at most.
TRUNCATION_RATIO = 0.9


def ffmpeg_binary():
    """Return the path of the ffmpeg executable to use.

    Order: ``$EMONET_FFMPEG`` if set, the system ``ffmpeg`` on ``PATH``, else
    the static binary of the ``imageio-ffmpeg`` wheel.

    Raises
    ------
    MediaError
        If none of these exists.
    """
    override = os.environ.get(FFMPEG_ENV)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise MediaError(f"{FFMPEG_ENV}={override}: not an executable file")
        return override
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise MediaError(f"ffmpeg: not on PATH and imageio-ffmpeg has no binary ({exc})") from exc


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    """What ffmpeg reports about a clip.

    Attributes
    ----------
    path : str
    duration : float or None
        Container duration in seconds (``None`` if ffmpeg reports ``N/A``).
    has_video, has_audio : bool
        Whether a decodable video / audio stream exists (cover art excluded).
    width, height : int
        Display size in pixels after rotation and sample-aspect correction
        (0 without video).
    fps : float or None
        Nominal source frame rate (frames per second).
    rotation : int
        Display rotation in degrees (0, 90, 180 or 270); ffmpeg applies it
        while decoding.
    video_codec, audio_codec : str or None
    sample_rate : int or None
        Source audio rate in Hz.
    """

    path: str
    duration: float | None
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float | None = None
    rotation: int = 0
    video_codec: str | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None


_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: (\w+)(.*)")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: (\w+)(.*)")
_SIZE = re.compile(r"\b(\d{2,5})x(\d{2,5})\b")
_SAR = re.compile(r"SAR (\d+):(\d+)")
_FPS = re.compile(r"([\d.]+)(k?) (?:fps|tbr)")
_RATE = re.compile(r"(\d+) Hz")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees")


def check_readable(path):
    """Raise :class:`MediaError` unless ``path`` is an existing, readable, non-empty file.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if path.is_dir():
        raise MediaError(f"{path}: is a directory, not a media file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise MediaError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if not head:
        raise MediaError(f"{path}: empty file (0 bytes)")
    return path


def probe(path):
    """Describe the streams of a clip without ffprobe.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    MediaInfo

    Raises
    ------
    MediaError
        If the file is missing, empty, unreadable, not a media file, or has
        neither a video nor an audio stream.
    """
    path = check_readable(path)
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-i", str(path)]
    proc = subprocess.run(cmd, capture_output=True, timeout=120)
    text = proc.stderr.decode("utf-8", "replace")
    if "Input #0" not in text:
        raise MediaError(f"{path}: not a readable media file ({_ffmpeg_cause(text)})")
    duration = None
    match = _DURATION.search(text)
    if match:
        h, m, s = match.groups()
        duration = int(h) * 3600 + int(m) * 60 + float(s)
    info = {"path": str(path), "duration": duration, "has_video": False, "has_audio": False}
    for line in text.splitlines():
        video = _VIDEO.search(line)
        if video and not info["has_video"] and "attached pic" not in line:
            info.update(has_video=True, video_codec=video.group(1), **_video_geometry(video.group(2)))
            continue
        audio = _AUDIO.search(line)
        if audio and not info["has_audio"]:
            rate = _RATE.search(audio.group(2))
            info.update(has_audio=True, audio_codec=audio.group(1),
                        sample_rate=int(rate.group(1)) if rate else None)
    rotation = _ROTATION.search(text)
    if rotation and info["has_video"]:
        degrees = int(round(-float(rotation.group(1)))) % 360
        info["rotation"] = degrees
        if degrees in (90, 270):
            info["width"], info["height"] = info["height"], info["width"]
    if not info["has_video"] and not info["has_audio"]:
        raise MediaError(f"{path}: no video or audio stream")
    return MediaInfo(**info)


def _video_geometry(details):
    """Parse size, sample aspect ratio and frame rate from a ``Video:`` stream line."""
    geometry = {}
    size = _SIZE.search(details)
    if size:
        width, height = int(size.group(1)), int(size.group(2))
        sar = _SAR.search(details)
        if sar and int(sar.group(1)) > 0 and int(sar.group(2)) > 0:
            width = int(round(width * int(sar.group(1)) / int(sar.group(2))))
        geometry.update(width=width, height=height)
    rate = _FPS.search(details)
    if rate:
        geometry["fps"] = float(rate.group(1)) * (1000 if rate.group(2) else 1)
    return geometry


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


def decode_frames(path, *, max_side=320, size=None, max_frames=None, info=None):
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

    Returns
    -------
    frames : np.ndarray [shape=(T, height, width, 3), dtype=uint8]
        RGB frames; ``T`` is about ``duration * 25`` (or ``max_frames``).

    Raises
    ------
    MediaError
        No video stream, ffmpeg failed, or no frame could be decoded.
    """
    frames, _ = decode_frames_with_index(path, max_side=max_side, size=size,
                                         max_frames=max_frames, info=info)
    return frames


def decode_frames_with_index(path, *, max_side=320, size=None, max_frames=None, info=None):
    """Like :func:`decode_frames`, also returning each kept frame's index in the 25 fps stream.

    Returns
    -------
    frames : np.ndarray [shape=(T, height, width, 3), dtype=uint8]
    index : np.ndarray [shape=(T,), dtype=int32]
        Position of each frame in the full 25 fps sequence (time = index / 25 s).
    """
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"decode_frames: max_frames must be >= 1; received {max_frames}")
    info = info or probe(path)
    if not info.has_video:
        raise MediaError(f"{path}: no video stream (audio-only file)")
    if size is None:
        if not info.width:
            raise MediaError(f"{path}: video stream of unknown size")
        size = output_size(info.width, info.height, max_side)
    width, height = size
    frame_bytes = width * height * 3
    stream = (
        ffmpeg.input(str(path))
        .video.filter("fps", fps=FPS)
        .filter("scale", width, height)
        .filter("setsar", 1)
        .output("pipe:", format="rawvideo", pix_fmt="rgb24")
        .global_args("-nostdin", "-v", "error")
    )
    expected = None if info.duration is None else int(round(info.duration * FPS))
    picker = _FramePicker(max_frames, expected)
    returncode, stderr = _run_streaming(stream.compile(cmd=ffmpeg_binary()), frame_bytes, picker.offer)
    if returncode:
        raise MediaError(f"{path}: ffmpeg failed decoding video ({_ffmpeg_cause(stderr)})")
    if not picker.frames:
        raise MediaError(f"{path}: no video frame could be decoded ({_ffmpeg_cause(stderr) or 'empty stream'})")
    if stderr.strip() and expected and picker.position < TRUNCATION_RATIO * expected - 2:
        raise MediaError(f"{path}: truncated or corrupt video: decoded {picker.position} of "
                         f"{expected} expected frames ({_ffmpeg_cause(stderr)})")
    frames = np.stack([np.frombuffer(buf, np.uint8).reshape(height, width, 3) for buf in picker.frames])
    return frames, np.asarray(picker.index, dtype=np.int32)


def uniform_indices(n_total, n_keep):
    """Indices of ``n_keep`` frames spread uniformly over ``n_total`` (centre of each bin).

    Returns
    -------
    np.ndarray [shape=(min(n_total, n_keep),), dtype=int64], strictly increasing.
    """
    if n_total <= n_keep:
        return np.arange(n_total)
    return np.floor((np.arange(n_keep) + 0.5) * n_total / n_keep).astype(np.int64)


class _FramePicker:
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


def decode_audio(path, *, sample_rate=SAMPLE_RATE, info=None, max_seconds=None):
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

    Returns
    -------
    y : np.ndarray [shape=(n_samples,), dtype=float32]
        Samples in [-1, 1].

    Raises
    ------
    MediaError
        No audio stream, or ffmpeg failed.
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
    if proc.returncode:
        raise MediaError(f"{path}: ffmpeg failed decoding audio ({_ffmpeg_cause(proc.stderr)})")
    usable = len(proc.stdout) // 4 * 4
    return np.frombuffer(proc.stdout[:usable], dtype="<f4").astype(np.float32)


def _run_streaming(cmd, chunk_bytes, consume):
    """Run ``cmd``, handing each ``chunk_bytes`` block of stdout to ``consume``.

    stderr is drained by a thread so a chatty ffmpeg can never block the pipe.

    Returns
    -------
    returncode : int
        ffmpeg's exit status.
    stderr : str
        ffmpeg's error output.
    """
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    errors = []
    drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
    drain.start()
    try:
        while True:
            buf = proc.stdout.read(chunk_bytes)
            if len(buf) < chunk_bytes:
                break
            consume(buf)
    finally:
        proc.stdout.close()
        returncode = proc.wait()
        drain.join()
    return returncode, b"".join(errors).decode("utf-8", "replace")


def _ffmpeg_cause(stderr):
    """The last meaningful lines of ffmpeg's stderr, on one line."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    noise = ("At least one output file must be specified", "Use -h to get full help", "Error opening input file",
             "Error opening input files", "Error opening input:")
    lines = []
    for line in stderr.splitlines():
        line = _CONTEXT_TAG.sub("", line).strip()
        if line and not any(n in line for n in noise) and line not in lines:
            lines.append(line)
    if not lines:  # only generic lines: keep the last of them
        generic = [_CONTEXT_TAG.sub("", ln).strip() for ln in stderr.splitlines() if ln.strip()]
        lines = generic[-1:]
    return one_line("\n".join(lines))


_CONTEXT_TAG = re.compile(r"^(\[[^\]]*@ 0x[0-9a-f]+\]\s*)+")
