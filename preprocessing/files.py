"""The one way this project writes a file that must never be seen half-written.

Every writer goes through :func:`atomic_path`: the content is written to a
temporary file beside the target (same folder, so the same file system),
flushed to disk, and renamed over the target with ``os.replace``. A process
killed at any moment leaves either the old file or the new one, never a torn
one; the temporary file is removed when the writer raises.

Examples
--------
>>> with atomic_path("metrics.json") as tmp:          # doctest: +SKIP
...     tmp.write_text("{}")
>>> atomic_write_text("metrics.json", "{}")            # doctest: +SKIP
"""

import contextlib
import os
import tempfile
from pathlib import Path


def fsync_path(path):
    """Flush a file (or folder entry) to disk; silently skipped where the OS refuses."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, *, suffix=None):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The target file. Its folder must exist.
    suffix : str, optional
        Ending of the temporary name (default: the target's own suffix, so writers that
        choose a format by extension, such as Keras ``.keras`` or h5py, keep working).

    Yields
    ------
    pathlib.Path
        Where to write. Removed if the ``with`` body raises.
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    handle, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(handle)
    tmp = Path(tmp)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path, text, *, encoding="utf-8"):
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
