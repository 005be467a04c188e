"""The one exception family of EmoNet.

Every error a user can cause derives from :class:`EmonetError`; its message is a
single line that names the file or parameter, the rule and what was received.
:mod:`emonet` re-exports these classes.
"""


class EmonetError(Exception):
    """Base class of every error EmoNet raises on purpose."""


class MediaError(EmonetError):
    """A clip could not be probed or decoded (corrupt, truncated, not media)."""


class DatasetError(EmonetError):
    """A dataset folder or manifest is missing or malformed."""


class StoreError(EmonetError):
    """The HDF5 feature store is unwritable, locked or was built with other parameters."""


class ConfigError(EmonetError):
    """A run configuration or command-line value breaks a rule."""


class ModelError(EmonetError):
    """A model or run directory is missing, incomplete or unsafe to load."""


def one_line(text, limit=300):
    """Collapse ``text`` (e.g. ffmpeg's stderr) into one line of at most ``limit`` characters.

    Keeps the *last* meaningful lines, where ffmpeg puts the actual cause.
    """
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    joined = " | ".join(lines[-3:])
    return joined if len(joined) <= limit else "..." + joined[-(limit - 3):]
