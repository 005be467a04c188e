"""Dataset folders -> manifests: which clip, which label, which split, who is in it.

An *adapter* reads a dataset folder (or a CSV listing) and returns a
:class:`Manifest`: a sorted list of :class:`ClipRecord` plus the files it
skipped and why. Adapters look at names only; nothing is decoded here, so
building a manifest of thousands of clips takes milliseconds and a corrupt clip
is the extraction job's business, not this module's.

Layouts (:data:`LAYOUTS`)
-------------------------
``"afew"``
    ``Train_AFEW/<Emotion>/*`` -> train, ``Val_AFEW/<Emotion>/*`` -> val,
    ``Test_AFEW/*`` -> test, unlabelled (as EmotiW ships it) unless a clip sits
    in an emotion folder (``Test_AFEW/<Emotion>/*``, a labelled test set). An
    optional ``manifest.csv`` at the root (columns ``path``, ``label``, ``face``
    or ``subject``, ``speaker``) adds face subjects and speakers; the folders
    still decide label and split.
``"crema_d"``
    ``AAAA_SSS_EEE_LL.<ext>`` (e.g. ``1001_DFA_ANG_XX.flv``); speaker = actor.
``"ravdess"``
    ``MM-VV-EE-II-SS-RR-AA.<ext>``; ``calm`` (EE=02) is mapped to Neutral.
``"mead"``
    ``M030_front_angry_level3_001.mp4``, ``M030/video/front/angry/level_3/001.mp4``
    or bare ``happy.mp4``; ``contempt`` is skipped.
``"csv"``
    A CSV listing (``path`` required; ``label``, ``split``, ``speaker``,
    ``subject``/``face`` optional), as written by :func:`write_manifest_csv`.
``"folder"``
    Generic ``<Emotion>/*``, everything in the train split.

Rules shared by every layout
----------------------------
- Splits are normalised to ``"train"``, ``"val"``, ``"test"`` (:data:`SPLITS`).
- Labels are one of :data:`~preprocessing.constants.CLASSES` or ``None``
  (unlabelled, e.g. ``Test_AFEW``); clips whose label has no AFEW class
  (``contempt``, unknown names) are skipped and listed in
  :attr:`Manifest.skipped` with the reason.
- Folder scans are recursive, follow symbolic links once, recognise
  :data:`MEDIA_SUFFIXES` case-insensitively and ignore hidden files and
  folders (names starting with ``"."``). Other files are ignored silently.
- ``relpath`` is the POSIX path relative to the dataset root and is the clip's
  key in the feature store; records are sorted by it, so a manifest is the same
  on every run and every machine.
- Corpora without predefined splits (CREMA-D, RAVDESS, MEAD) come back all in
  ``"train"``; :func:`assign_speaker_splits` makes a speaker-independent
  train/val split from them.
"""

from __future__ import annotations

import contextlib
import csv
import os
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from preprocessing.constants import AUDIO_SUFFIXES, CLASSES, VIDEO_SUFFIXES, normalise_label
from preprocessing.errors import DatasetError, one_line

#: Layout names accepted by :func:`build_manifest`.
LAYOUTS = ("afew", "crema_d", "ravdess", "mead", "csv", "folder")

#: Normalised split names, in this order everywhere.
SPLITS = ("train", "val", "test")

#: File suffixes (lower case) a folder scan treats as clips.
MEDIA_SUFFIXES = VIDEO_SUFFIXES + AUDIO_SUFFIXES

#: File name of the optional listing at a dataset root (``afew`` and ``csv`` layouts).
MANIFEST_NAME = "manifest.csv"

#: Columns written by :func:`write_manifest_csv`, in this order.
CSV_COLUMNS = ("path", "label", "split", "speaker", "subject")

#: Spellings of split names met in corpora and listings, mapped onto :data:`SPLITS`.
SPLIT_ALIASES = {
    "train": "train", "training": "train", "train_afew": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val", "val_afew": "val",
    "test": "test", "testing": "test", "test_afew": "test",
}

# AFEW split folders (matched case-insensitively).
_AFEW_FOLDERS = {"train_afew": "train", "val_afew": "val", "test_afew": "test"}

# CREMA-D: ActorID_Sentence_Emotion_Level, e.g. 1001_DFA_ANG_XX.
_CREMA_NAME = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Za-z]{3})_(?P<emotion>[A-Za-z]{3})_(?P<level>[A-Za-z]{2})$")
_CREMA_EMOTIONS = {"ANG": "Angry", "DIS": "Disgust", "FEA": "Fear", "HAP": "Happy", "NEU": "Neutral", "SAD": "Sad"}

# RAVDESS: Modality-VocalChannel-Emotion-Intensity-Statement-Repetition-Actor.
_RAVDESS_NAME = re.compile(
    r"^(?P<modality>0[1-3])-(?P<channel>0[12])-(?P<emotion>\d{2})-(?P<intensity>0[12])"
    r"-(?P<statement>0[12])-(?P<repetition>0[12])-(?P<actor>\d{2})$"
)
_RAVDESS_EMOTIONS = {
    "01": "Neutral", "02": "Neutral",  # 02 is "calm": no AFEW class, closest is Neutral
    "03": "Happy", "04": "Sad", "05": "Angry", "06": "Fear", "07": "Disgust", "08": "Surprise",
}

# MEAD: speaker tokens M### / W###; names split on separators into tokens.
_MEAD_SPEAKER = re.compile(r"^[MW]\d{3}$", re.IGNORECASE)
_TOKEN_SEPARATORS = re.compile(r"[/_\-\s.]+")

# Emotions some corpora have that map to no AFEW class.
_UNMAPPED_EMOTIONS = ("contempt",)


@dataclass(frozen=True)
class ClipRecord:
    """One clip of a dataset.

    Attributes
    ----------
    path : pathlib.Path
        Absolute path of the clip file. It may not exist for clips listed in a
        CSV; the extraction job reports those per file.
    relpath : str
        POSIX path relative to the dataset root (the absolute POSIX path for a
        CSV entry outside the root); the clip's key in the feature store.
    label : str or None
        One of :data:`~preprocessing.constants.CLASSES`, or ``None`` when
        unknown (e.g. ``Test_AFEW``).
    split : str
        One of :data:`SPLITS`.
    speaker : str or None
        Whose voice is in the clip, when known.
    subject : str or None
        Whose face is in the clip, when known; equal to ``speaker`` for
        single-person corpora (CREMA-D, RAVDESS, MEAD).
    """

    path: Path
    relpath: str
    label: str | None
    split: str
    speaker: str | None = None
    subject: str | None = None

    def __post_init__(self):
        if not self.relpath:
            raise DatasetError(f"{self.path}: ClipRecord.relpath must be a non-empty string; received {self.relpath!r}")
        if self.label is not None and self.label not in CLASSES:
            raise DatasetError(
                f"{self.relpath}: ClipRecord.label must be one of {', '.join(CLASSES)} or None; received {self.label!r}"
            )
        if self.split not in SPLITS:
            raise DatasetError(f"{self.relpath}: ClipRecord.split must be one of {', '.join(SPLITS)}; received {self.split!r}")


@dataclass
class Manifest:
    """The clips of a dataset and the files that were left out.

    Attributes
    ----------
    records : list of ClipRecord
        Usable clips, sorted by ``relpath``.
    skipped : list of (str, str)
        ``(relpath, reason)`` for each media file left out (e.g. contempt),
        sorted by ``relpath``.
    root : pathlib.Path or None
        Absolute dataset root the manifest was built from.
    layout : str or None
        Layout name the manifest was built with.
    """

    records: list[ClipRecord]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    root: Path | None = None
    layout: str | None = None

    def __len__(self):
        return len(self.records)

    def __iter__(self) -> Iterator[ClipRecord]:
        return iter(self.records)

    def _select(self, split):
        if split is None:
            return self.records
        return self.by_split(split)

    def by_split(self, split):
        """Records of one split.

        Parameters
        ----------
        split : str
            One of :data:`SPLITS`.

        Returns
        -------
        list of ClipRecord
        """
        if split not in SPLITS:
            raise DatasetError(f"split must be one of {', '.join(SPLITS)}; received {split!r}")
        return [r for r in self.records if r.split == split]

    def speakers(self, split=None):
        """Known speakers (``None`` left out), of one split or of all records.

        Returns
        -------
        set of str
        """
        return {r.speaker for r in self._select(split) if r.speaker is not None}

    def subjects(self, split=None):
        """Known face subjects (``None`` left out), of one split or of all records.

        Returns
        -------
        set of str
        """
        return {r.subject for r in self._select(split) if r.subject is not None}

    def label_counts(self, split=None):
        """Clips per class, in :data:`~preprocessing.constants.CLASSES` order.

        Unlabelled clips are not counted.

        Returns
        -------
        dict of str to int
            Every class is a key, zero counts included.
        """
        counts = Counter(r.label for r in self._select(split) if r.label is not None)
        return {name: counts.get(name, 0) for name in CLASSES}

    def describe(self):
        """One line summarising the manifest, e.g. ``735 clips (train 560, val 175), 0 skipped``."""
        per_split = Counter(r.split for r in self.records)
        parts = ", ".join(f"{s} {per_split[s]}" for s in SPLITS if per_split[s])
        return f"{len(self.records)} clips ({parts or 'none'}), {len(self.skipped)} skipped"


def normalise_split(name):
    """Map a split name onto :data:`SPLITS`.

    Parameters
    ----------
    name : str
        Any spelling in :data:`SPLIT_ALIASES` (case-insensitive), e.g.
        ``"Train_AFEW"``, ``"validation"``, ``"dev"``.

    Returns
    -------
    str or None
        ``"train"``, ``"val"`` or ``"test"``, or ``None`` if unknown.
    """
    return SPLIT_ALIASES.get(str(name).strip().lower())


def build_manifest(root, *, layout="afew", csv_path=None):
    """Read a dataset folder into a :class:`Manifest`.

    Parameters
    ----------
    root : str or os.PathLike
        Dataset root folder.
    layout : str
        One of :data:`LAYOUTS` (see the module docstring).
    csv_path : str or os.PathLike, optional
        Only for ``layout="csv"`` (default ``root/manifest.csv``) and
        ``layout="afew"`` (default: ``root/manifest.csv`` if it exists).
        Relative ``path`` cells are relative to ``root``; absolute ones are
        allowed and may point outside ``root`` (their ``relpath`` is then the
        absolute POSIX path). Listed files that do not exist are kept: the
        extraction job reports them per file.

    Returns
    -------
    Manifest
        Records sorted by ``relpath``; ``skipped`` lists media files whose
        label has no class, with the reason.

    Raises
    ------
    DatasetError
        If the layout is unknown, the root is missing or not a folder, the
        AFEW split folders are all absent, no media file is found, no file has
        a usable label, or a CSV is unreadable, lacks a ``path`` column, lists a
        path twice, has an unknown split or disagrees with an AFEW folder label.

    Examples
    --------
    >>> m = build_manifest("/work/shared/data/composite", layout="afew")  # doctest: +SKIP
    >>> m.describe()  # doctest: +SKIP
    '735 clips (train 560, val 175), 0 skipped'
    """
    if layout not in LAYOUTS:
        raise DatasetError(f"layout must be one of {', '.join(LAYOUTS)}; received {layout!r}")
    root = _check_root(root)
    if csv_path is not None and layout not in ("csv", "afew"):
        raise DatasetError(f"csv_path only applies to layouts 'csv' and 'afew'; received csv_path={str(csv_path)!r} with layout={layout!r}")

    if layout == "csv":
        records, skipped = _scan_csv(root, Path(csv_path) if csv_path is not None else root / MANIFEST_NAME)
        n_found = len(records) + len(skipped)
    else:
        if layout == "afew":
            files = _afew_files(root)
        else:
            files = [(path, rel, None) for path, rel in _media_files(root, root)]
        if not files:
            raise DatasetError(
                f"{root}: no media files found for layout {layout!r} (suffixes {' '.join(MEDIA_SUFFIXES)}; hidden files ignored)"
            )
        scan = {"afew": _label_afew, "crema_d": _label_crema_d, "ravdess": _label_ravdess,
                "mead": _label_mead, "folder": _label_folder}[layout]
        records, skipped = [], []
        for path, rel, split in files:
            outcome = scan(path, rel, split)
            if isinstance(outcome, str):
                skipped.append((rel, outcome))
            else:
                records.append(outcome)
        n_found = len(files)
        if layout == "afew":
            overlay = Path(csv_path) if csv_path is not None else root / MANIFEST_NAME
            if csv_path is not None or overlay.is_file():
                records = _apply_afew_overlay(records, root, overlay)

    if not records:
        rel, reason = skipped[0]
        raise DatasetError(
            f"{root}: layout {layout!r} found {n_found} {'listed clips' if layout == 'csv' else 'media files'} "
            f"but no usable clip; first skipped: {rel}: {reason}"
        )
    records.sort(key=lambda r: r.relpath)
    skipped.sort()
    return Manifest(records=records, skipped=skipped, root=root, layout=layout)


def assign_speaker_splits(manifest, *, val_fraction=0.2, seed=0):
    """Split a manifest into train/val by whole speakers.

    Speakers are sorted, shuffled with ``random.Random(seed)`` and the first
    ``round(val_fraction * n_speakers)`` (at least 1, at most ``n - 1``) go to
    val; no speaker is in both splits. Records in ``"test"`` keep their split.
    For single-person corpora (subject == speaker) this is also
    subject-independent; when faces and voices come from different people it
    says nothing about subjects.

    Parameters
    ----------
    manifest : Manifest
        Every non-test record needs a speaker.
    val_fraction : float
        Fraction of *speakers* (not clips) put in val, in (0, 1).
    seed : int
        Seed of the shuffle; the same seed gives the same split everywhere.

    Returns
    -------
    Manifest
        A new manifest with the same records (same order) and ``skipped``;
        the input is not changed.

    Raises
    ------
    DatasetError
        If ``val_fraction`` is outside (0, 1), a record has no speaker, or
        there are fewer than 2 speakers.

    Examples
    --------
    >>> m = assign_speaker_splits(build_manifest(root, layout="ravdess"), val_fraction=0.2)  # doctest: +SKIP
    >>> m.speakers("train") & m.speakers("val")  # doctest: +SKIP
    set()
    """
    if not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise DatasetError(f"val_fraction must be a number in (0, 1); received {val_fraction!r}")
    movable = [r for r in manifest.records if r.split != "test"]
    missing = [r for r in movable if r.speaker is None]
    if missing:
        raise DatasetError(
            f"{missing[0].relpath}: a speaker-independent split needs a speaker for every clip; "
            f"{len(missing)} of {len(movable)} clips have none"
        )
    speakers = sorted({r.speaker for r in movable})
    if len(speakers) < 2:
        raise DatasetError(f"a speaker-independent split needs at least 2 speakers; received {len(speakers)} ({speakers})")
    n_val = min(len(speakers) - 1, max(1, round(val_fraction * len(speakers))))
    order = list(speakers)
    random.Random(seed).shuffle(order)
    val_speakers = set(order[:n_val])
    records = [
        r if r.split == "test" else replace(r, split="val" if r.speaker in val_speakers else "train")
        for r in manifest.records
    ]
    return Manifest(records=records, skipped=list(manifest.skipped), root=manifest.root, layout=manifest.layout)


def write_manifest_csv(manifest, path):
    """Write a manifest as CSV that ``build_manifest(root, layout="csv")`` reads back.

    Columns are :data:`CSV_COLUMNS`; ``path`` holds ``relpath``, so write the
    file at the dataset root (``root/manifest.csv``) or pass it as ``csv_path``
    with the same root. ``None`` is written as an empty cell. Skipped files are
    not written. The file is written to a temporary name and renamed, so a
    reader never sees half of it.

    Parameters
    ----------
    manifest : Manifest
    path : str or os.PathLike
        Output CSV file (UTF-8).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    DatasetError
        If the file cannot be written.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(CSV_COLUMNS)
            for r in manifest.records:
                writer.writerow([r.relpath, r.label or "", r.split, r.speaker or "", r.subject or ""])
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise DatasetError(f"{path}: cannot write manifest CSV ({exc.strerror or one_line(exc)})") from exc
    return path


# --------------------------------------------------------------------------- scanning


def _check_root(root):
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: dataset root does not exist")
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root is not a directory")
    return root.resolve()


def _raise_walk_error(exc):
    raise DatasetError(f"{exc.filename}: cannot list directory ({exc.strerror})") from exc


def _media_files(directory, root):
    """List ``(path, relpath)`` of media files under ``directory``, recursively.

    Hidden files and folders are ignored; symbolic links to folders are
    followed, each real folder visited once.
    """
    found, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(directory, onerror=_raise_walk_error, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in MEDIA_SUFFIXES:
                continue
            path = Path(dirpath, name)
            found.append((path, path.relative_to(root).as_posix()))
    return found


def _afew_files(root):
    folders = sorted(c for c in root.iterdir() if c.is_dir() and c.name.lower() in _AFEW_FOLDERS)
    if not folders:
        raise DatasetError(f"{root}: layout 'afew' needs Train_AFEW/, Val_AFEW/ or Test_AFEW/; found none of them")
    return [
        (path, rel, _AFEW_FOLDERS[folder.name.lower()])
        for folder in folders
        for path, rel in _media_files(folder, root)
    ]


def _label_from_folder(path, rel, split, depth):
    """Record labelled by the folder at ``depth`` of ``rel``, or the reason it is skipped."""
    parts = rel.split("/")
    if len(parts) < depth + 2:
        return "not inside an emotion folder"
    label = normalise_label(parts[depth])
    if label is None:
        return f"folder {parts[depth]!r} is not one of the 7 classes"
    return ClipRecord(path=path, relpath=rel, label=label, split=split)


def _label_afew(path, rel, split):
    if split == "test":
        parts = rel.split("/")
        label = normalise_label(parts[1]) if len(parts) >= 3 else None
        return ClipRecord(path=path, relpath=rel, label=label, split="test")
    return _label_from_folder(path, rel, split, depth=1)


def _label_folder(path, rel, split):
    return _label_from_folder(path, rel, "train", depth=0)


def _label_crema_d(path, rel, split):
    match = _CREMA_NAME.match(PurePosixPath(rel).stem)
    if match is None:
        return "name does not match CREMA-D AAAA_SSS_EEE_LL"
    code = match["emotion"].upper()
    if code not in _CREMA_EMOTIONS:
        return f"CREMA-D emotion {code!r} is not one of {' '.join(_CREMA_EMOTIONS)}"
    actor = match["actor"]
    return ClipRecord(path=path, relpath=rel, label=_CREMA_EMOTIONS[code], split="train", speaker=actor, subject=actor)


def _label_ravdess(path, rel, split):
    match = _RAVDESS_NAME.match(PurePosixPath(rel).stem)
    if match is None:
        return "name does not match RAVDESS MM-VV-EE-II-SS-RR-AA"
    code = match["emotion"]
    if code not in _RAVDESS_EMOTIONS:
        return f"RAVDESS emotion code {code!r} is not 01-08"
    actor = match["actor"]
    return ClipRecord(path=path, relpath=rel, label=_RAVDESS_EMOTIONS[code], split="train", speaker=actor, subject=actor)


def _label_mead(path, rel, split):
    tokens = [t for t in _TOKEN_SEPARATORS.split(str(PurePosixPath(rel).with_suffix(""))) if t]
    speaker = next((t.upper() for t in tokens if _MEAD_SPEAKER.match(t)), None)
    labels = {normalise_label(t) for t in tokens} - {None}
    unmapped = sorted({t.lower() for t in tokens if t.lower() in _UNMAPPED_EMOTIONS})
    if len(labels) + len(unmapped) > 1:
        return f"ambiguous emotion: name has {', '.join(sorted(labels) + unmapped)}"
    if unmapped:
        return f"label {unmapped[0]!r} is not one of the 7 classes"
    if not labels:
        return "no emotion in the name"
    return ClipRecord(path=path, relpath=rel, label=labels.pop(), split="train", speaker=speaker, subject=speaker)


# --------------------------------------------------------------------------- CSV


def _read_csv(csv_path):
    """Rows of a manifest CSV as ``(line_number, {lower-case column: stripped cell})``."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            rows = [(reader.line_num, row) for row in reader]
    except FileNotFoundError as exc:
        raise DatasetError(f"{csv_path}: manifest CSV does not exist") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{csv_path}: cannot read manifest CSV ({one_line(exc)})") from exc
    if header is None:
        raise DatasetError(f"{csv_path}: manifest CSV is empty; expected a header with a 'path' column")
    columns = [h.strip().lower() for h in header]
    if "path" not in columns:
        raise DatasetError(f"{csv_path}: manifest CSV has no 'path' column; received columns {columns}")
    return [
        (line, {col: cell.strip() for col, cell in zip(columns, row)})
        for line, row in rows
        if any(cell.strip() for cell in row)
    ]


def _listed_path(raw, root):
    """Absolute path and relpath of a CSV ``path`` cell (relative to ``root`` or absolute)."""
    full = Path(os.path.normpath(root / raw))
    try:
        return full, full.relative_to(root).as_posix()
    except ValueError:
        return full, full.as_posix()


def _scan_csv(root, csv_path):
    rows = _read_csv(csv_path)
    if not rows:
        raise DatasetError(f"{csv_path}: manifest CSV lists no clips")
    records, skipped, seen = [], [], set()
    for line, row in rows:
        raw_path = row.get("path", "")
        if not raw_path:
            raise DatasetError(f"{csv_path}: line {line}: empty 'path' cell")
        path, rel = _listed_path(raw_path, root)
        if rel in seen:
            raise DatasetError(f"{csv_path}: line {line}: {rel} is listed twice")
        seen.add(rel)
        raw_split = row.get("split", "")
        split = normalise_split(raw_split) if raw_split else "train"
        if split is None:
            raise DatasetError(
                f"{csv_path}: line {line}: split must be one of {', '.join(SPLIT_ALIASES)}; received {raw_split!r}"
            )
        raw_label = row.get("label", "")
        label = normalise_label(raw_label) if raw_label else None
        if raw_label and label is None:
            skipped.append((rel, f"label {raw_label!r} is not one of the 7 classes"))
            continue
        records.append(ClipRecord(
            path=path, relpath=rel, label=label, split=split,
            speaker=row.get("speaker") or None,
            subject=row.get("subject") or row.get("face") or None,
        ))
    return records, skipped


def _apply_afew_overlay(records, root, csv_path):
    """Add speakers and face subjects from an AFEW root's CSV; labels must agree."""
    listed = {}
    for line, row in _read_csv(csv_path):
        if row.get("path"):
            _, rel = _listed_path(row["path"], root)
            listed[unicodedata.normalize("NFC", rel)] = (line, row)
    out = []
    for r in records:
        hit = listed.get(unicodedata.normalize("NFC", r.relpath))
        if hit is None:
            out.append(r)
            continue
        line, row = hit
        raw_label = row.get("label", "")
        if r.label is not None and raw_label and normalise_label(raw_label) != r.label:
            raise DatasetError(
                f"{csv_path}: line {line}: label {raw_label!r} for {r.relpath} disagrees with its folder ({r.label})"
            )
        out.append(replace(r, speaker=row.get("speaker") or None, subject=row.get("subject") or row.get("face") or None))
    return out
