"""Text renderings of timelines: a table for people, CSV rows and JSON clips for programs.

>>> print(format_timelines([timeline], "table"))                      # doctest: +SKIP

Subtitles (``.srt``, ``.vtt``) are :mod:`emonet.inference.subtitles`; the windows themselves
are :mod:`emonet.inference.timeline`.
"""

import csv
import io
import json

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError

from emonet.inference.predict import display_names

#: Output formats of timelines rendered here; subtitles are :mod:`emonet.inference.subtitles`.
TEXT_FORMATS = ("table", "csv", "json")

#: Columns of the CSV timeline. ``level`` is "window" for a window's row and "clip" for the
#: clip's label, one row after its windows, as JSON holds it beside ``windows``: ``start`` 0,
#: ``end`` the decoded duration, ``emotion`` and probabilities the clip's (the duration-weighted
#: mean of its windows, ``clip_rule`` in JSON), no box, ``face_rate`` the windows' weighted mean.
CSV_FIELDS = ("clip", "level", "start", "end", "emotion", *CLASSES, "x", "y", "w", "h", "face_rate")


def format_timelines(timelines, fmt):
    """Render timelines as "table", "csv" (window rows, then a clip row each) or "json" (clips with their windows) text.

    Clips are named by their path relative to the clips' common folder (:func:`display_names`).
    """
    if fmt not in TEXT_FORMATS:
        raise ConfigError(f"format_timelines: fmt must be one of {', '.join(TEXT_FORMATS)}; received {fmt!r}")
    names = display_names([t.clip for t in timelines])
    if fmt == "json":
        return json.dumps([t.to_dict(name) for name, t in zip(names, timelines)], indent=2)
    if fmt == "csv":
        return _csv(timelines, names)
    return _table(timelines, names)


def _number(value, digits):
    return "" if value is None else f"{value:.{digits}f}"


def _csv(timelines, names):
    """A row per window (``level`` "window"), then the clip's own row (``level`` "clip"; see :data:`CSV_FIELDS`)."""
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(CSV_FIELDS)
    for name, t in zip(names, timelines):
        for r in t.rows:
            out.writerow([name, "window", f"{r['start']:.3f}", f"{r['end']:.3f}", r["emotion"],
                          *(f"{r['probabilities'][c]:.4f}" for c in CLASSES),
                          *("" if r[k] is None else r[k] for k in "xywh"), _number(r["face_rate"], 4)])
        out.writerow([name, "clip", f"{0:.3f}", f"{t.duration:.3f}", t.emotion,
                      *(f"{t.probabilities[c]:.4f}" for c in CLASSES), "", "", "", "", _number(t.face_rate, 4)])
    return buffer.getvalue().rstrip("\n")


def _table(timelines, names):
    several = len(timelines) > 1
    width = max([len("clip")] + [len(n) for n in names])
    clip_col = f"{'clip':<{width}}  " if several else ""
    header = (clip_col + f"{'start':>8} {'end':>8}  {'emotion':<8}  " + " ".join(f"{c:>8}" for c in CLASSES)
              + f"  {'face':>5}  box (x,y,w,h)")
    lines = [header, "-" * len(header)]
    for name, t in zip(names, timelines):
        for r in t.rows:
            box = "" if r["x"] is None else f"{r['x']},{r['y']},{r['w']},{r['h']}"
            lines.append((f"{name:<{width}}  " if several else "") + f"{r['start']:>8.2f} {r['end']:>8.2f}  "
                         f"{r['emotion']:<8}  " + " ".join(f"{r['probabilities'][c]:>8.2f}" for c in CLASSES)
                         + f"  {_number(r['face_rate'], 2):>5}  {box}")
    lines += [""] + [clip_line(name, t) for name, t in zip(names, timelines)]
    return "\n".join(lines)


def clip_line(name, timeline):
    """One line naming a clip's label: ``<name>: Happy 0.45 (59 windows of 2 s every 1 s; duration-weighted mean)``."""
    t = timeline
    return (f"{name}: {t.emotion} {t.probabilities[t.emotion]:.2f} ({len(t.rows)} window{'' if len(t.rows) == 1 else 's'} of {t.window:g} s "
            f"every {t.hop:g} s over {t.duration:.1f} s; duration-weighted mean)")
