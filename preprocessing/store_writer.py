"""The single writer of a feature store (layout: :mod:`preprocessing.store`).

Crash safety (why the file is never written in place)
-----------------------------------------------------
HDF5 is not journaled: a process killed while it modifies a file can leave the
whole file unreadable. So the committed file is *only ever replaced
atomically*. Finished clips are first written as small shard files in
``features.h5.pending/`` (written under a temporary name, fsync'ed, then
renamed, so a shard is either complete or absent). The next store is built
beside the committed one: a temporary copy of it, kept open, to which each
shard is appended as soon as it is written (pending shards of an earlier run
first). A commit closes that copy, fsyncs it and ``os.replace``-s it over the
store; only then are the shards deleted. A kill -9 at any moment therefore
leaves (a) the last committed store, which opens and reads, (b) complete
shards that the next run merges first, and (c) at most a temporary copy, which
the next run deletes.

Appending each shard when it is written, instead of all of them at the commit,
does the same work while the workers still extract: the commit at the end of a
job has only to close and rename the copy (on 210 composite clips the merge was
0.5-0.7 s of a 15 s job spent after the last clip, with the workers idle).

When to commit (bytes written per byte of final store)
------------------------------------------------------
Every commit rewrites the whole store (the next one starts as its copy), so the schedule sets the disk traffic.
A commit happens when the job ends and, before that, when the pending bytes
reach the store's size (at least :data:`MIN_COMMIT_BYTES`): the store at least
doubles between commits, so all intermediate copies together write less than
the final store. A job that announces how many clips are still to come
(:meth:`StoreWriter.expect`) also skips an intermediate commit unless at least
twice the new store's size is still to come (estimated from the mean shard
size): otherwise the final commit is near and would copy it all again. So the
last intermediate store is at most a third of the final one, and the writer
writes the final size less than three times: once as shards (plus their HDF5
overhead), at most two thirds of it in intermediate commits and once in the
final commit (measured in ``experiments/bench_scale.py``).

Every temporary-then-replace write (the new store, each shard, each commit)
goes through :func:`preprocessing.files.atomic_path`.

Examples
--------
>>> with StoreWriter("features.h5", params={}, versions={}, audio_feature_names=[]) as writer:  # doctest: +SKIP
...     writer.write_clip(clip)        # a ClipFeatures; durable once this returns
"""

import contextlib
import fcntl
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from .chunk_deflate import create_compressed
from .constants import CLASSES
from .errors import StoreError
from .files import atomic_path, fsync_path, leftover_temporaries
from .store import STORE_FORMAT, check_output_path, fix_metadata_cache, pending_dir, shard_paths

#: Commit pending shards once they hold at least this many bytes ...
MIN_COMMIT_BYTES = 64 * 2**20
#: ... and at least this share of the committed store's size (1.0: the store doubles).
COMMIT_RATIO = 1.0



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
        self.audio_width = len(audio_feature_names) if audio_feature_names else None
        self._lock = self._acquire_lock()
        self.pending = pending_dir(self.path)
        try:
            if self.path.exists():
                self._check_existing()
            else:
                self._create(versions, audio_feature_names)
            self.pending.mkdir(exist_ok=True)
            # half-written shards, new stores or commit copies of a killed run (".tmp-commit": older versions)
            stale = list(self.pending.glob("*.tmp")) + leftover_temporaries(self.path) + [
                Path(str(self.path) + ".tmp-commit")]
            for leftover in stale:
                leftover.unlink(missing_ok=True)
            self.done = self._committed_keys() | {key for key, kind in self._shard_keys() if kind == "clip"}
            # bytes and count of pending shards, kept up to date instead of listing the folder per write
            self._pending = {shard.name: shard.stat().st_size for shard in shard_paths(self.pending)}
            self._pending_total = sum(self._pending.values())
            self._remaining = None
            # the next store while it is built: (ExitStack closing it into place, its open file, shard names in it)
            self._next = None
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
                stored_width = len(f["audio_feature_names"]) if "audio_feature_names" in f else None
        except OSError as exc:
            raise StoreError(f"{self.path}: exists but is not a readable HDF5 file ({exc})") from exc
        if stored != self.params:
            diff = sorted(k for k in set(stored) | set(self.params) if stored.get(k) != self.params.get(k))
            detail = ", ".join(f"{k}: store has {stored.get(k)!r}, requested {self.params.get(k)!r}" for k in diff)
            raise StoreError(f"{self.path}: store was built with other extraction parameters ({detail}); "
                             f"extract to a new file (another --out, or data.store in a config) or use the same parameters")
        if self.audio_width is not None and stored_width not in (None, self.audio_width):
            raise StoreError(f"{self.path}: store holds {stored_width} audio functionals per clip, this version "
                             f"computes {self.audio_width} (an older EmoNet built it); extract to a new file (another --out, "
                             f"or data.store in a config)")

    def _create(self, versions, audio_feature_names):
        with atomic_path(self.path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs["format"] = STORE_FORMAT
            f.attrs["params"] = json.dumps(self.params, sort_keys=True)
            f.attrs["versions"] = json.dumps(versions, sort_keys=True)
            f.attrs["classes"] = json.dumps(list(CLASSES))
            f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            f.create_dataset("audio_feature_names", data=np.array(audio_feature_names, dtype=object),
                             dtype=h5py.string_dtype())
            f.create_group("clips")
            f.create_group("failures")

    def _committed_keys(self):
        with h5py.File(self.path, "r") as f:
            return set(f["clips"].keys())

    def _shard_keys(self):
        keys = []
        for shard in shard_paths(self.pending):
            with h5py.File(shard, "r") as f:
                keys.append((f.attrs["key"], f.attrs["kind"]))
        return keys

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def expect(self, n_clips):
        """Announce that ``n_clips`` more results (clips or failures) will be written in this job.

        Lets the writer skip an intermediate commit shortly before the final one (see the
        module docstring). Without it, commits follow the size rule alone.
        """
        self._remaining = int(n_clips)

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
                if array.ndim >= 3 and array.shape[0] > 0:  # frames of pixels: chunked, gzip
                    create_compressed(group, name, array)
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
        name = hashlib.sha1(f"{kind}:{key}".encode()).hexdigest()[:20] + ".h5"
        # the temporary name ends in ".tmp", not ".h5": a shard being written is never listed as one
        with atomic_path(self.pending / name, suffix="") as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["key"] = key
                f.attrs["kind"] = kind
                fill(f)
            size = tmp.stat().st_size
        self._pending_total += size - self._pending.get(name, 0)
        self._pending[name] = size
        self._stage([self.pending / name])
        if self._remaining is not None:
            self._remaining = max(0, self._remaining - 1)
        if self._commit_due():
            self.commit()

    def _commit_due(self):
        """True when the pending shards should be merged now (see the module docstring)."""
        committed = self.path.stat().st_size
        if self._pending_total < max(MIN_COMMIT_BYTES, COMMIT_RATIO * committed):
            return False
        if self._remaining is None:
            return True
        still_to_come = self._remaining * self._pending_total / max(1, len(self._pending))  # bytes, estimated
        return still_to_come >= 2 * (committed + self._pending_total)

    def commit(self):
        """Merge pending shards into the store by atomic replacement (see module docstring).

        Returns
        -------
        int
            Number of shards merged.
        """
        shards = shard_paths(self.pending)
        if not shards:
            self._discard_next()
            return 0
        if self._next is None:
            self._start_next()
        else:  # the shards not appended yet: none, unless an append failed
            self._stage([shard for shard in shards if shard.name not in self._next[2]])
        stack, self._next = self._next[0], None
        stack.close()  # closes the file, fsyncs it and renames it over the store
        fsync_path(self.path.parent)
        for shard in shards:
            shard.unlink()
            self._pending.pop(shard.name, None)
        self._pending_total = sum(self._pending.values())
        return len(shards)

    def _stage(self, shards):
        """Append ``shards`` (paths) to the next store, first starting it if none is open (:meth:`_start_next`).

        On an error the next store is deleted (the shards stay pending: the next commit starts again).
        """
        if self._next is None:
            self._start_next()
            return
        staged = self._next[2]
        try:
            _merge_shards(self._next[1], shards)
        except BaseException:
            self._discard_next()
            raise
        staged.update(shard.name for shard in shards)

    def _start_next(self):
        """Open the next store: a temporary copy of the committed one with every pending shard appended."""
        stack = contextlib.ExitStack()
        try:
            tmp = stack.enter_context(atomic_path(self.path))
            shutil.copyfile(self.path, tmp)
            dst = stack.enter_context(h5py.File(tmp, "a"))
            fix_metadata_cache(dst)  # flat memory however many clips the store holds
            present = shard_paths(self.pending)
            _merge_shards(dst, present)
        except BaseException:
            stack.__exit__(*sys.exc_info())  # closes the file and deletes the copy
            raise
        self._next = (stack, dst, {shard.name for shard in present})

    def _discard_next(self):
        """Close and delete the next store being built, if any (its shards stay pending)."""
        if self._next is not None:
            stack, self._next = self._next[0], None
            stack.__exit__(StoreError, StoreError("next store discarded"), None)  # atomic_path deletes the copy

    def close(self):
        """Commit what is pending and release the lock."""
        if self._lock is None:
            return
        try:
            self.commit()
            with contextlib.suppress(OSError):
                self.pending.rmdir()
        finally:
            self._discard_next()
            self._release_lock()


def _merge_shards(dst, shards):
    """Copy each shard's clip (or failure) group into the open store ``dst``, in order.

    A clip replaces its earlier version and clears its recorded failure; a failure
    of a clip that is stored (it has since succeeded) is dropped.
    """
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
