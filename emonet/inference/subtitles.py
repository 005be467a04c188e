"""Subtitle files of a timeline: SubRip (``.srt``) and WebVTT (``.vtt``).

One cue per window, its text the window's emotion and probability (``Happy 0.71``). Cues
span the time during which their window is the current one
(:func:`current_spans`: from midpoint to midpoint between window centres), so they follow each other without overlapping; with ``hop == window``
they are the windows themselves.

>>> print(format_subtitles([{"start": 0.0, "end": 2.0, "emotion": "Happy",
...                          "probabilities": {"Happy": 0.712}}], "srt"))
1
00:00:00,000 --> 00:00:02,000
Happy 0.71
<BLANKLINE>

Several clips: one file each, named by :func:`subtitle_paths` beside the ``-o`` path.

This module imports nothing heavy, so the command line can read :data:`SUBTITLE_FORMATS`
while building its parser.
"""

from preprocessing.errors import ConfigError

#: Subtitle output formats (``emonet predict --window --format srt``).
SUBTITLE_FORMATS = ("srt", "vtt")


def timestamp(seconds, *, decimal=","):
    """``HH:MM:SS,mmm`` (SubRip; ``decimal="."`` for WebVTT) of a time in seconds, rounded to the millisecond."""
    ms = max(0, int(round(seconds * 1000)))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def cue_text(row):
    """``"<emotion> <probability>"`` of a timeline row, e.g. ``"Happy 0.71"``."""
    return f"{row['emotion']} {row['probabilities'][row['emotion']]:.2f}"


def current_spans(rows):
    """When each window is the current one: ``(start, end)`` seconds per row, back to back.

    The current window at time ``t`` is the one whose centre is nearest ``t``: the
    boundaries are the midpoints between consecutive window centres; the first span starts
    with the first window and the last ends with the last. With ``hop == window`` these are
    the windows themselves. The cues here and the labels of the annotated video
    (:mod:`emonet.inference.annotate`) follow this rule.
    """
    if not rows:
        return []
    centres = [(r["start"] + r["end"]) / 2 for r in rows]
    cuts = [(a + b) / 2 for a, b in zip(centres, centres[1:])]
    return list(zip([rows[0]["start"]] + cuts, cuts + [rows[-1]["end"]]))


def format_subtitles(rows, fmt):
    """The rows of one timeline as SubRip (``"srt"``) or WebVTT (``"vtt"``) text.

    Parameters
    ----------
    rows : list of dict
        Timeline rows (``start``, ``end`` in seconds, ``emotion``, ``probabilities``), in time order.
    fmt : str
        One of :data:`SUBTITLE_FORMATS`.

    Returns
    -------
    str
        SubRip: numbered cues ``1``, ``00:00:02,000 --> 00:00:04,000``, text, blank line.
        WebVTT: the ``WEBVTT`` header, then cues ``00:00:02.000 --> 00:00:04.000``, text.
    """
    if fmt not in SUBTITLE_FORMATS:
        raise ConfigError(f"format_subtitles: fmt must be one of {', '.join(SUBTITLE_FORMATS)}; received {fmt!r}")
    decimal = "," if fmt == "srt" else "."
    blocks = ["WEBVTT\n"] if fmt == "vtt" else []
    for number, ((start, end), row) in enumerate(zip(current_spans(rows), rows), 1):
        times = f"{timestamp(start, decimal=decimal)} --> {timestamp(end, decimal=decimal)}"
        text = cue_text(row)
        blocks.append(f"{number}\n{times}\n{text}\n" if fmt == "srt" else f"{times}\n{text}\n")
    return "\n".join(blocks)


def subtitle_paths(output, names, fmt="srt"):
    """Subtitle file of each clip when several are written: beside ``output``, ``<stem>.<clip name>.<suffix>``.

    ``emonet predict a.mp4 talks/b.mp4 --window 2 -f srt -o subs.srt`` writes ``subs.a.srt`` and
    ``subs.talks_b.srt``: the clip's name (its path relative to the clips' common folder) without
    its suffix, ``/`` replaced by ``_``. Two clips differing only by suffix (``a.mp4``, ``a.wav``)
    keep it (``subs.a.mp4.srt``, ``subs.a.wav.srt``) so no file is overwritten.

    Parameters
    ----------
    output : os.PathLike
        The ``-o`` path; its suffix (``.srt`` or ``.vtt``) is each file's.
    names : list of str
        The clips' display names (POSIX relative paths).
    fmt : str
        The suffix when ``output`` has none.

    Returns
    -------
    list of pathlib.Path
    """
    from pathlib import Path, PurePosixPath
    output = Path(output)
    plain = [str(PurePosixPath(n).with_suffix("")).replace("/", "_") for n in names]
    full = [n.replace("/", "_") for n in names]
    unique = [p if plain.count(p) == 1 else f for p, f in zip(plain, full)]
    suffix = output.suffix or f".{fmt}"
    return [output.with_name(f"{output.stem}.{u}{suffix}") for u in unique]
