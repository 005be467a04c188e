"""The output file of ``emonet predict -o FILE``, kept on disk batch by batch, and ``--resume``.

While clips are classified, each batch's rows go to a journal beside the output,
``FILE.partial`` (:func:`journal_path`; JSON Lines, one :data:`OUTPUT_FIELDS` row per line,
flushed and synced per batch). When the batch ends, FILE is written whole in its format
(temporary file and rename) and the journal deleted. A run killed at any moment leaves
FILE as it was and the journal with every batch it finished (at most its last line torn,
which a reader drops); ``--resume`` carries on from the journal, or from a finished FILE,
skipping the clips already there (matched by their name in the output).

Examples
--------
>>> journal = OutputJournal.open("out.csv", "csv", resume=True)    # doctest: +SKIP
>>> journal.append(rows); journal.finish()                         # doctest: +SKIP
"""

import csv
import io
import json
import logging
import os
from pathlib import Path

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError
from preprocessing.files import atomic_write_text, fsync_path

from emonet.inference.predict import (OUTPUT_FIELDS, check_output_file, display_names, format_rows, output_rows,
                                      predict_clips)

logger = logging.getLogger(__name__)

#: Formats that ``--resume`` can read back (a table is for reading by people).
RESUMABLE_FORMATS = ("json", "csv")


def journal_path(output):
    """Where ``emonet predict -o FILE`` keeps its rows while it runs: ``FILE.partial`` (JSON Lines)."""
    output = Path(output)
    return output.with_name(output.name + ".partial")


def _typed_csv_row(record, path):
    """A CSV output row read back: probabilities and face rate as floats, has_audio as bool."""
    try:
        return {"clip": record["clip"], "emotion": record["emotion"],
                **{c: float(record[c]) for c in CLASSES},
                "has_audio": {"true": True, "false": False}[record["has_audio"].strip().lower()],
                "face_rate": float(record["face_rate"]) if record["face_rate"].strip() else None}
    except (KeyError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path}: not an output of emonet predict --format csv "
                          f"(bad row for clip {record.get('clip')!r}: {exc!r})") from None


def read_output(path, fmt):
    """The rows of an output file written by ``emonet predict --format csv|json`` (for ``--resume``).

    Raises
    ------
    ConfigError
        The file is not such an output (not parseable, or fields missing): its name and the cause.
    """
    path = Path(path)
    if fmt not in RESUMABLE_FORMATS:
        raise ConfigError(f"--resume needs --format {' or '.join(RESUMABLE_FORMATS)}; a {fmt} is not read back")
    text = path.read_text(encoding="utf-8")
    if fmt == "json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not an output of emonet predict --format json ({exc})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ConfigError(f"{path}: not an output of emonet predict --format json (not a list of objects)")
        missing = sorted({f for r in rows for f in OUTPUT_FIELDS if f not in r})
    else:
        reader = csv.DictReader(io.StringIO(text))
        missing = [f for f in OUTPUT_FIELDS if f not in (reader.fieldnames or ())]
        rows = [] if missing else [_typed_csv_row(record, path) for record in reader]
    if missing:
        raise ConfigError(f"{path}: not an output of emonet predict --format {fmt} "
                          f"(missing fields: {', '.join(missing)})")
    return [{f: r[f] for f in OUTPUT_FIELDS} for r in rows]


def _read_journal(path):
    """Rows of a journal, and the byte length of its complete lines (a torn last line is not counted).

    Only the last line can be torn (a process killed while appending); any other bad line
    means the file is not a journal: :class:`ConfigError`.
    """
    data = Path(path).read_bytes()
    complete = data[:data.rfind(b"\n") + 1]
    rows = []
    for number, line in enumerate(complete.decode("utf-8", "replace").splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict) or any(f not in row for f in OUTPUT_FIELDS):
            raise ConfigError(f"{path}: line {number} is not a prediction of emonet predict; "
                              f"move the file away to start again")
        rows.append(row)
    return rows, len(complete)


class OutputJournal:
    """The rows of an ``emonet predict -o FILE`` run (csv or json), on disk as soon as classified.

    Each batch's rows are appended to :func:`journal_path` (``FILE.partial``, one JSON
    object per line: an :data:`OUTPUT_FIELDS` row), flushed and synced to disk; a killed
    run keeps every batch it finished, and a line torn by the kill is dropped when the
    journal is read again. :meth:`finish` writes FILE whole in its format from every row
    (temporary file and rename: FILE holds its old content or the new one, never a part)
    and deletes the journal. The journal always holds every row FILE will get: a resumed
    run starts it from FILE's rows when FILE exists and no journal does.

    Use :meth:`open`; ``__init__`` only stores what it is given.

    Parameters
    ----------
    output : pathlib.Path
    fmt : str
        One of :data:`RESUMABLE_FORMATS`.
    rows : list of dict
        The rows already in the journal.
    file : file object
        The journal, open for appending.
    """

    def __init__(self, output, fmt, rows, file):
        self.output, self.fmt, self.rows, self.file = output, fmt, rows, file
        self.path = journal_path(output)

    @classmethod
    def open(cls, output, fmt, *, resume=False):
        """Start (or with ``resume``, continue) the journal of ``output``; cheap, before any model loads.

        Raises
        ------
        ConfigError
            ``fmt`` cannot be read back; a journal exists but ``resume`` is false (an
            interrupted run: the user says whether to finish it); an existing output or
            journal that cannot be read.
        """
        output = check_output_file(output)
        path = journal_path(output)
        if fmt not in RESUMABLE_FORMATS:
            raise ConfigError(f"an output kept batch by batch must be {' or '.join(RESUMABLE_FORMATS)} "
                              f"(read back by --resume); received {fmt!r}")
        if path.exists() and not resume:
            raise ConfigError(f"{path}: holds the predictions of an interrupted run; pass --resume to finish "
                              f"it, or delete the file to start again")
        rows, seed = [], []
        if path.exists():
            rows, length = _read_journal(path)
            with open(path, "r+b") as file:  # drop a line torn by a kill before appending after it
                file.truncate(length)
        elif resume and output.exists():
            seed = read_output(output, fmt)  # a finished output continued: the journal starts with its rows
        journal = cls(output, fmt, rows, open(path, "a", encoding="utf-8"))
        journal.append(seed)
        fsync_path(output.parent)  # the journal's name is on disk too
        return journal

    @property
    def done(self):
        """Clip names already in the output."""
        return {r["clip"] for r in self.rows}

    def append(self, rows):
        """Add output rows; they are on disk when this returns."""
        rows = list(rows)
        self.file.write("".join(json.dumps(r) + "\n" for r in rows))
        self.file.flush()
        os.fsync(self.file.fileno())
        self.rows.extend(rows)

    def close(self):
        """Close the journal of an interrupted run: kept when it holds rows (``--resume`` continues
        it), deleted when empty (nothing to resume). Returns whether it was kept."""
        self.file.close()
        if not self.rows:
            self.path.unlink(missing_ok=True)
        return bool(self.rows)

    def finish(self):
        """Write the output whole from every row, delete the journal; returns the rows."""
        self.file.close()
        atomic_write_text(self.output, format_rows(self.rows, self.fmt) + "\n")
        self.path.unlink(missing_ok=True)
        return self.rows


def predict_into_file(clips, output, fmt, *, model=None, resume=False, batch_size=16, progress=True, workers=0):
    """Classify clips into an output file (csv or json), keeping each batch on disk as it is done.

    Parameters
    ----------
    clips : list of os.PathLike
        From :func:`~emonet.inference.predict.expand_clips`; named in the output by
        :func:`~emonet.inference.predict.display_names` of all of them.
    output : os.PathLike
    fmt : str
        One of :data:`RESUMABLE_FORMATS`.
    model : os.PathLike, optional
        A run folder; default: the shipped emonet-base (loaded only if a clip is left to classify).
    resume : bool
        Skip the clips already in the journal or, without one, in a finished ``output``.
    batch_size, progress, workers
        As for :func:`~emonet.inference.predict.predict_clips`.

    Returns
    -------
    rows : list of dict
        Every row now in ``output`` (:func:`~emonet.inference.predict.output_rows`).
    failures : list of tuple (str, str)
        (path, one-line reason) of the clips skipped by this run.

    Raises
    ------
    ConfigError
        See :meth:`OutputJournal.open`; raised before any model loads.
    """
    names = dict(zip(map(str, clips), display_names(clips)))
    journal = OutputJournal.open(output, fmt, resume=resume)
    todo = [c for c in clips if names[str(c)] not in journal.done]
    if len(todo) < len(clips):
        logger.info(f"resuming {output}: {len(clips) - len(todo)} of {len(clips)} clips done, "
                    f"classifying {len(todo)}")
    failures = []
    try:
        if todo:
            _, failures = predict_clips(todo, model, batch_size=batch_size, progress=progress, workers=workers,
                                        on_batch=lambda batch: journal.append(output_rows(batch, names)))
    except BaseException:
        if journal.close():
            logger.warning(f"{len(journal.rows)} predictions kept in {journal.path}: run again with --resume "
                           f"to finish")
        raise
    return journal.finish(), failures
