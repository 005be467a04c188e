"""ffmpeg discovery and probing: which binary, and what streams a clip holds.

Every clip goes through one ffmpeg binary (:func:`ffmpeg_binary`): the static
binary shipped in the ``imageio-ffmpeg`` wheel, so ``pip install -r requirements.txt``
alone is enough; ``$EMONET_FFMPEG`` overrides it, and a system ``ffmpeg`` on
``PATH`` is used only when the wheel has no binary. That binary has no
ffprobe, so :func:`probe` parses what ``ffmpeg -i`` prints about the input.
Decoding is :mod:`preprocessing.media`, which re-exports these names.

Examples
--------
>>> info = probe("clip.mp4")                         # doctest: +SKIP
>>> info.duration, info.has_video, info.has_audio    # doctest: +SKIP
(3.0, True, True)
"""

import dataclasses
import functools
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from .errors import MediaError, one_line

logger = logging.getLogger(__name__)

#: Environment variable that overrides the ffmpeg binary (a path).
FFMPEG_ENV = "EMONET_FFMPEG"


def ffmpeg_binary():
    """Return the path of the ffmpeg executable to use.

    Order: ``$EMONET_FFMPEG`` if set (it must exist and run ``-version``), else the
    static binary of the ``imageio-ffmpeg`` wheel (ffmpeg 7.0; Debian's 5.1 was
    measured decoding about 2x slower), else the system ``ffmpeg`` on ``PATH`` only
    when the wheel has no binary. The choice is logged at DEBUG level, once.

    Raises
    ------
    MediaError
        If ``$EMONET_FFMPEG`` is not a working ffmpeg, or no binary exists.
    """
    return _resolve_ffmpeg(os.environ.get(FFMPEG_ENV) or None, os.environ.get("PATH", ""))


@functools.lru_cache(maxsize=8)
def _resolve_ffmpeg(override, search_path):
    """:func:`ffmpeg_binary` for one value of ``$EMONET_FFMPEG`` and ``$PATH`` (failures are not cached)."""
    if override:
        if not os.path.isfile(override):
            raise MediaError(f"{FFMPEG_ENV}={override}: no such file")
        try:
            out = subprocess.run([override, "-version"], capture_output=True, timeout=30)
        except OSError as exc:
            raise MediaError(f"{FFMPEG_ENV}={override}: cannot run it ({exc.strerror or exc})") from exc
        except subprocess.TimeoutExpired as exc:
            raise MediaError(f"{FFMPEG_ENV}={override}: '-version' did not answer within 30 s") from exc
        version = out.stdout.decode("utf-8", "replace").split("\n", 1)[0]
        if out.returncode:
            raise MediaError(f"{FFMPEG_ENV}={override}: not a working ffmpeg ('-version' exited {out.returncode}: "
                             f"{one_line(out.stderr.decode('utf-8', 'replace'))})")
        if not version.startswith("ffmpeg"):
            raise MediaError(f"{FFMPEG_ENV}={override}: not an ffmpeg ('-version' printed {version[:60]!r})")
        logger.debug("ffmpeg: %s (from %s; %s)", override, FFMPEG_ENV, version)
        return override
    wheel = _wheel_ffmpeg()
    if wheel:
        logger.debug("ffmpeg: %s (imageio-ffmpeg wheel)", wheel)
        return wheel
    system = shutil.which("ffmpeg", path=search_path)
    if system:
        logger.debug("ffmpeg: %s (system; the imageio-ffmpeg wheel has no binary)", system)
        return system
    raise MediaError(f"ffmpeg: the imageio-ffmpeg wheel has no binary and none is on PATH (or set {FFMPEG_ENV})")


def _wheel_ffmpeg():
    """Path of the binary inside the ``imageio-ffmpeg`` wheel, or None (not installed, no binary)."""
    try:
        from imageio_ffmpeg import _utils
        exe = os.path.join(_utils._get_bin_dir(), _utils.FNAME_PER_PLATFORM.get(_utils.get_platform(), ""))
    except (ImportError, AttributeError, RuntimeError):  # not installed, or its private layout changed
        try:
            import imageio_ffmpeg
            exe = imageio_ffmpeg.get_ffmpeg_exe()  # may itself fall back to a system ffmpeg
        except (ImportError, RuntimeError):
            return None
    return exe if os.path.isfile(exe) and os.access(exe, os.X_OK) else None


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
#: Where the first input's description ends: the next input, an output, or the stream mapping.
_END_OF_INPUT = re.compile(r"^\s*(?:Input #[1-9]|Output #\d|Stream mapping:)", re.MULTILINE)


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
    return parse_input(path, proc.stderr.decode("utf-8", "replace"))


def parse_input(path, text, cause=None):
    """Read ffmpeg's description of its first input (``Input #0`` ...) into a :class:`MediaInfo`.

    The text is what ``ffmpeg -i`` prints, or the same description printed by a decoding ffmpeg
    (:mod:`preprocessing.av_session`); it is read up to the next input or output (``Input #1``,
    ``Output #0``, ``Stream mapping:``), so only the first input's streams count.

    Parameters
    ----------
    path : str or os.PathLike
        The file described (named in errors).
    text : str
        ffmpeg's stderr, without log-level tags.
    cause : str, optional
        ffmpeg's complaint to quote when ``text`` holds no description (default: the last
        lines of ``text``, :func:`ffmpeg_cause`).

    Raises
    ------
    MediaError
        No description (not a media file ffmpeg reads), or neither a video nor an audio stream.
    """
    if "Input #0" not in text:
        raise MediaError(f"{path}: not a readable media file ({cause or ffmpeg_cause(text)})")
    text = _END_OF_INPUT.split(text[text.index("Input #0"):], maxsplit=1)[0]
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


def ffmpeg_cause(stderr):
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
