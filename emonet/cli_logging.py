"""The command's messages: the library's log records (INFO and up) as plain lines on stderr."""

import logging
import sys

#: Loggers of the library whose messages the command shows on stderr.
LIBRARY_LOGGERS = ("emonet", "preprocessing")


class _StderrHandler(logging.StreamHandler):
    """One-line messages to whatever ``sys.stderr`` is at the time (so redirections and test captures see them)."""

    def __init__(self):
        super().__init__(stream=sys.stderr)
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure_logging():
    """Show the library's progress messages (INFO and above) on stderr, once per process.

    TensorFlow's own Python warnings (e.g. "triggered tf.function retracing", a performance hint
    ``emonet evaluate`` gets when it scores several models) are held to ERROR while its C++ log
    is (``TF_CPP_MIN_LOG_LEVEL`` 2 or more, the command's default): ``TF_CPP_MIN_LOG_LEVEL=0`` shows both.
    """
    from emonet.inference.runtime import tf_log_level  # light: no NumPy, no TensorFlow
    if tf_log_level() >= 2:
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.setLevel(logging.INFO)
        if not any(isinstance(h, _StderrHandler) for h in library.handlers):
            library.addHandler(_StderrHandler())
        library.propagate = False
