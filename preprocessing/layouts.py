"""Dataset layouts: how each corpus names its clips -> :class:`ClipRecord`.

The rules of each layout (:data:`LAYOUTS`) are described in
:mod:`preprocessing.datasets`, which turns the records into a manifest. This
module holds the pieces that look at names: the record type, split names, the
recursive folder scan and one labeller per layout. A labeller returns a
:class:`ClipRecord` or, for a file it leaves out, the one-line reason.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from preprocessing.constants import (
    AUDIO_SUFFIXES,
    CLASSES,
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    normalise_label,
)
from preprocessing.errors import DatasetError

#: Layout names accepted by :func:`preprocessing.datasets.build_manifest`.
LAYOUTS = ("afew", "crema_d", "ravdess", "mead", "csv", "folder", "emodb", "urdu", "ferplus", "fer2013")

#: Normalised split names, in this order everywhere.
SPLITS = ("train", "val", "test")

#: File suffixes (lower case) a folder scan treats as clips (a still image is a one-frame clip).
MEDIA_SUFFIXES = VIDEO_SUFFIXES + AUDIO_SUFFIXES + IMAGE_SUFFIXES

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

# Berlin EmoDB: SSTTTEV = speaker, text, emotion letter (German initials), version.
_EMODB_NAME = re.compile(r"^(?P<speaker>\d{2})(?P<text>[a-z]\d{2})(?P<emotion>[A-Z])(?P<version>[a-z])$")
_EMODB_EMOTIONS = {"W": "Angry", "E": "Disgust", "A": "Fear", "F": "Happy", "N": "Neutral", "T": "Sad"}
_EMODB_UNMAPPED = {"L": "boredom"}

# URDU corpus: <Emotion>/<speaker>_<file>, speaker SF<n> (female) or SM<n> (male).
_URDU_SPEAKER = re.compile(r"^(?P<speaker>S[FM]\d+)_", re.IGNORECASE)

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
        single-person corpora (CREMA-D, RAVDESS, MEAD, EmoDB).
    soft_label : tuple of 7 float or None
        The raters' votes over :data:`~preprocessing.constants.CLASSES`
        (same order), normalised to sum 1, for corpora labelled by several
        raters (FER+); ``None`` elsewhere. A list is stored as a tuple.
    face_crop : bool
        The image already is the face crop (FER+, FER2013): extraction resizes
        it to the crop size instead of detecting a face. False for videos and
        user photos.
    row_offset : int or None
        Byte offset of the clip's row in ``path`` when ``path`` is a table of
        pixel rows (layout ``fer2013``); ``None`` for a media or image file.
    """

    path: Path
    relpath: str
    label: str | None
    split: str
    speaker: str | None = None
    subject: str | None = None
    soft_label: tuple | None = None
    face_crop: bool = False
    row_offset: int | None = None

    def __post_init__(self):
        if not self.relpath:
            raise DatasetError(f"{self.path}: ClipRecord.relpath must be a non-empty string; received {self.relpath!r}")
        if self.soft_label is not None:
            soft = tuple(float(v) for v in self.soft_label)
            if len(soft) != len(CLASSES) or not all(math.isfinite(v) and v >= 0 for v in soft) \
                    or abs(sum(soft) - 1) > 1e-6:
                raise DatasetError(f"{self.relpath}: ClipRecord.soft_label must be {len(CLASSES)} non-negative "
                                   f"numbers summing to 1; received {self.soft_label!r}")
            object.__setattr__(self, "soft_label", soft)
        if self.label is not None and self.label not in CLASSES:
            raise DatasetError(
                f"{self.relpath}: ClipRecord.label must be one of {', '.join(CLASSES)} or None; received {self.label!r}"
            )
        if self.split not in SPLITS:
            raise DatasetError(f"{self.relpath}: ClipRecord.split must be one of {', '.join(SPLITS)}; received {self.split!r}")


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


# --------------------------------------------------------------------------- scanning


def scan_folder(root, layout):
    """Label every media file under ``root`` by its name (or folder) in ``layout``.

    Parameters
    ----------
    root : pathlib.Path
        Absolute dataset root (see :func:`check_root`).
    layout : str
        One of :data:`LAYOUTS` except ``"csv"``, ``"ferplus"`` and ``"fer2013"``
        (label tables: :mod:`preprocessing.face_corpora`).

    Returns
    -------
    records : list of ClipRecord
        In scan order (not sorted).
    skipped : list of (str, str)
        ``(relpath, reason)`` of the media files that have no usable label.
    n_found : int
        Media files found.

    Raises
    ------
    DatasetError
        If no media file is found, or the AFEW split folders are all absent.
    """
    if layout == "afew":
        files = _afew_files(root)
    else:
        files = [(path, rel, None) for path, rel in _media_files(root, root)]
    if not files:
        raise DatasetError(
            f"{root}: no media files found for layout {layout!r} (suffixes {' '.join(MEDIA_SUFFIXES)}; hidden files ignored)"
        )
    label = _LABELLERS[layout]
    records, skipped = [], []
    for path, rel, split in files:
        outcome = label(path, rel, split)
        if isinstance(outcome, str):
            skipped.append((rel, outcome))
        else:
            records.append(outcome)
    return records, skipped, len(files)


def check_root(root):
    """The absolute, resolved dataset root; :class:`DatasetError` if it is missing or not a folder."""
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


def _label_emodb(path, rel, split):
    match = _EMODB_NAME.match(PurePosixPath(rel).stem)
    if match is None:
        return "name does not match EmoDB SSTTTEV (speaker, text, emotion, version)"
    code = match["emotion"]
    if code in _EMODB_UNMAPPED:
        return f"EmoDB emotion {code!r} ({_EMODB_UNMAPPED[code]}) is not one of the 7 classes"
    if code not in _EMODB_EMOTIONS:
        return f"EmoDB emotion letter {code!r} is not one of {' '.join(_EMODB_EMOTIONS)} L"
    speaker = match["speaker"]
    return ClipRecord(path=path, relpath=rel, label=_EMODB_EMOTIONS[code], split="train", speaker=speaker,
                      subject=speaker)


def _label_urdu(path, rel, split):
    outcome = _label_from_folder(path, rel, "train", depth=0)
    if isinstance(outcome, str):
        return outcome
    match = _URDU_SPEAKER.match(PurePosixPath(rel).name)
    if match is None:
        return "name does not start with the URDU speaker (SF<n>_ or SM<n>_)"
    speaker = match["speaker"].upper()
    return ClipRecord(path=path, relpath=rel, label=outcome.label, split="train", speaker=speaker, subject=speaker)


_LABELLERS = {"afew": _label_afew, "crema_d": _label_crema_d, "ravdess": _label_ravdess,
              "mead": _label_mead, "folder": _label_folder, "emodb": _label_emodb, "urdu": _label_urdu}
