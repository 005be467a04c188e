"""The extraction job: a manifest of clips -> the HDF5 feature store.

Clips are extracted by worker processes (local by default, or the workers of a
Dask cluster) with :func:`preprocessing.extraction.process_record`, and the
calling process is the store's only writer. A clip that fails is recorded with
its one-line reason and the batch carries on; the summary counts done, skipped
(already in the store), failed and clips/s.

Messages go to ``logging.getLogger("preprocessing.runner")``: one WARNING
``"skipping: <reason>"`` per failed clip and one INFO ``"note: <file>: <note>"``
per remark (no audio stream, no face found...). The progress bar is tqdm's, on
stderr.

Examples
--------
>>> from preprocessing.datasets import build_manifest            # doctest: +SKIP
>>> manifest = build_manifest("AFEW", layout="afew")             # doctest: +SKIP
>>> summary = run_extraction(manifest, "features.h5", ExtractParams(), workers=2)  # doctest: +SKIP
"""

import concurrent.futures as cf
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import sys
import time
from pathlib import Path

from . import audio, faces
from .errors import ConfigError, StoreError, one_line
from .extraction import failure_result, library_versions, process_record
from .lifetime import exit_with
from .store import FeatureStore, clip_key
from .store_writer import StoreWriter
from .threads import one_opencv_thread

logger = logging.getLogger(__name__)

#: Modules the fork server of the local workers imports before forking them: the main script, as
#: multiprocessing does by default, then the extraction code, warmed up (:mod:`preprocessing.forkserver_preload`).
FORKSERVER_PRELOAD = ("__main__", "preprocessing.forkserver_preload")


@dataclasses.dataclass
class JobSummary:
    """Counts and timing of an extraction run."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list = dataclasses.field(default_factory=list)

    @property
    def clips_per_second(self):
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def line(self, out_path):
        return (f"done {self.done}, skipped {self.skipped} (already stored), failed {self.failed} "
                f"in {self.seconds:.1f} s ({self.clips_per_second:.2f} clips/s) -> {out_path}")


def run_extraction(manifest, out_path, params, *, workers=None, scheduler=None, progress=True):
    """Extract every clip of ``manifest`` not yet in the store at ``out_path``.

    Parameters
    ----------
    manifest : iterable of preprocessing.datasets.ClipRecord
    out_path : str or os.PathLike
    params : preprocessing.extraction.ExtractParams
    workers : int, optional
        Local worker processes (default: number of CPUs); 0 extracts in this process.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``); overrides ``workers``.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    JobSummary
        Failures and notes are also logged (see the module docstring).
    """
    records = list(manifest)
    start = time.perf_counter()
    summary = JobSummary()
    if _all_stored(out_path, params, records):
        summary.skipped = len(records)
        summary.seconds = time.perf_counter() - start
        return summary
    local = not scheduler and workers != 0
    with contextlib.ExitStack() as stack:
        # local workers start first: they import and warm up while this process opens the store
        n_workers = workers or os.cpu_count() or 1
        pool = stack.enter_context(_local_pool(n_workers, params)) if local else None
        writer = stack.enter_context(StoreWriter(out_path, params=params.as_dict(), versions=library_versions(),
                                                 audio_feature_names=audio.feature_names(n_mfcc=params.n_mfcc)))
        todo = [r for r in records if clip_key(r.relpath) not in writer.done]
        summary.skipped = len(records) - len(todo)
        writer.expect(len(todo))
        bar = _progress_bar(len(todo), progress)

        def handle(result):
            if result[0] == "ok":
                clip = result[1]
                writer.write_clip(clip)
                summary.done += 1
                for note in clip.notes:
                    logger.info("note: %s: %s", clip.attrs["source"], note)
            else:
                _, key, relpath, source, reason = result
                writer.write_failure(key, relpath=relpath, source=source, reason=reason)
                summary.failed += 1
                summary.failures.append((relpath, reason))
                logger.warning("skipping: %s", reason)
            bar.update(1)

        try:
            if scheduler:
                _run_dask(todo, params, scheduler, handle)
            elif workers == 0:
                for record in todo:
                    handle(process_record(record, params))
            else:
                _run_local(todo, params, pool, n_workers, handle)
        finally:
            bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def _all_stored(out_path, params, records):
    """True when the store at ``out_path`` already holds every record, built with ``params``.

    A read-only check that takes no writer lock, so several runs can share a complete store
    (two trainings started together on one store no longer refuse each other). Anything else
    (missing clips, recorded failures to retry, pending shards, other parameters) goes through
    :class:`StoreWriter`, which reports it.
    """
    path = Path(out_path)
    if not path.is_file():
        return False
    try:
        with FeatureStore(path) as store:
            if params.differences(store.params) or store.pending_count():
                return False
            return all(clip_key(r.relpath) in store for r in records)
    except (StoreError, OSError):
        return False


def _progress_bar(total, enabled):
    from tqdm import tqdm
    return tqdm(total=total, unit="clip", desc="extract", disable=not enabled or total == 0,
                file=sys.stderr, dynamic_ncols=True)


def _drain(records, *, submit, next_done, window, lost, handle):
    """Keep ``window`` records in flight and hand every result to ``handle`` as it arrives.

    Parameters
    ----------
    records : iterable of ClipRecord
    submit : callable
        ``submit(record) -> future`` (anything with ``result()``) running :func:`process_record`.
    next_done : callable
        ``next_done(futures) -> iterable`` of finished futures among ``futures`` (blocks until one is).
    window : int
        Records in flight at most.
    lost : str
        Cause recorded for a record whose task raised, e.g. ``"worker crashed"``.
    handle : callable
        Receives each ``process_record`` result tuple.
    """
    queue = iter(records)
    in_flight = {}

    def submit_next():
        record = next(queue, None)
        if record is not None:
            in_flight[submit(record)] = record

    for _ in range(window):
        submit_next()
    while in_flight:
        for future in next_done(in_flight):
            record = in_flight.pop(future)
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a lost task fails its clip, not the batch
                result = failure_result(record, f"{lost} ({type(exc).__name__}: {exc})")
            handle(result)
            submit_next()


def _worker_init(params, job_pid):
    """Runs in each worker: one OpenCV thread (the workers are the parallelism), end with the job
    (:func:`preprocessing.lifetime.exit_with`: its parent is the fork server, which outlives a killed
    job while its workers live), so a killed job leaves no processes behind, and warm up (:func:`warm_up`:
    a few ms when the fork server has done it, :mod:`preprocessing.forkserver_preload`)."""
    one_opencv_thread()
    exit_with(job_pid)
    warm_up(params)


def warm_up(params):
    """Load what every clip needs before the first one: librosa and its compiled numba kernels (read from
    numba's cache), the face detector. About 1 s of CPU per process on the 2-core machine; the fork server
    pays it once (:mod:`preprocessing.forkserver_preload`) and each worker forked from it starts warm."""
    with contextlib.suppress(Exception):  # a warm-up that fails costs the first clip the time, nothing else
        audio.warm_up(params.n_mfcc)
        faces.process_detector(params.detector)


@contextlib.contextmanager
def _local_pool(workers, params):
    """A pool of ``workers`` processes, started at once (each warms up in its initializer).

    Workers come from a fork server, not from ``fork()`` of this process: a forked
    worker would inherit the store's lock file descriptor (and TensorFlow's threads,
    if loaded) and keep the store locked after this process is killed. The fork server
    imports and warms up the extraction code once (:data:`FORKSERVER_PRELOAD`), so the
    workers do not each spend about 2 s of CPU on it (imports and :func:`warm_up`); a fork
    server this process started before keeps its own preload, and its workers warm up themselves.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(FORKSERVER_PRELOAD))
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                                initargs=(params, os.getpid())) as pool:
        for _ in range(workers):  # a pool starts a worker per task submitted while none is idle
            pool.submit(os.getpid)
        yield pool


def _run_local(records, params, pool, workers, handle):
    """Extract in ``pool`` of ``workers`` processes (:func:`_local_pool`), at most 2 clips per worker in flight."""
    _drain(records, submit=lambda record: pool.submit(process_record, record, params),
           next_done=lambda futures: cf.wait(futures, return_when=cf.FIRST_COMPLETED)[0],
           window=2 * workers, lost="worker crashed", handle=handle)


def _dask_task(record, params):
    """:func:`process_record` on a Dask worker, with one OpenCV thread (the workers are the parallelism)."""
    one_opencv_thread()
    return process_record(record, params)


def _run_dask(records, params, address, handle):
    """Extract on the workers of the Dask cluster at ``address``; results come back here.

    The workers import this package and open each clip by its path, so they need the same
    installation and the same paths as this process. Only this process writes the store. A
    worker that dies loses nothing: the scheduler runs its clips again on the others (a clip
    whose task has killed ``distributed.scheduler.allowed-failures`` workers, 3 by default,
    is recorded as failed), and each result reaches ``handle`` once, whichever worker made it.
    """
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise ConfigError(f"--scheduler {address}: dask.distributed is not installed ({exc})") from exc
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(f"--scheduler {address}: cannot connect to the Dask scheduler ({one_line(str(exc))})") \
            from exc
    with client:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        pending = as_completed()

        def submit(record):
            future = client.submit(_dask_task, record, params, pure=False)
            pending.add(future)
            return future

        _drain(records, submit=submit, next_done=lambda futures: [next(pending)],
               window=4 * n_workers, lost="Dask task failed", handle=handle)
