"""The one way this project writes a file that must never be seen half-written.

Every writer goes through :func:`atomic_path`: the content is written to a
temporary file beside the target (same folder, so the same file system),
flushed to disk, and renamed over the target with ``os.replace``. A process
killed at any moment leaves either the old file or the new one, never a torn
one; the temporary file is removed when the writer raises. A process killed
with SIGKILL cannot remove it: :func:`leftover_temporaries` finds those for a
writer that knows it is the only one (e.g. under a lock).

Examples
--------
>>> with atomic_path("metrics.json") as tmp:          # doctest: +SKIP
...     tmp.write_text("{}")
>>> atomic_write_text("metrics.json", "{}")            # doctest: +SKIP
"""

import contextlib
import os
import re
import secrets
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


def _temporary_name(path, suffix):
    """``.<name>.<8 hex digits>.tmp<suffix>``: hidden, beside ``path``, recognisable as its temporary."""
    return f".{path.name}.{secrets.token_hex(4)}.tmp{suffix}"


def _create_temporary(path, suffix):
    """Create a new, empty temporary file beside ``path`` (mode 0o666 minus the umask, like ``open``)."""
    while True:
        tmp = path.parent / _temporary_name(path, suffix)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


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
        Where to write (an empty file named ``.<name>.<8 hex digits>.tmp<suffix>``).
        Removed if the ``with`` body raises.
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    tmp = _create_temporary(path, suffix)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def leftover_temporaries(path, *, suffix=None):
    """Temporary files of :func:`atomic_path` for ``path`` that are still on disk.

    Only a writer killed before its ``os.replace`` leaves one. Delete them only while no
    other process may be writing ``path`` (for example while holding its lock).

    Parameters
    ----------
    path : str or os.PathLike
    suffix : str, optional
        As given to :func:`atomic_path`.

    Returns
    -------
    list of pathlib.Path
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    pattern = re.compile(re.escape(f".{path.name}.") + "[0-9a-f]{8}" + re.escape(f".tmp{suffix}"))
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


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
