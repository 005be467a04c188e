"""Running ffmpeg with its stdout read in fixed-size blocks and its other pipes drained.

:func:`pump_stdout` is the one loop: it reads a process's stdout ``chunk_bytes`` at a time
while reader threads empty its other pipes (stderr, an extra audio pipe), so ffmpeg never
blocks on a full pipe; then it closes stdout, waits for the process and joins the readers.
:func:`run_streaming` runs a command that way with stderr as the only other pipe
(:mod:`preprocessing.media`); :mod:`preprocessing.av_decode` adds its audio pipe.
"""

import os
import subprocess
import threading


def pump_stdout(proc, chunk_bytes, consume, readers):
    """Hand each whole ``chunk_bytes`` block of ``proc``'s stdout to ``consume``, draining other pipes.

    Parameters
    ----------
    proc : subprocess.Popen
        Started with ``stdout=subprocess.PIPE``.
    chunk_bytes : int
        Bytes per block; a shorter read ends the loop (a trailing partial block is dropped).
    consume : callable
        Called with each block (bytes).
    readers : list of threading.Thread
        Not yet started; each empties one of ``proc``'s other pipes. Started here, joined
        after ``proc`` exits.

    Returns
    -------
    int
        The process's exit status.
    """
    for reader in readers:
        reader.start()
    try:
        while True:
            buf = proc.stdout.read(chunk_bytes)
            if len(buf) < chunk_bytes:
                break
            consume(buf)
    finally:
        proc.stdout.close()
        returncode = proc.wait()
        for reader in readers:
            reader.join()
    return returncode


def run_streaming(cmd, chunk_bytes, consume):
    """Run ``cmd``, handing each ``chunk_bytes`` block of stdout to ``consume``.

    stderr is drained by a thread so a chatty ffmpeg can never block the pipe.

    Returns
    -------
    returncode : int
        ffmpeg's exit status.
    stderr : str
        ffmpeg's error output.
    """
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    errors = []
    drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
    returncode = pump_stdout(proc, chunk_bytes, consume, [drain])
    return returncode, b"".join(errors).decode("utf-8", "replace")


def read_all(fd):
    """All bytes from file descriptor ``fd`` until EOF (the fd stays open: the caller closes it)."""
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
