"""The input video with the face box and the current window's emotion drawn on every frame.

>>> timeline = predict_timeline("talk.mp4", keep_track=True)        # doctest: +SKIP
>>> annotate_video("talk.mp4", timeline, "talk_emotions.mp4")        # doctest: +SKIP

Frames are decoded at the source's size and frame rate, one at a time, drawn on with
OpenCV and piped into an ffmpeg H.264 encoder; the source's first audio stream is
re-encoded to AAC beside them. The label of a frame at time ``t`` is that of the current
window (:func:`emonet.inference.subtitles.current_spans`: the window whose centre is
nearest ``t``); its box is the tracked face box of the nearest sampled frame
(``Timeline.track_boxes``), or the window's box when the timeline has no track. The
video is written to a temporary file beside the target and renamed at the end
(:func:`preprocessing.files.atomic_path`), so a killed run leaves no half file under
the final name.
"""

import bisect
import logging
import os
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np

from preprocessing import images, media
from preprocessing.constants import FPS
from preprocessing.errors import ConfigError, MediaError
from preprocessing.files import atomic_path

from emonet.inference.subtitles import current_spans

logger = logging.getLogger(__name__)

#: Box and label colour per emotion (RGB).
COLOURS = {"Angry": (230, 40, 40), "Disgust": (120, 170, 40), "Fear": (150, 60, 200), "Happy": (250, 200, 0),
           "Neutral": (200, 200, 200), "Sad": (50, 110, 230), "Surprise": (250, 120, 0)}

#: Frames decoded per pipe read.
FRAMES_PER_READ = 8


def check_annotate_target(path, source=None):
    """``path`` if an annotated video of ``source`` can be written there (nothing is decoded).

    Raises
    ------
    ConfigError
        ``path`` is a folder, has no suffix, is ``source`` itself, or its folder is missing or not writable.
    MediaError
        ``source`` (when given) is a still image or has no video stream.
    """
    path = Path(path)
    if source is not None:
        if images.is_image(source) or not media.probe(source).has_video:
            raise MediaError(f"{source}: --annotate needs a video; this file has no video stream")
        if path.exists() and os.path.samefile(path, source):
            raise ConfigError(f"{path}: --annotate would overwrite the input video; pass another file name")
    if path.is_dir():
        raise ConfigError(f"{path}: --annotate output is a folder; pass a video file name such as out.mp4")
    if not path.suffix:
        raise ConfigError(f"{path}: --annotate output needs a video suffix such as .mp4 (it picks the container)")
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: cannot write the annotated video, folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: cannot write the annotated video, folder {path.parent} is not writable")
    return path


def frame_rate(info):
    """The source's frame rate as an exact fraction (29.97 -> 2997/100); 25 when unknown."""
    return Fraction(info.fps).limit_denominator(1001) if info.fps else Fraction(FPS)


def encoder_command(tmp, source, size, rate):
    """ffmpeg arguments: raw RGB frames on stdin + the source's first audio stream -> H.264/AAC file ``tmp``."""
    width, height = size
    return [media.ffmpeg_binary(), "-nostdin", "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", str(rate), "-i", "pipe:0",
            "-i", str(source), "-map", "0:v:0", "-map", "1:a:0?",
            "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",  # H.264 4:2:0 needs even sides
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k", str(tmp)]


class _Labels:
    """Label text, colour and box of the frame at a given time, from a timeline's rows and track."""

    def __init__(self, timeline):
        self.rows = timeline.rows
        self.ends = [end for _, end in current_spans(self.rows)]
        self.times, self.boxes = timeline.track_times, timeline.track_boxes

    def at(self, t):
        """``(text, colour, box (x0, y0, x1, y1) in source pixels or None)`` at ``t`` seconds."""
        row = self.rows[min(bisect.bisect_right(self.ends, t), len(self.rows) - 1)]
        text = f"{row['emotion']} {row['probabilities'][row['emotion']]:.2f}"
        return text, COLOURS.get(row["emotion"], (255, 255, 255)), self._box(t, row)

    def _box(self, t, row):
        if self.times is not None and len(self.times):
            i = int(np.clip(np.searchsorted(self.times, t), 0, len(self.times) - 1))
            if i and abs(self.times[i - 1] - t) < abs(self.times[i] - t):
                i -= 1
            box = self.boxes[i]
            return None if np.isnan(box).any() else box
        if row["x"] is None:
            return None
        return np.array([row["x"], row["y"], row["x"] + row["w"], row["y"] + row["h"]], np.float32)


def draw_label(frame, text, colour, box):
    """Draw the face box and the label (above the box, else top left) on an RGB frame, in place.

    Parameters
    ----------
    frame : np.ndarray [shape=(H, W, 3), dtype=uint8], writable
    text : str
    colour : tuple of int (R, G, B)
    box : array-like (x0, y0, x1, y1) in pixels, or None
    """
    import cv2
    height = frame.shape[0]
    scale = max(0.4, height / 600)
    thickness = max(1, int(round(height / 300)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    if box is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(frame, (x0, y0), (x1, y1), colour, thickness + 1)
        left, bottom = x0, y0 - 4 if y0 - th - base - 4 >= 0 else y1 + th + 4
    else:
        left, bottom = 4, th + 4
    cv2.rectangle(frame, (left, bottom - th - base), (left + tw, bottom + base // 2), (0, 0, 0), cv2.FILLED)
    cv2.putText(frame, text, (left, bottom), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


def annotate_video(path, timeline, out, *, progress=False):
    """Write ``path`` with its timeline drawn on every frame to ``out`` (H.264 + AAC audio).

    Parameters
    ----------
    path : str or os.PathLike
        The video the timeline was computed on.
    timeline : emonet.inference.timeline.Timeline
        With ``track_times`` / ``track_boxes`` (``keep_track=True``) for per-frame boxes.
    out : str or os.PathLike
        Target file; its suffix picks the container (``.mp4``, ``.mkv``...).
    progress : bool
        Progress bar (frames) on stderr.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    MediaError
        No video stream, or ffmpeg failed decoding or encoding.
    """
    from tqdm import tqdm

    out = check_annotate_target(out, path)
    info = media.probe(path)
    if not timeline.rows:
        raise MediaError(f"{path}: the timeline has no window to draw")
    rate, size = frame_rate(info), (info.width, info.height)
    labels = _Labels(timeline)
    total = int(round(info.duration * rate)) if info.duration else None
    with atomic_path(out) as tmp:
        encoder = subprocess.Popen(encoder_command(tmp, path, size, rate), stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        errors = []
        drain = threading.Thread(target=lambda: errors.append(encoder.stderr.read()), daemon=True)
        drain.start()
        written = 0
        try:
            with tqdm(total=total, unit="frame", desc="annotate", disable=not progress, file=sys.stderr) as bar:
                for block in media.iter_frames(path, fps=rate, size=size, block=FRAMES_PER_READ, info=info):
                    block = block.copy()  # the pipe's buffer is read-only
                    for frame in block:
                        draw_label(frame, *labels.at(float(written / rate)))
                        written += 1
                    encoder.stdin.write(block.tobytes())
                    bar.update(len(block))
        except BrokenPipeError:
            pass  # the encoder stopped: its error is reported below
        finally:
            try:
                encoder.stdin.close()
            except BrokenPipeError:
                pass
            returncode = encoder.wait()
            drain.join()
        if returncode:
            raise MediaError(f"{out}: ffmpeg failed encoding the annotated video ({media.ffmpeg_cause(b''.join(errors))})")
    logger.info(f"wrote {written} annotated frames to {out}")
    return out
