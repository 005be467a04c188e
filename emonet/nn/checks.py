"""Argument checks shared by the model builders: each returns the value (normalised) or raises ConfigError.

Every message names the builder, the argument, the rule and the value received, e.g.
``build_emonet: n_frames must be an integer >= 1; received: 0``.
"""

from preprocessing.errors import ConfigError


def check_int(func, name, value, minimum):
    """``value`` if it is an int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{func}: {name} must be an integer >= {minimum}; received: {value!r}")
    return value


def check_rate(func, name, value):
    """``value`` as a float if it is a number (not a bool) in [0, 1), e.g. a dropout rate."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{func}: {name} must be a number in [0, 1); received: {value!r}")
    return float(value)


def check_units(func, name, value, *, allow_empty=False):
    """``value`` as a tuple if it is a sequence (not a string) of positive ints, e.g. layer sizes.

    It must be non-empty unless ``allow_empty``.
    """
    if (
        isinstance(value, (str, bytes))
        or not hasattr(value, "__len__")
        or (len(value) == 0 and not allow_empty)
        or any(isinstance(u, bool) or not isinstance(u, int) or u < 1 for u in value)
    ):
        raise ConfigError(
            f"{func}: {name} must be a {'' if allow_empty else 'non-empty '}sequence of positive integers; "
            f"received: {value!r}"
        )
    return tuple(value)


def check_choice(func, name, value, choices):
    """``value`` if it is one of ``choices`` (a sequence of str)."""
    if value not in choices:
        raise ConfigError(f"{func}: {name} must be one of {', '.join(choices)}; received: {value!r}")
    return value
