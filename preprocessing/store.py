"""The HDF5 feature store: one file per dataset and extraction configuration.

Layout of ``features.h5``::

    /                       attrs: format, params (JSON), versions (JSON), classes (JSON)
    /audio_feature_names    (D,) utf-8 strings
    /clips/<key>/           one group per clip, ``key`` = relpath with "/" -> "|"
        faces               (T, S, S, 3) uint8  face crops (chunked, gzip)
        face_found          (T,) bool           False where the crop is a centre fallback
        face_boxes          (T, 4) float32      x0, y0, x1, y1 in analysis-frame pixels
        frame_index         (T,) int32          position in the 25 fps stream (t = i / 25 s)
        frames              (T, S, S, 3) uint8  whole frames (context), optional
        audio_functionals   (D,) float32        named by /audio_feature_names
        audio_speed_functionals (K, D) float32  the same of the clip played at each of the
                                                params' audio_speeds (only in stores built with
                                                them; zeros without audio)
        mfcc                (N, 40) float32     hop 640 samples = one row per 25 fps frame
        attrs: label, label_index (-1 if unknown), split, speaker, subject, relpath,
               source, duration, has_video, has_audio, audio_silent, face_rate, ...
               face_crop (bool: the image was the face crop, no detection; absent in
               stores written before it), soft_label ((7,) float32, rater votes in
               CLASSES order summing to 1; only for clips that have one, e.g. FER+)
    /failures/<key>         attrs: relpath, source, reason, time

A still image is a clip of one frame (T = 1, N = 1, no audio). Optional
attributes are absent rather than empty, so stores written before they existed
read the same: :meth:`FeatureStore.index` and :meth:`FeatureStore.soft_label`
give ``None`` for an absent soft label.

Reading is lazy: :class:`FeatureStore` hands out h5py datasets, so training
streams clips without loading the file into memory. The file is written only
by :class:`preprocessing.store_writer.StoreWriter`, which explains why it is
never modified in place.
"""

import dataclasses
import json
import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

from .errors import StoreError

#: Version of the layout above; bumped on incompatible changes.
STORE_FORMAT = 1

#: HDF5 metadata cache of an open store, in bytes. HDF5's adaptive default grows towards
#: 32 MiB as more clip groups are visited (an index of 10,000 clips reaches it); a fixed
#: small one keeps readers and the writer's commits at flat memory (experiments/bench_scale.py).
METADATA_CACHE_BYTES = 2**19


def fix_metadata_cache(f, nbytes=METADATA_CACHE_BYTES):
    """Give the open h5py file ``f`` a metadata cache of ``nbytes`` that neither grows nor shrinks."""
    config = f.id.get_mdc_config()
    config.set_initial_size = True
    config.initial_size = config.min_size = config.max_size = nbytes
    config.incr_mode = config.flash_incr_mode = config.decr_mode = 0  # H5C_incr__off, ..._flash_incr__off, H5C_decr__off
    f.id.set_mdc_config(config)


def clip_key(relpath):
    """HDF5 group name of a clip: its relative path with ``/`` replaced by ``|``."""
    key = str(relpath).replace("\\", "/").strip("/").replace("/", "|")
    if not key or key in (".", ".."):
        raise StoreError(f"clip key: relpath must name a file; received {relpath!r}")
    return key


@dataclasses.dataclass
class ClipFeatures:
    """Everything extracted from one clip, ready to be stored.

    Attributes
    ----------
    key : str
        Group name (see :func:`clip_key`).
    arrays : dict of str to np.ndarray
        Datasets of the clip group (see the module docstring for names and shapes).
    attrs : dict of str to (str, int, float, bool)
        Scalar attributes of the clip group.
    notes : list of str
        One-line remarks for the user (e.g. "no audio stream"), not stored.
    """

    key: str
    arrays: dict
    attrs: dict
    notes: list = dataclasses.field(default_factory=list)


def check_output_path(path):
    """Raise :class:`StoreError` unless a store can be written at ``path``.

    Returns
    -------
    pathlib.Path
        The absolute path.
    """
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        raise StoreError(f"{path}: output path is a directory; give a file name like features.h5")
    parent = path.parent
    if not parent.is_dir():
        raise StoreError(f"{path}: cannot write the store: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"{path}: cannot write the store: folder {parent} is not writable")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(f"{path}: cannot write the store: file is not readable and writable")
    try:  # permissions say little for root or special file systems: try it
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{path.name}.probe-"):
            pass
    except OSError as exc:
        raise StoreError(f"{path}: cannot write the store: cannot create files in {parent} "
                         f"({exc.strerror or exc})") from exc
    return path


class FeatureStore:
    """Read-only, lazy view of a committed store.

    Parameters
    ----------
    path : str or os.PathLike

    Examples
    --------
    >>> with FeatureStore("features.h5") as store:       # doctest: +SKIP
    ...     for row in store.index():
    ...         faces = store.clip(row["key"])["faces"]   # h5py dataset, read lazily
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"{self.path}: no such feature store")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise StoreError(f"{self.path}: not a readable HDF5 feature store ({exc})") from exc
        fix_metadata_cache(self._file)
        if self._file.attrs.get("format") != STORE_FORMAT:
            self._file.close()
            raise StoreError(f"{self.path}: not an EmoNet feature store (format attribute missing or "
                             f"not {STORE_FORMAT})")
        self.params = json.loads(self._file.attrs["params"])
        self.versions = json.loads(self._file.attrs["versions"])
        self.audio_feature_names = [n.decode() if isinstance(n, bytes) else n
                                    for n in self._file["audio_feature_names"][()]]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._file.close()

    def __len__(self):
        return len(self._file["clips"])

    def __contains__(self, key):
        return key in self._file["clips"]

    def keys(self):
        """Clip keys, sorted."""
        return sorted(self._file["clips"].keys())

    def clip(self, key):
        """The h5py group of clip ``key`` (datasets are read lazily)."""
        try:
            return self._file["clips"][key]
        except KeyError:
            raise StoreError(f"{self.path}: no clip {key!r} in the store") from None

    def attrs(self, key):
        """Attributes of clip ``key`` as a plain dict."""
        return _plain(dict(self.clip(key).attrs))

    def soft_label(self, key):
        """Soft label of clip ``key``: np.ndarray [shape=(7,), dtype=float32], or None if it has none."""
        value = self.clip(key).attrs.get("soft_label")
        return None if value is None else np.asarray(value, np.float32)

    def index(self, split=None):
        """One dict of attributes per clip (plus ``key``), optionally for one split, sorted by key.

        Every row has ``soft_label``: np.ndarray [shape=(7,), dtype=float32] or None.
        """
        return list(self.iter_index(split))

    def iter_index(self, split=None):
        """The rows of :meth:`index` one at a time: memory stays flat however many clips there are."""
        for key in self.keys():
            row = self.attrs(key)
            if split is None or row.get("split") == split:
                soft = row.get("soft_label")
                yield {"key": key, **row, "soft_label": None if soft is None else np.asarray(soft, np.float32)}

    def failures(self):
        """Recorded failures: dict key -> dict(relpath, source, reason, time)."""
        return {key: _plain(dict(group.attrs)) for key, group in self._file["failures"].items()}

    def pending_count(self):
        """Number of finished clips waiting in ``<store>.pending/`` (after an interrupted job)."""
        return len(shard_paths(pending_dir(self.path)))


def _plain(attrs):
    """h5py attribute values -> Python scalars and str."""
    out = {}
    for name, value in attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.generic):
            value = value.item()
        out[name] = value
    return out


def pending_dir(path):
    """Folder of the finished clips not yet committed to the store at ``path``: ``<store>.pending/``."""
    return Path(str(path) + ".pending")


def shard_paths(pending):
    """Complete shard files (``*.h5``) in a pending folder, sorted; none if it is absent."""
    return sorted(pending.glob("*.h5")) if pending.is_dir() else []
