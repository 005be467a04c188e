"""One ffmpeg that describes a clip, waits for its video filter, then decodes it: no separate probe.

A decode needs the probe's answer before it starts: the display size fixes the scale
filter and the byte size of a frame, the duration the frames a capped clip keeps. A
separate ``ffmpeg -i`` (:func:`preprocessing.probe.probe`) costs a process start and a
second opening of the file per clip (8 ms of a 35 ms decode on composite clips,
``experiments/results/extract.json``). :class:`DescribedDecode` asks the decoding
ffmpeg itself:

1. ffmpeg runs at log level ``level+info`` (every line tagged ``[info]``, ``[error]``, ...)
   and, opening the clip, prints its description: the text ``ffmpeg -i`` prints, read by
   the same :func:`preprocessing.probe.parse_input`, so the
   :class:`~preprocessing.probe.MediaInfo` is the probe's.
2. ffmpeg then opens its outputs: first the raw RGB video, whose filter graph it reads from
   a pipe (``-filter_script:v`` before ffmpeg 7, ``-/filter:v`` since) until the pipe
   closes. Python writes blanks into that pipe, more than it holds: when the write has gone
   through, ffmpeg is reading the filter, so its description is complete on stderr. Python
   reads it, computes the frame size and writes the filter of
   :func:`preprocessing.media.rgb_filter` (25 fps, that size, ``setsar=1``; the graph parser
   skips the leading blanks), so the frames are those of
   :func:`preprocessing.media.decode_frames`. Then the 16 kHz mono float32 audio output, to an
   extra pipe.
3. ffmpeg decodes; its error lines (``[error]``, ``[fatal]``, ``[panic]``: what ``-v error``
   prints) are the complaints :mod:`preprocessing.truncation` judges.

Nothing is added to the command's inputs: a second input (an end marker for the
description) made ffmpeg 5.1 read the clip in a thread and stop reporting a file cut short.
The command assumes a video and an audio stream; when the description shows otherwise,
:meth:`DescribedDecode.abort` stops it (a missing stream's ``-map`` has made it exit
already) and the caller decodes with the description it got.
"""

import functools
import os
import re
import select
import subprocess
import threading
import time

from .errors import MediaError
from .pipes import pump_stdout, read_all
from .probe import check_readable, ffmpeg_binary, ffmpeg_cause, parse_input

#: Seconds to wait for ffmpeg to describe a clip (as the probe's timeout).
DESCRIBE_TIMEOUT = 120

#: Log levels whose lines are complaints (what ``-v error`` shows).
ERROR_LEVELS = ("error", "fatal", "panic")

_LEVEL_TAG = re.compile(r"^((?:\[[^\]]*\]\s*)*?)\[(trace|debug|verbose|info|warning|error|fatal|panic)\] ?")
_VERSION = re.compile(r"^ffmpeg version n?(\d+)\.")


@functools.lru_cache(maxsize=8)
def filter_option(exe):
    """The option that reads a video filter from a file for ffmpeg ``exe``, or None (version unknown).

    ``-/filter:v`` from ffmpeg 7 (where ``-filter_script`` is deprecated), ``-filter_script:v``
    before. None for a build whose ``-version`` line names no release (``N-...`` git builds):
    the caller then probes first, as before.
    """
    try:
        out = subprocess.run([exe, "-version"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.match(out.stdout.decode("utf-8", "replace"))
    if not match:
        return None
    return "-/filter:v" if int(match.group(1)) >= 7 else "-filter_script:v"


def split_levels(lines):
    """Split ffmpeg's ``level+info`` stderr lines into (description, complaints), both str without level tags.

    ``description`` holds every line (for :func:`~preprocessing.probe.parse_input`);
    ``complaints`` the lines at :data:`ERROR_LEVELS` (context tags such as ``[h264 @ 0x..]``
    kept, as ``-v error`` prints them). A line without a tag continues the previous line's level.
    """
    description, complaints, level = [], [], "info"
    for line in lines:
        match = _LEVEL_TAG.match(line)
        if match:
            level = match.group(2)
            line = match.group(1) + line[match.end():]
        description.append(line)
        if level in ERROR_LEVELS:
            complaints.append(line)
    return "\n".join(description), "\n".join(complaints)


class DescribedDecode:
    """A running ffmpeg decoding the video and audio of ``path`` that describes it first (module docstring).

    Parameters
    ----------
    path : str or os.PathLike
    sample_rate : int
        Audio output rate in Hz.
    threads : int
        Decoder and filter threads.

    Raises
    ------
    MediaError
        The file is missing, empty or unreadable (:func:`~preprocessing.probe.check_readable`), or
        ffmpeg's version is unknown (:func:`filter_option`).
    """

    def __init__(self, path, *, sample_rate, threads):
        self.path = check_readable(path)
        exe = ffmpeg_binary()
        option = filter_option(exe)
        if option is None:
            raise MediaError(f"{exe}: cannot tell its version, so not how to hand it a filter")
        script_read, self._script = os.pipe()
        self._padding = b" " * (2 * _shrink_pipe(self._script))
        self._audio, audio_write = os.pipe()
        cmd = [exe, "-hide_banner", "-nostdin", "-nostats", "-v", "level+info", "-threads", str(threads),
               "-i", str(self.path),
               "-map", "0:v:0", option, f"pipe:{script_read}", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:",
               "-map", "0:a", "-f", "f32le", "-ac", "1", "-ar", str(sample_rate), f"pipe:{audio_write}",
               "-filter_threads", str(threads)]
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, pass_fds=(script_read, audio_write))
        except BaseException:
            _close(self._audio, self._script)
            raise
        finally:
            _close(script_read, audio_write)  # ffmpeg holds them now: EOF and EPIPE follow its exit
        self._log = []  # stderr, in chunks as read
        self._drain = None

    def describe(self, timeout=DESCRIBE_TIMEOUT):
        """The clip's :class:`~preprocessing.probe.MediaInfo`, once ffmpeg has printed it and waits for its filter.

        Raises
        ------
        MediaError
            Not a media file, no stream, or no description within ``timeout`` s (ffmpeg is stopped).
        """
        err = self.proc.stderr.fileno()
        os.set_blocking(self._script, False)
        deadline = time.monotonic() + timeout
        written, ended = 0, False
        while written < len(self._padding) and not ended:
            left = deadline - time.monotonic()
            if left <= 0:
                self.abort()
                raise MediaError(f"{self.path}: ffmpeg did not describe the file within {timeout} s")
            readable, writable, _ = select.select([err], [self._script], [], left)
            if readable:
                ended = not self._read_log(err)
            if writable and not ended:
                try:
                    written += os.write(self._script, self._padding[written:])
                except BrokenPipeError:  # ffmpeg exited before reading its filter (e.g. no such stream)
                    ended = True
        if ended:  # ffmpeg is exiting: the rest of its log comes before EOF
            while self._read_log(err):
                pass
        else:  # ffmpeg reads the filter: everything it printed before is in the pipe
            while select.select([err], [], [], 0)[0] and self._read_log(err):
                pass
        description, complaints = split_levels(self._text().splitlines())
        try:
            info = parse_input(self.path, description, cause=ffmpeg_cause(complaints) or None)
        except MediaError:
            self.abort()
            raise
        self._drain = threading.Thread(target=lambda: self._read_log(err, until_eof=True), daemon=True)
        self._drain.start()
        return info

    def _read_log(self, fd, until_eof=False):
        """Append what ``fd`` (ffmpeg's stderr) holds to the log; False at EOF."""
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return False
            self._log.append(chunk)
            if not until_eof:
                return True

    def _text(self):
        return b"".join(self._log).decode("utf-8", "replace")

    def decode(self, video_filter, frame_bytes, consume):
        """Hand ffmpeg ``video_filter`` and run the decode to its end (after :meth:`describe`).

        Parameters
        ----------
        video_filter : str
            The filter graph of the video output (:func:`preprocessing.media.rgb_filter`).
        frame_bytes : int
            Bytes of one output frame (width * height * 3).
        consume : callable
            Called with each frame's bytes, in order.

        Returns
        -------
        returncode : int
            ffmpeg's exit status.
        complaints : str
            ffmpeg's error lines (what ``-v error`` prints).
        samples : bytes
            Everything written to the audio pipe (f32le).
        """
        os.set_blocking(self._script, True)
        try:
            os.write(self._script, video_filter.encode())  # a few bytes: the pipe holds them
        except OSError:  # ffmpeg is gone: its exit status and complaints tell why
            pass
        _close(self._script)
        self._script = None
        samples = []
        reader = threading.Thread(target=lambda: samples.append(read_all(self._audio)), daemon=True)
        try:
            returncode = pump_stdout(self.proc, frame_bytes, consume, [reader])
        finally:
            _close(self._audio)
            self._audio = None
        self._drain.join()
        return returncode, split_levels(self._text().splitlines())[1], b"".join(samples)

    def abort(self):
        """Stop ffmpeg (if it still runs) and release its pipes; nothing happens after the decode ended."""
        if self.proc.poll() is None:
            self.proc.kill()
        _close(self._script, self._audio)
        self._script = self._audio = None
        self.proc.stdout.close()
        self.proc.wait()
        if self._drain is not None:
            self._drain.join()
        self.proc.stderr.close()


def _shrink_pipe(fd):
    """Bytes the pipe ``fd`` holds, after shrinking it to one page where the system allows (Linux)."""
    try:
        import fcntl
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 4096)
        return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    except (ImportError, AttributeError, OSError):  # not Linux: no bigger than 1 MiB anywhere we know
        return 1 << 20


def _close(*fds):
    """Close each file descriptor that is not None."""
    for fd in fds:
        if fd is not None:
            os.close(fd)
