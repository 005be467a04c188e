"""Manifest CSV listings: reading them (layout ``"csv"``, the AFEW overlay) and writing them.

A listing has a ``path`` column (relative to the dataset root, or absolute) and
optionally ``label``, ``split``, ``speaker`` and ``subject`` (or ``face``);
:func:`write_manifest_csv` writes the columns :data:`CSV_COLUMNS`, which
``build_manifest(root, layout="csv")`` reads back.
"""

from __future__ import annotations

import csv
import os
import unicodedata
from dataclasses import replace
from pathlib import Path

from preprocessing.constants import normalise_label
from preprocessing.errors import DatasetError, one_line
from preprocessing.files import atomic_path
from preprocessing.layouts import SPLIT_ALIASES, ClipRecord, normalise_split

#: Columns written by :func:`write_manifest_csv`, in this order.
CSV_COLUMNS = ("path", "label", "split", "speaker", "subject")


def write_manifest_csv(manifest, path):
    """Write a manifest as CSV that ``build_manifest(root, layout="csv")`` reads back.

    Columns are :data:`CSV_COLUMNS`; ``path`` holds ``relpath``, so write the
    file at the dataset root (``root/manifest.csv``) or pass it as ``csv_path``
    with the same root. ``None`` is written as an empty cell. Skipped files are
    not written. The file is written to a temporary name and renamed, so a
    reader never sees half of it.

    Parameters
    ----------
    manifest : preprocessing.datasets.Manifest
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
    try:
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(CSV_COLUMNS)
            for r in manifest.records:
                writer.writerow([r.relpath, r.label or "", r.split, r.speaker or "", r.subject or ""])
    except OSError as exc:
        raise DatasetError(f"{path}: cannot write manifest CSV ({exc.strerror or one_line(exc)})") from exc
    return path


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


def scan_csv(root, csv_path):
    """Records listed by the CSV at ``csv_path`` (``path`` cells relative to ``root`` or absolute).

    Returns
    -------
    records : list of ClipRecord
        In listing order.
    skipped : list of (str, str)
        ``(relpath, reason)`` of listed clips whose label has no class.

    Raises
    ------
    DatasetError
        The CSV is missing, unreadable, empty, lacks a ``path`` column, has an empty
        ``path`` cell, lists a path twice or has an unknown split.
    """
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


def apply_afew_overlay(records, root, csv_path):
    """Add speakers and face subjects from an AFEW root's CSV; labels must agree.

    Returns
    -------
    list of ClipRecord
        ``records`` in the same order; a listed clip gets the CSV's speaker and subject.
    """
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
