"""Helper processes that decode and extract while the main process runs the model.

The main process keeps the one TensorFlow model; helpers (started with ``spawn``, so
they never inherit TensorFlow's threads, and they import NumPy, OpenCV and librosa only)
do what needs no model:

- :class:`ExtractionFeed` for ``emonet predict`` over clips: a pool of ``workers``
  processes runs :func:`extraction_outcome` (decoding, faces, audio functionals) on the
  next clips while the model classifies the previous batch. Outcomes come back in the
  order of the clips, whichever helper finishes first, so results and their order are
  those of the serial path (``workers=0``, the same function in this process). At most
  :func:`prefetch` clips are in flight, so memory stays bounded however many clips.
- :class:`StreamHelper` for timelines: one process per stream of a long video (video:
  frames, faces tracked and cropped; audio: each window's functionals) sends its records
  through a bounded queue as they are ready (:mod:`emonet.inference.window_streams`).

Helpers are started before TensorFlow is imported, so their start-up (about 1 s) and
their first clips overlap the model's. Ctrl-C is left to the main process: helpers
ignore SIGINT and are stopped when the main process closes them (or exits).
"""

import collections
import contextlib
import logging
import multiprocessing
import os
import signal

from preprocessing.errors import EmonetError, MediaError, one_line
from preprocessing.lifetime import exit_with

logger = logging.getLogger(__name__)

#: Most helper processes chosen by default (:func:`default_workers`).
MAX_DEFAULT_WORKERS = 2

#: Messages a streaming helper may queue ahead of the main process (each at most one step of
#: face crops, 64 x 64 x 64 x 3 bytes = 0.8 MB): memory stays flat, the helper rarely waits.
STREAM_QUEUE = 8

#: Seconds the main process waits for a streaming helper's next message before asking whether it died.
POLL_SECONDS = 5.0


def default_workers():
    """Helper processes by default: the machine's CPU count, at most :data:`MAX_DEFAULT_WORKERS`.

    The main process needs little CPU besides the model, so as many helpers as cores (two
    at most: beyond that the model, not extraction, sets the pace) keep every core busy.
    """
    return max(1, min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1))


def check_workers(workers):
    """``workers`` as an int (None: :func:`default_workers`); :class:`EmonetError` if negative."""
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise EmonetError(f"--workers must be an integer >= 0; received {workers!r}")
    return workers


def prefetch(workers, batch_size):
    """Clips in flight: a whole batch ahead of the model plus two per helper, so no helper waits."""
    return batch_size + 2 * workers


def _spawn():
    return multiprocessing.get_context("spawn")


def _helper_start(owner_pid):
    """Helper start-up: Ctrl-C is the main process's to handle (it stops the helpers), and the
    helper ends with the main process, even a SIGKILLed one (:func:`preprocessing.lifetime.exit_with`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with(owner_pid)


_PARAMS = {}


def resolved_params(params):
    """``params`` itself, or for a run folder (str or os.PathLike) its prediction settings (read once per process)."""
    if not isinstance(params, (str, os.PathLike)):
        return params
    key = os.fspath(params)
    if key not in _PARAMS:
        from emonet.inference.runtime import folder_prediction_params
        _PARAMS[key] = folder_prediction_params(key)
    return _PARAMS[key]


def extraction_outcome(path, params, detector=None):
    """Extract one clip for prediction: ``("ok", arrays, attrs, notes)`` or ``("error", one-line reason)``.

    Parameters
    ----------
    path : str or os.PathLike
    params : preprocessing.extraction.ExtractParams or str or os.PathLike
        Extraction settings, or a run folder whose prediction settings to use (a helper reads
        them itself, so the main process need not import the extraction to start it).
    detector : object, optional
        Face detector; default: this process's one for ``params.detector``.

    Returns
    -------
    tuple
        ``arrays``: ``faces`` (T, S, S, 3) uint8 crops, ``audio_functionals`` (D,) float32 and, with
        ``params.audio_speeds``, ``audio_speed_functionals`` (K, D) float32;
        ``attrs``: ``has_video``, ``has_audio``, ``audio_silent``, ``face_rate``; ``notes``:
        list of str. A clip that cannot be decoded gives its reason instead (only
        :class:`EmonetError`; anything else is a bug and raises).
    """
    from preprocessing.extraction import extract_clip
    from preprocessing.faces import process_detector
    params = resolved_params(params)
    try:
        arrays, attrs, notes = extract_clip(path, params, detector=detector or process_detector(params.detector))
    except EmonetError as exc:
        return "error", one_line(str(exc), 400)
    arrays = {k: arrays[k] for k in ("faces", "audio_functionals", "audio_speed_functionals") if k in arrays}
    attrs = {k: attrs[k] for k in ("has_video", "has_audio", "audio_silent", "face_rate")}
    return "ok", arrays, attrs, list(notes)


def feed_helper_start(owner_pid):
    """An extraction helper's start-up: :func:`_helper_start`, and one OpenCV thread (the helpers are the parallelism)."""
    _helper_start(owner_pid)
    from preprocessing.threads import one_opencv_thread
    one_opencv_thread()


def helper_extraction_outcome(path, params):
    """:func:`extraction_outcome` in a helper process: on one BLAS thread, as the extraction job's workers.

    With the library defaults each helper ran OpenCV and BLAS on every core, beside the other
    helper and the model: on 2 cores ``emonet predict`` spent about twice the CPU per clip of
    ``emonet extract`` (experiments/bench_predict.py).
    """
    from preprocessing.threads import one_blas_thread
    with one_blas_thread():
        return extraction_outcome(path, params)


class ExtractionFeed:
    """Extraction outcomes of clips, in their order, computed ahead by helper processes.

    Jobs are submitted when the feed is made (before the model loads) and kept
    :func:`prefetch` clips ahead of the one being read; ``params`` may be a run folder
    (:func:`resolved_params`), read by the helpers. ``workers=0`` extracts each clip
    in this process when it is read (with ``detector``), the serial path.

    Iterate for ``(path, outcome)`` pairs (:func:`extraction_outcome`); :meth:`close` (or
    ``with``) stops the helpers, cancelling the clips not started.

    Raises
    ------
    MediaError
        When read: a helper process died (killed, out of memory) while extracting the clip.
    """

    def __init__(self, paths, params, *, workers, detector=None, ahead=None):
        self.paths, self.params, self.workers, self.detector = list(paths), params, workers, detector
        self._next = 0
        self._futures = collections.deque()
        self._pool = None
        if workers > 0 and self.paths:
            from concurrent.futures import ProcessPoolExecutor
            self._pool = ProcessPoolExecutor(min(workers, len(self.paths)), mp_context=_spawn(),
                                             initializer=feed_helper_start, initargs=(os.getpid(),))
            self._ahead = ahead or prefetch(workers, 16)
            self._fill()

    def _fill(self):
        while self._next < len(self.paths) and len(self._futures) < self._ahead:
            path = self.paths[self._next]
            self._futures.append((path, self._pool.submit(helper_extraction_outcome, path, self.params)))
            self._next += 1

    def __iter__(self):
        if self._pool is None:
            for path in self.paths:
                yield path, extraction_outcome(path, self.params, self.detector)
            return
        from concurrent.futures.process import BrokenProcessPool
        while self._futures:
            path, future = self._futures.popleft()
            try:
                outcome = future.result()
            except BrokenProcessPool as exc:
                raise MediaError(f"{path}: the helper process extracting it died ({exc})") from None
            self._fill()
            yield path, outcome

    def close(self):
        """Stop the helpers: clips not started are cancelled; the helpers exit on their own (not waited for)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _stream_loop(produce, tasks, results, cancel, owner_pid, warm_up=None):
    """A streaming helper's life: ``warm_up()`` (if any; a failure only costs the first task the time),
    then for each task ``(args, kwargs)``, send ``produce``'s items, then an end mark."""
    _helper_start(owner_pid)
    if warm_up is not None:
        with contextlib.suppress(Exception):
            warm_up()
    for args, kwargs in iter(tasks.get, None):
        items = None
        try:
            items = produce(*args, **kwargs)
            for item in items:
                if cancel.is_set():
                    break
                results.put(("item", item))
            results.put(("end", None))
        except EmonetError as exc:
            results.put(("error", str(exc)))
        except Exception as exc:  # noqa: BLE001 - a bug: reported to the main process, which raises
            results.put(("bug", f"{type(exc).__name__}: {exc}"))
        finally:
            if items is not None and hasattr(items, "close"):
                items.close()  # stops the ffmpeg of a cancelled stream


class StreamHelper:
    """A helper process streaming the items of ``produce(*args, **kwargs)`` for one task at a time.

    ``produce`` is a module-level generator function (importable by the helper). Start it
    early (it imports in the background); :meth:`stream` sends a task and yields its items
    as the helper sends them (at most :data:`STREAM_QUEUE` ahead); :meth:`close` stops it.
    ``warm_up``, a module-level function, runs in the helper as soon as it starts (loading what
    the first task needs while the main process loads the model).
    """

    def __init__(self, produce, warm_up=None):
        context = _spawn()
        self._tasks, self._results = context.SimpleQueue(), context.Queue(STREAM_QUEUE)
        self._cancel = context.Event()
        self._open, self._task = False, 0  # a task was sent and its end mark not read yet; its number
        args = (produce, self._tasks, self._results, self._cancel, os.getpid(), warm_up)
        self._process = context.Process(target=_stream_loop, args=args,
                                        daemon=True, name=f"emonet-{produce.__name__}")
        self._process.start()

    def _get(self):
        import queue
        while True:
            try:
                return self._results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if not self._process.is_alive():
                    raise MediaError(f"the helper process {self._process.name} died "
                                     f"(exit code {self._process.exitcode})") from None

    def stream(self, *args, **kwargs):
        """Start ``produce(*args, **kwargs)`` in the helper now; returns an iterator of its items.

        Closing the iterator early (or starting another stream) cancels the task: the helper
        stops producing and its queued items are dropped.

        Raises
        ------
        MediaError
            When iterated: the producer raised an :class:`EmonetError` (its message), or the helper died.
        RuntimeError
            When iterated: the producer raised anything else (a bug).
        """
        self._finish()
        self._tasks.put((args, kwargs))
        self._open, self._task = True, self._task + 1
        return self._items(self._task)

    def _items(self, task):
        try:
            while self._open and self._task == task:
                kind, value = self._get()
                if kind == "item":
                    yield value
                    continue
                self._open = False
                if kind == "error":
                    raise MediaError(value)
                if kind == "bug":
                    raise RuntimeError(f"helper process {self._process.name}: {value}")
        finally:
            if self._task == task:  # not a stream that another one replaced
                self._finish()

    def _finish(self):
        """Cancel the task in progress, if any, and read up to its end mark."""
        if not self._open:
            return
        self._cancel.set()
        with contextlib.suppress(MediaError):  # a dead helper has nothing more to send
            while self._get()[0] == "item":
                pass
        self._cancel.clear()
        self._open = False

    def close(self):
        """Stop the helper process (it ends after its current task)."""
        self._finish()
        if self._process.is_alive():
            self._tasks.put(None)
            self._process.join(timeout=POLL_SECONDS)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
