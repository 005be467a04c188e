"""One BLAS/OpenMP thread while a worker extracts a clip, without searching the libraries every clip;
one OpenCV thread in a process whose parallelism is its siblings (extraction workers and helpers).

``threadpoolctl.threadpool_limits`` lists the loaded native libraries (``/proc/self/maps``,
``dlopen`` of each) on every call: about 3-7 ms per clip on the 2-core machine, for a setting
that never changes. :func:`one_blas_thread` does that search once per process, after the first
clip (which loads the last libraries, e.g. SciPy's OpenBLAS through librosa), and reuses the
controller for every later clip.

Examples
--------
>>> with one_blas_thread():      # doctest: +SKIP
...     extract_clip(path, params)
"""

from threadpoolctl import ThreadpoolController, threadpool_limits

_CONTROLLER = []  # the process's ThreadpoolController, once a first clip has loaded every library


def one_blas_thread():
    """Context manager: every BLAS/OpenMP pool of this process limited to 1 thread, restored on exit.

    The first call in a process searches the loaded libraries (``threadpool_limits``); later calls
    reuse what a search made after it found (``ThreadpoolController.limit``).
    """
    if _CONTROLLER:
        return _CONTROLLER[0].limit(limits=1)
    return _FirstLimit()


class _FirstLimit:
    """``threadpool_limits(limits=1)`` that keeps a controller of the libraries loaded by the time it exits."""

    def __enter__(self):
        self._limits = threadpool_limits(limits=1)
        return self._limits

    def __exit__(self, *exc):
        self._limits.restore_original_limits()
        if not _CONTROLLER:
            _CONTROLLER.append(ThreadpoolController())
        return False


def one_opencv_thread():
    """Set this process's OpenCV to one thread: in extraction workers, Dask tasks and prediction helpers the
    processes are the parallelism, and OpenCV's own threads would compete with them for the cores."""
    import cv2
    cv2.setNumThreads(1)
