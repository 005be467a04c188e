"""Cut-short files: keep what decodes, reject what is too short to judge.

ffmpeg builds differ in how loudly they report a damaged or truncated file (exit
status, error lines), and so do process layouts (one ffmpeg decoding both streams of
``real/mead/sad.mp4`` reports nothing, the audio-only decode a "partial file");
:func:`judge_damage` makes one decision from what came out whichever build runs: a stream
short of :data:`TRUNCATION_RATIO` of its probed length is "cut short" (kept, with a note)
even when ffmpeg stays quiet; rejection needs ffmpeg's complaint as well. Used by :mod:`preprocessing.media`, which re-exports the
thresholds.
"""

import logging

from .errors import MediaError
from .probe import ffmpeg_cause

logger = logging.getLogger(__name__)

#: A stream whose decoding reports errors and yields fewer than this share of what
#: its container duration promises is "cut short" (kept, with a note). Clean clips
#: differ from ``duration * FPS`` by a frame or two at most.
TRUNCATION_RATIO = 0.9

#: Share of the probed duration (frames or seconds) a stream whose decoding reports
#: errors must still yield to be kept; less is rejected as truncated or corrupt.
MIN_DECODED_SHARE = 0.25

#: Frames a video stream whose decoding reports errors must still yield to be kept.
MIN_FRAMES = 1

#: Seconds of audio a stream whose decoding reports errors must still yield to be kept
#: (or 90 % of the probed duration, for clips shorter than that).
MIN_AUDIO_SECONDS = 0.5


def judge_damage(path, what, decoded, expected, *, returncode, stderr, notes, minimum, slack, unit):
    """Keep (with a note) or reject a stream that came out short or whose decoding ffmpeg reported errors for.

    Parameters
    ----------
    path : str or os.PathLike
    what : str
        "video" or "audio".
    decoded, expected : float
        What came out and what the probed duration promises (``expected`` None:
        unknown), in ``unit`` (frames or seconds).
    returncode : int
        ffmpeg's exit status.
    stderr : str
        ffmpeg's error output (``-v error``); empty for a clean decode.
    notes : list of str or None
        Receives the "cut short" note; None: the note is logged as a warning.
    minimum : float
        Least ``decoded`` to keep, in ``unit``; also at least :data:`MIN_DECODED_SHARE` of ``expected``.
    slack : float
        Shortfall in ``unit`` below ``TRUNCATION_RATIO * expected`` still counted as complete.

    Raises
    ------
    MediaError
        Too little decoded to judge the clip: one line naming the file and ffmpeg's cause.
    """
    spec = ".2f" if unit == "s" else ".0f"  # seconds to 10 ms, frames whole
    amount = f"{decoded:{spec}} of {expected:{spec}} {unit}" if expected else f"{decoded:{spec}} {unit}"
    short = bool(expected) and decoded < TRUNCATION_RATIO * expected - slack
    if not returncode and not stderr.strip():
        if short:  # a build (or a process layout) that stays quiet about the cut: still said, never rejected
            _note(f"cut short: {path}: {what} {amount} decoded (ffmpeg reported no error)", notes)
        return
    cause = ffmpeg_cause(stderr) or f"ffmpeg exited with status {returncode}"
    if decoded < minimum or (expected and decoded < MIN_DECODED_SHARE * expected):
        raise MediaError(f"{path}: truncated or corrupt {what}: only {amount} decoded, too little to keep ({cause})")
    if short:
        _note(f"cut short: {path}: {what} {amount} decoded ({cause})", notes)
    elif returncode:
        _note(f"decoder errors: {path}: {what} {amount} decoded, ffmpeg exited with status {returncode} ({cause})",
              notes)
    # else: messages on a complete stream (e.g. a damaged packet concealed): as before, no note


def _note(note, notes):
    """Append ``note`` to ``notes``, or log it as a warning when ``notes`` is None."""
    if notes is None:
        logger.warning("%s", note)
    else:
        notes.append(note)
