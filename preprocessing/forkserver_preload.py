"""Imported by the fork server of the extraction job's local workers: warm up once, before the workers fork.

:func:`preprocessing.runner.run_extraction` names this module in
``multiprocessing.set_forkserver_preload`` (:data:`preprocessing.runner.FORKSERVER_PRELOAD`).
The fork server imports it before it forks the first worker, so every worker starts as
a copy of a process that has already imported the extraction modules (NumPy, SciPy,
librosa, OpenCV: about 0.9 s of CPU) and run :func:`preprocessing.runner.warm_up`
(librosa's lazy imports and numba kernels: about 1 s), instead of each worker doing
both (with ``emonet extract`` as the main script, the fork server had imported none of it).

Importing it anywhere else costs those 2 s and changes nothing. It never raises: an
exception here would stop the fork server, and a worker that starts cold only loses time.
"""

import contextlib

with contextlib.suppress(Exception):
    import cv2  # noqa: F401 - imported for the workers (faces); no OpenCV call here, so no thread pool starts

    from .extraction import ExtractParams
    from .runner import warm_up

    warm_up(ExtractParams())
