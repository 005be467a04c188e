"""Helper processes end when the process they work for ends, even when it is SIGKILLed.

A pool worker blocks on its task queue, whose pipe it holds both ends of, so the death of
the process that fed it never reaches it as end-of-file; with a fork server its parent is
the fork server, which the worker itself keeps alive, so ``PR_SET_PDEATHSIG`` never fires
either. :func:`exit_with` watches the owner directly: a daemon thread waits on a pidfd of
the owner (Linux 5.3+; elsewhere it polls every second) and ends this process when the
owner has gone.

Examples
--------
>>> exit_with(os.getppid())      # doctest: +SKIP  (in a worker's initializer)
"""

import os
import select
import threading
import time

#: Seconds between checks where no pidfd is available.
POLL_SECONDS = 1.0


def exit_with(owner_pid):
    """Start a daemon thread that ends this process (exit status 1) once process ``owner_pid`` has ended.

    Parameters
    ----------
    owner_pid : int
        The process this one works for (the job that started the pool).
    """
    threading.Thread(target=_watch, args=(owner_pid,), daemon=True, name="emonet-exit-with-owner").start()


def _watch(owner_pid):
    try:
        fd = os.pidfd_open(owner_pid)
    except (AttributeError, OSError):  # no pidfd here (or the owner is already gone)
        fd = None
    if fd is not None:
        select.select([fd], [], [])  # readable once the owner has exited
    else:
        while _alive(owner_pid):
            time.sleep(POLL_SECONDS)
    os._exit(1)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
