"""Corpora of face crops labelled by tables: FER+ (layout ``ferplus``) and FER2013 (layout ``fer2013``).

Both hold 48x48 grey faces that are already cropped, so their records carry
``face_crop=True``: extraction resizes the whole image to the crop size instead
of detecting a face (:mod:`preprocessing.images`). Neither has subjects or
speakers (unknown: the fields stay ``None``).

FER+ (Barsoum et al., 2016)
---------------------------
``FER2013Train/``, ``FER2013Valid/`` and, if present, ``FER2013Test/`` (matched
case-insensitively) -> train, val, test. Each holds the PNGs and a
``label.csv`` without header (one is tolerated): image name, face box, then
the votes of 10 raters for :data:`FERPLUS_COLUMNS` (neutral, happiness,
surprise, sadness, anger, disgust, fear, contempt, unknown, NF = not a face).
The rules, following the FER+ authors' parsing code (an image whose top vote
is unknown or not-a-face is left out; the seven emotions win ties):

- dropped: the top vote goes to unknown or NF (strictly more votes than every
  emotion), or the seven AFEW emotions have no vote at all;
- contempt has no AFEW class: its votes are left out of the soft label, and an
  image whose top vote is contempt (strictly more than any of the seven) is
  dropped;
- soft label: the votes of the seven emotions, in
  :data:`~preprocessing.constants.CLASSES` order, divided by their sum
  (single votes are kept, unlike the authors' training code, which zeroes
  them: a trainer can sharpen the distribution, not recover a vote);
- hard label: the top class among the seven when it holds at least half of
  the seven-class votes and no other class has as many; otherwise the image is
  **unlabelled** (``label=None``) and keeps only its soft label, as the FER+
  majority protocol counts such faces as unknown. So "majority labels" (the
  FER+ benchmark) are exactly the labelled clips; soft-label training can use
  every clip.

On the real data (``tests/test_face_corpora.py`` pins it): FER2013Train 28,558
PNGs -> 28,217 kept, 25,824 of them labelled (173 dropped for unknown or NF,
166 for contempt, 2 without a seven-class vote); FER2013Valid 3,579 -> 3,529
kept, 3,278 labelled (24 unknown or NF, 26 contempt).

FER2013 (Goodfellow et al., 2013; the Kaggle CSV)
-------------------------------------------------
``fer2013.csv`` at the root (or the only ``*.csv`` there) with
columns ``emotion,pixels,Usage``: emotion 0..6 in FER2013 order (Angry,
Disgust, Fear, Happy, Sad, Surprise, Neutral), ``pixels`` = 2304 space-separated
grey values of a 48x48 face, ``Usage`` Training / PublicTest / PrivateTest ->
train / val / test (all train without a Usage column; unlabelled without an
emotion). Each row is a clip: ``relpath`` ``fer2013.csv#row00012`` (0-based data
row, so row *i* is FER+'s ``fer000000i.png``), ``path`` the CSV and
``row_offset`` the byte offset of the row; the pixels are decoded at extraction
(:func:`read_fer2013_face`), not here.
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np

from preprocessing.constants import CLASSES, IMAGE_SUFFIXES
from preprocessing.errors import DatasetError, MediaError, one_line
from preprocessing.layouts import ClipRecord

#: Vote columns of a FER+ ``label.csv``, after the image name and the face box.
FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                   "contempt", "unknown", "NF")

#: FER+ split folders (lower case) -> split.
FERPLUS_FOLDERS = {"fer2013train": "train", "fer2013valid": "val", "fer2013test": "test"}

#: FER2013 emotion codes 0..6 -> class names.
FER2013_EMOTIONS = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")

#: FER2013 ``Usage`` values -> split.
FER2013_USAGES = {"training": "train", "publictest": "val", "privatetest": "test"}

#: Side in pixels of a FER2013 face.
FER2013_SIDE = 48

# class of each of the first seven FER+ vote columns
_FERPLUS_CLASSES = ("Neutral", "Happy", "Surprise", "Sad", "Angry", "Disgust", "Fear")
_ORDER = [_FERPLUS_CLASSES.index(name) for name in CLASSES]  # CLASSES position -> FER+ column


def ferplus_labels(votes):
    """Hard and soft label of one FER+ image from its ten vote counts (rules in the module docstring).

    Parameters
    ----------
    votes : sequence of 10 numbers
        Votes for :data:`FERPLUS_COLUMNS`, in that order.

    Returns
    -------
    label : str or None
        The majority class, or ``None`` without a clear majority (or when dropped).
    soft_label : tuple of 7 float or None
        Seven-class votes in :data:`~preprocessing.constants.CLASSES` order, summing to 1.
    reason : str or None
        Why the image is dropped, or ``None`` when it is kept.
    """
    seven = [float(votes[i]) for i in _ORDER]
    contempt, unknown, not_face = (float(v) for v in votes[7:10])
    emotions = max(max(seven), contempt)
    if max(unknown, not_face) > emotions:
        return None, None, f"FER+ top vote is {'unknown' if unknown >= not_face else 'not a face'}"
    total = sum(seven)
    if total <= 0:
        return None, None, "FER+ votes hold none of the 7 classes"
    if contempt > max(seven):
        return None, None, "FER+ top vote is contempt (no AFEW class)"
    top = max(seven)
    clear = 2 * top >= total and seven.count(top) == 1
    label = CLASSES[seven.index(top)] if clear else None
    return label, tuple(v / total for v in seven), None


def scan_ferplus(root):
    """Records of a FER+ root (layout ``ferplus``).

    Returns
    -------
    records : list of ClipRecord
    skipped : list of (str, str)
        Dropped images and PNGs missing from ``label.csv``, with the reason.
    n_found : int
        Images listed or found.

    Raises
    ------
    DatasetError
        No FER+ split folder, a folder without ``label.csv``, or an unreadable table.
    """
    folders = sorted(c for c in root.iterdir() if c.is_dir() and c.name.lower() in FERPLUS_FOLDERS)
    if not folders:
        raise DatasetError(f"{root}: layout 'ferplus' needs FER2013Train/, FER2013Valid/ or FER2013Test/; "
                           f"found none of them")
    records, skipped, n_found = [], [], 0
    for folder in folders:
        split = FERPLUS_FOLDERS[folder.name.lower()]
        images = {e.name for e in os.scandir(folder)
                  if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES}
        listed = set()
        for line, name, votes in _ferplus_rows(folder / "label.csv"):
            rel = f"{folder.name}/{name}"
            listed.add(name)
            n_found += 1
            if name not in images:
                skipped.append((rel, f"listed in label.csv (line {line}) but no such image"))
                continue
            label, soft, reason = ferplus_labels(votes)
            if reason:
                skipped.append((rel, reason))
                continue
            records.append(ClipRecord(path=folder / name, relpath=rel, label=label, split=split,
                                      soft_label=soft, face_crop=True))
        for name in sorted(images - listed):
            n_found += 1
            skipped.append((f"{folder.name}/{name}", "not listed in label.csv"))
    return records, skipped, n_found


def _ferplus_rows(table):
    """``(line, image name, 10 votes)`` of a FER+ ``label.csv``; a header line is skipped."""
    try:
        with open(table, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError as exc:
        raise DatasetError(f"{table}: FER+ label.csv is missing") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{table}: cannot read FER+ label.csv ({one_line(exc)})") from exc
    for line, row in enumerate(rows, start=1):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2 + len(FERPLUS_COLUMNS):
            raise DatasetError(f"{table}: line {line}: expected {2 + len(FERPLUS_COLUMNS)} columns (image, box, "
                               f"{', '.join(FERPLUS_COLUMNS)}); received {len(row)}")
        try:
            votes = [float(cell) for cell in row[2:]]
        except ValueError:
            if line == 1:  # a header
                continue
            raise DatasetError(f"{table}: line {line}: vote counts must be numbers; received {row[2:]}") from None
        if min(votes) < 0:
            raise DatasetError(f"{table}: line {line}: vote counts must be >= 0; received {row[2:]}")
        name = row[0].strip()
        if name:
            yield line, name, votes


def fer2013_table(root):
    """The FER2013 CSV of a root: ``root/fer2013.csv``, or the only ``*.csv`` in ``root``."""
    if (root / "fer2013.csv").is_file():
        return root / "fer2013.csv"
    tables = sorted(p for p in root.glob("*.csv") if p.is_file())
    if len(tables) != 1:
        raise DatasetError(f"{root}: layout 'fer2013' needs fer2013.csv (or a single *.csv) at the root; "
                           f"found {len(tables)} CSV files")
    return tables[0]


def scan_fer2013(root):
    """Records of a FER2013 CSV (layout ``fer2013``): one clip per row.

    Returns
    -------
    records : list of ClipRecord
    skipped : list of (str, str)
        Rows whose emotion is not 0..6, with the reason.
    n_found : int
        Data rows.

    Raises
    ------
    DatasetError
        Missing or unreadable CSV, no ``pixels`` column, or an unknown ``Usage``.
    """
    table = fer2013_table(root)
    try:
        with open(table, "rb") as fh:
            header = fh.readline()
            columns = _cells(header, table, 1)
            if "pixels" not in [c.lower() for c in columns]:
                raise DatasetError(f"{table}: FER2013 CSV has no 'pixels' column; received columns {columns}")
            index = {c.strip().lower(): i for i, c in enumerate(columns)}
            records, skipped, row = [], [], 0
            offset = len(header)
            for line, raw in enumerate(fh, start=2):
                start, offset = offset, offset + len(raw)
                cells = _cells(raw, table, line)
                if not any(c.strip() for c in cells):
                    continue
                rel = f"{table.name}#row{row:05d}"
                row += 1
                outcome = _fer2013_record(table, rel, start, cells, index, line)
                if isinstance(outcome, str):
                    skipped.append((rel, outcome))
                else:
                    records.append(outcome)
    except FileNotFoundError as exc:
        raise DatasetError(f"{table}: FER2013 CSV does not exist") from exc
    except OSError as exc:
        raise DatasetError(f"{table}: cannot read FER2013 CSV ({exc.strerror or one_line(exc)})") from exc
    return records, skipped, row


def _cells(raw, table, line):
    try:
        return next(csv.reader([raw.decode("utf-8-sig")]), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{table}: line {line}: cannot read FER2013 CSV ({one_line(exc)})") from exc


def _fer2013_record(table, rel, offset, cells, index, line):
    """The record of one FER2013 row, or the reason it is skipped."""
    def cell(name):
        i = index.get(name)
        return cells[i].strip() if i is not None and i < len(cells) else ""

    usage = cell("usage")
    split = FER2013_USAGES.get(usage.lower(), None) if usage else "train"
    if split is None:
        raise DatasetError(f"{table}: line {line}: Usage must be one of Training, PublicTest, PrivateTest; "
                           f"received {usage!r}")
    code = cell("emotion")
    label = None
    if code:
        if code not in {str(i) for i in range(len(FER2013_EMOTIONS))}:
            return f"FER2013 emotion {code!r} is not 0..6"
        label = FER2013_EMOTIONS[int(code)]
    return ClipRecord(path=table, relpath=rel, label=label, split=split, face_crop=True, row_offset=offset)


def read_fer2013_face(path, offset):
    """Decode the face of the FER2013 row at byte ``offset`` of ``path``.

    Returns
    -------
    np.ndarray [shape=(48, 48, 3), dtype=uint8]
        The grey face repeated on three channels (RGB).

    Raises
    ------
    MediaError
        The row cannot be read or its ``pixels`` cell is not 2304 values in 0..255.
    """
    try:
        with open(path, "rb") as fh:
            header = next(csv.reader([fh.readline().decode("utf-8-sig")]), [])
            fh.seek(offset)
            row = next(csv.reader(io.StringIO(fh.readline().decode("utf-8"))), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MediaError(f"{path}: cannot read the FER2013 row at byte {offset} ({one_line(exc)})") from exc
    columns = [c.strip().lower() for c in header]
    if "pixels" not in columns or columns.index("pixels") >= len(row):
        raise MediaError(f"{path}: the row at byte {offset} has no pixels cell")
    try:
        values = np.array(row[columns.index("pixels")].split(), dtype=np.int64)
    except ValueError:
        raise MediaError(f"{path}: the row at byte {offset}: pixels must be integers") from None
    if values.size != FER2013_SIDE ** 2 or values.min() < 0 or values.max() > 255:
        raise MediaError(f"{path}: the row at byte {offset}: pixels must be {FER2013_SIDE ** 2} values in 0..255; "
                         f"received {values.size} in {values.min(initial=0)}..{values.max(initial=0)}")
    grey = values.astype(np.uint8).reshape(FER2013_SIDE, FER2013_SIDE)
    return np.repeat(grey[:, :, None], 3, axis=2)
