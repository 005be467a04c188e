"""Dataset folders -> manifests: which clip, which label, which split, who is in it.

An *adapter* reads a dataset folder (or a CSV listing) and returns a
:class:`Manifest`: a sorted list of :class:`ClipRecord` plus the files it
skipped and why. Adapters look at names only; nothing is decoded here, so
building a manifest of thousands of clips takes milliseconds and a corrupt clip
is the extraction job's business, not this module's.

The work is shared by four modules: :mod:`preprocessing.layouts` (record
type, split names, folder scan and name parsers), :mod:`preprocessing.listing`
(CSV listings), :mod:`preprocessing.face_corpora` (FER+ and FER2013, labelled
by tables) and this one (the :class:`Manifest`, :func:`build_manifest`,
:func:`assign_speaker_splits`); every public name is importable from here.

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
``"emodb"``
    Berlin EmoDB ``SSTTTEV.<ext>`` (e.g. ``03a01Wa.wav``): speaker ``SS``,
    emotion letter ``E`` (W anger, E disgust, A fear, F happiness, T sadness,
    N neutral); boredom (L) is skipped.
``"urdu"``
    URDU corpus ``<Emotion>/<speaker>_<file>.<ext>``, speaker ``SF<n>`` or
    ``SM<n>`` from the name.
``"ferplus"``
    FER+ ``FER2013Train/``, ``FER2013Valid/``, ``FER2013Test/`` with their
    ``label.csv`` of rater votes -> train/val/test; soft labels from the votes,
    the majority (if any) as the hard label; see :mod:`preprocessing.face_corpora`.
``"fer2013"``
    The Kaggle ``fer2013.csv`` (``emotion,pixels,Usage``), one clip per row.

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
- Still images (:data:`~preprocessing.constants.IMAGE_SUFFIXES`) are clips of
  one frame without audio; a user's photo gets face detection like a video
  frame, while the face-crop corpora (``ferplus``, ``fer2013``) mark their
  records ``face_crop=True`` and are used whole, without detection.
- Corpora without predefined splits (CREMA-D, RAVDESS, MEAD, EmoDB, URDU) come
  back all in ``"train"``; :func:`assign_speaker_splits` makes a
  speaker-independent train/val split from them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from preprocessing.constants import CLASSES
from preprocessing.errors import DatasetError
from preprocessing.face_corpora import scan_fer2013, scan_ferplus
from preprocessing.layouts import (
    LAYOUTS,
    MEDIA_SUFFIXES,
    SPLIT_ALIASES,
    SPLITS,
    ClipRecord,
    check_root,
    normalise_split,
    scan_folder,
)
from preprocessing.listing import (
    CSV_COLUMNS,
    apply_afew_overlay,
    scan_csv,
    write_manifest_csv,
)

__all__ = [
    "CSV_COLUMNS", "LAYOUTS", "MANIFEST_NAME", "MEDIA_SUFFIXES", "SPLITS", "SPLIT_ALIASES",
    "ClipRecord", "Manifest", "assign_speaker_splits", "build_manifest", "normalise_split", "write_manifest_csv",
]

#: File name of the optional listing at a dataset root (``afew`` and ``csv`` layouts).
MANIFEST_NAME = "manifest.csv"


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
        (``layout="fer2013"`` reads ``root/fer2013.csv``, or the only CSV of ``root``.)
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
    root = check_root(root)
    if csv_path is not None and layout not in ("csv", "afew"):
        raise DatasetError(f"csv_path only applies to layouts 'csv' and 'afew'; received csv_path={str(csv_path)!r} with layout={layout!r}")

    if layout == "csv":
        records, skipped = scan_csv(root, Path(csv_path) if csv_path is not None else root / MANIFEST_NAME)
        n_found = len(records) + len(skipped)
    elif layout == "ferplus":
        records, skipped, n_found = scan_ferplus(root)
    elif layout == "fer2013":
        records, skipped, n_found = scan_fer2013(root)
    else:
        records, skipped, n_found = scan_folder(root, layout)
        if layout == "afew":
            overlay = Path(csv_path) if csv_path is not None else root / MANIFEST_NAME
            if csv_path is not None or overlay.is_file():
                records = apply_afew_overlay(records, root, overlay)

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
