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
        mfcc                (N, 40) float32     hop 640 samples = one row per 25 fps frame
        attrs: label, label_index (-1 if unknown), split, speaker, subject, relpath,
               source, duration, has_video, has_audio, audio_silent, face_rate, ...
    /failures/<key>         attrs: relpath, source, reason, time

Crash safety (why the file is never written in place)
-----------------------------------------------------
HDF5 is not journaled: a process killed while it modifies a file can leave the
whole file unreadable. So the committed file is *only ever replaced
atomically*. Finished clips are first written as small shard files in
``features.h5.pending/`` (written under a temporary name, fsync'ed, then
renamed, so a shard is either complete or absent). A commit copies the store,
appends the pending shards to the copy, fsyncs it and ``os.replace``-s it over
the store; only then are the shards deleted. A kill -9 at any moment
therefore leaves (a) the last committed store, which opens and reads, and (b)
complete shards that the next run merges first. Commits happen when the
pending bytes reach half the store's size (so total copying stays linear in
the final size) and when the job ends.

Reading is lazy: :class:`FeatureStore` hands out h5py datasets, so training
streams clips without loading the file into memory.
"""

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from .constants import CLASSES
from .errors import StoreError

#: Version of the layout above; bumped on incompatible changes.
STORE_FORMAT = 1

#: Commit pending shards once they hold at least this many bytes ...
MIN_COMMIT_BYTES = 64 * 2**20
#: ... and at least this share of the committed store's size.
COMMIT_RATIO = 0.5

_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


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

    def index(self, split=None):
        """One dict of attributes per clip (plus ``key``), optionally for one split, sorted by key."""
        rows = []
        for key in self.keys():
            row = self.attrs(key)
            if split is None or row.get("split") == split:
                rows.append({"key": key, **row})
        return rows

    def failures(self):
        """Recorded failures: dict key -> dict(relpath, source, reason, time)."""
        return {key: _plain(dict(group.attrs)) for key, group in self._file["failures"].items()}

    def pending_count(self):
        """Number of finished clips waiting in ``<store>.pending/`` (after an interrupted job)."""
        return len(_shards(_pending_dir(self.path)))


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


def _pending_dir(path):
    return Path(str(path) + ".pending")


def _shards(pending):
    return sorted(pending.glob("*.h5")) if pending.is_dir() else []


def _fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StoreWriter:
    """The single writer of a store: crash-safe appends, resume and failure records.

    Parameters
    ----------
    path : str or os.PathLike
        The store file; created if absent.
    params : dict
        Extraction parameters (JSON-serialisable). An existing store built
        with different parameters is refused.
    versions : dict
        Library versions, stored for provenance.
    audio_feature_names : list of str
        Names of the audio functionals vector.

    Raises
    ------
    StoreError
        Unwritable path, another writer holds the lock, or parameter mismatch.
    """

    def __init__(self, path, *, params, versions, audio_feature_names):
        self.path = check_output_path(path)
        self.params = dict(params)
        self._lock = self._acquire_lock()
        self.pending = _pending_dir(self.path)
        try:
            if self.path.exists():
                self._check_existing()
            else:
                self._create(versions, audio_feature_names)
            self.pending.mkdir(exist_ok=True)
            stale = list(self.pending.glob("*.tmp")) + [Path(str(self.path) + ".tmp-commit")]
            for leftover in stale:  # half-written shards or commit copies of a killed run
                leftover.unlink(missing_ok=True)
            self.done = self._committed_keys() | {key for key, kind in self._shard_keys() if kind == "clip"}
        except BaseException:
            self._release_lock()
            raise

    def _acquire_lock(self):
        lock_path = Path(str(self.path) + ".lock")
        try:
            handle = open(lock_path, "a+")
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot write the store ({exc.strerror or exc})") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StoreError(f"{self.path}: another extraction job is writing this store "
                             f"(lock {lock_path} is held)") from None
        return handle

    def _release_lock(self):
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _check_existing(self):
        try:
            with h5py.File(self.path, "r") as f:
                if f.attrs.get("format") != STORE_FORMAT:
                    raise StoreError(f"{self.path}: exists but is not an EmoNet feature store")
                stored = json.loads(f.attrs["params"])
        except OSError as exc:
            raise StoreError(f"{self.path}: exists but is not a readable HDF5 file ({exc})") from exc
        if stored != self.params:
            diff = sorted(k for k in set(stored) | set(self.params) if stored.get(k) != self.params.get(k))
            detail = ", ".join(f"{k}: store has {stored.get(k)!r}, requested {self.params.get(k)!r}" for k in diff)
            raise StoreError(f"{self.path}: store was built with other extraction parameters ({detail}); "
                             f"use another --out file or the same parameters")

    def _create(self, versions, audio_feature_names):
        tmp = Path(str(self.path) + ".tmp-create")
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = STORE_FORMAT
            f.attrs["params"] = json.dumps(self.params, sort_keys=True)
            f.attrs["versions"] = json.dumps(versions, sort_keys=True)
            f.attrs["classes"] = json.dumps(list(CLASSES))
            f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            f.create_dataset("audio_feature_names", data=np.array(audio_feature_names, dtype=object),
                             dtype=h5py.string_dtype())
            f.create_group("clips")
            f.create_group("failures")
        _fsync_path(tmp)
        os.replace(tmp, self.path)

    def _committed_keys(self):
        with h5py.File(self.path, "r") as f:
            return set(f["clips"].keys())

    def _shard_keys(self):
        keys = []
        for shard in _shards(self.pending):
            with h5py.File(shard, "r") as f:
                keys.append((f.attrs["key"], f.attrs["kind"]))
        return keys

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def write_clip(self, clip):
        """Persist one clip durably (as a pending shard); it is committed later.

        Parameters
        ----------
        clip : ClipFeatures
        """
        def fill(f):
            group = f.create_group("clip")
            for name, array in clip.arrays.items():
                array = np.asarray(array)
                if array.ndim >= 3 and array.shape[0] > 0:
                    chunks = (min(16, array.shape[0]),) + array.shape[1:]
                    group.create_dataset(name, data=array, chunks=chunks, **_COMPRESSION)
                else:
                    group.create_dataset(name, data=array)
            for name, value in clip.attrs.items():
                group.attrs[name] = "" if value is None else value
        self._write_shard(clip.key, "clip", fill)
        self.done.add(clip.key)

    def write_failure(self, key, *, relpath, source, reason):
        """Record that clip ``key`` failed, with its one-line ``reason``."""
        def fill(f):
            group = f.create_group("failure")
            group.attrs.update(relpath=str(relpath), source=str(source), reason=str(reason),
                               time=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self._write_shard(key, "failure", fill)

    def _write_shard(self, key, kind, fill):
        name = hashlib.sha1(f"{kind}:{key}".encode()).hexdigest()[:20]
        tmp = self.pending / f"{name}.tmp"
        with h5py.File(tmp, "w") as f:
            f.attrs["key"] = key
            f.attrs["kind"] = kind
            fill(f)
        _fsync_path(tmp)
        os.replace(tmp, self.pending / f"{name}.h5")
        if self._pending_bytes() >= max(MIN_COMMIT_BYTES, COMMIT_RATIO * self.path.stat().st_size):
            self.commit()

    def _pending_bytes(self):
        return sum(s.stat().st_size for s in _shards(self.pending))

    def commit(self):
        """Merge pending shards into the store by atomic replacement (see module docstring).

        Returns
        -------
        int
            Number of shards merged.
        """
        shards = _shards(self.pending)
        if not shards:
            return 0
        tmp = Path(str(self.path) + ".tmp-commit")
        shutil.copyfile(self.path, tmp)
        with h5py.File(tmp, "a") as dst:
            for shard in shards:
                with h5py.File(shard, "r") as src:
                    key, kind = src.attrs["key"], src.attrs["kind"]
                    if kind == "failure" and key in dst["clips"]:
                        continue  # a stale failure of a clip that has since succeeded
                    target = dst["clips"] if kind == "clip" else dst["failures"]
                    if key in target:
                        del target[key]
                    src.copy(src[kind], target, name=key)
                    if kind == "clip" and key in dst["failures"]:
                        del dst["failures"][key]
        _fsync_path(tmp)
        os.replace(tmp, self.path)
        _fsync_path(self.path.parent)
        for shard in shards:
            shard.unlink()
        return len(shards)

    def close(self):
        """Commit what is pending and release the lock."""
        if self._lock is None:
            return
        try:
            self.commit()
            with contextlib.suppress(OSError):
                self.pending.rmdir()
        finally:
            self._release_lock()
