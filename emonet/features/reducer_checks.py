"""The audio reducer's rules: its error and warning types and the checks of its settings and labels.

Used by :mod:`emonet.features.reducer` (the estimator), :mod:`emonet.features.reducer_axes`
(the numerics) and :mod:`emonet.features.reducer_arrays` (persistence).

Examples
--------
>>> from emonet.features.reducer import AudioReducer
>>> checked_settings(AudioReducer(n_components=8, expected_classes=3))
('lda', 8, 'auto', True, [0, 1, 2])
"""

import numbers
import re

import numpy as np

from preprocessing.errors import ConfigError

__all__ = ["MODES", "ReducerError", "ReducerWarning", "one_line", "checked_settings", "check_expected_classes"]

#: Reduction modes: LDA axes then residual PCA, PCA only, standardisation only.
MODES = ("lda", "pca", "none")


class ReducerError(ConfigError, ValueError):
    """A reducer setting or its training/transform data breaks a rule.

    Derives from :class:`ValueError` too, so scikit-learn (pipelines, estimator
    checks, grid search) sees the bad-input errors it expects.
    """


class ReducerWarning(UserWarning):
    """The reducer produced fewer dimensions than requested (see ``warnings_``)."""


def one_line(err, limit=300):
    """``err`` as one line of at most ``limit`` characters, without array dumps.

    Parameters
    ----------
    err : BaseException
    limit : int, default=300
        Maximum length in characters.

    Returns
    -------
    str
    """
    text = re.sub(r"array=\[.*?\]\.", "", str(err), flags=re.DOTALL)
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    if not text:
        return type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def checked_settings(reducer):
    """Validate the settings of an ``AudioReducer`` (called by ``fit``, never by ``__init__``).

    Parameters
    ----------
    reducer : AudioReducer
        Its ``mode``, ``n_components``, ``shrinkage``, ``whiten`` and ``expected_classes``.

    Returns
    -------
    mode : str
    n_components : int
    shrinkage : "auto", float or None
    whiten : bool
    expected : list or None
        The expected class labels (``0 .. k-1`` for an int ``k``).

    Raises
    ------
    ReducerError
        A setting breaks its rule; the message names it and the value received.
    """
    mode = reducer.mode
    if not isinstance(mode, str) or mode not in MODES:
        raise ReducerError(f"mode: must be one of {MODES}; received {mode!r}")
    n_components = reducer.n_components
    if not _is_int(n_components) or n_components < 1:
        raise ReducerError(f"n_components: must be an integer >= 1; received {n_components!r}")
    shrinkage = reducer.shrinkage
    bad_shrinkage = f"shrinkage: must be 'auto', None or a float in [0, 1]; received {shrinkage!r}"
    if isinstance(shrinkage, str):
        if shrinkage != "auto":
            raise ReducerError(bad_shrinkage)
    elif shrinkage is not None:
        if (not isinstance(shrinkage, numbers.Real) or isinstance(shrinkage, bool)
                or not 0.0 <= float(shrinkage) <= 1.0):
            raise ReducerError(bad_shrinkage)
        shrinkage = float(shrinkage)
    whiten = reducer.whiten
    if not isinstance(whiten, (bool, np.bool_)):
        raise ReducerError(f"whiten: must be True or False; received {whiten!r}")
    first = getattr(reducer, "first_feature", 0)
    if not _is_int(first) or first < 0:
        raise ReducerError(f"first_feature: must be an integer >= 0; received {first!r}")
    return mode, int(n_components), shrinkage, bool(whiten), _expected_labels(reducer.expected_classes)


def _expected_labels(expected):
    """``expected_classes`` as a list of labels (None stays None)."""
    if expected is None:
        return None
    if _is_int(expected):
        if expected < 2:
            raise ReducerError(f"expected_classes: must be >= 2 when an int; received {expected!r}")
        return list(range(int(expected)))
    if isinstance(expected, (str, bytes)) or not hasattr(expected, "__iter__"):
        raise ReducerError(f"expected_classes: must be None, an int or a sequence of labels; received {expected!r}")
    labels = list(expected)
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ReducerError(f"expected_classes: needs at least 2 distinct labels; received {expected!r}")
    return labels


def check_expected_classes(y, expected, n_samples):
    """Check that ``y`` holds every expected class and nothing else.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)] or None
        Training labels (nothing is checked when None).
    expected : list or None
        From :func:`checked_settings` (nothing is checked when None).
    n_samples : int
        Training clips.

    Raises
    ------
    ReducerError
        Fewer clips than classes, a class absent from ``y``, or a label not expected.
    """
    if expected is None or y is None:
        return
    if n_samples < len(expected):
        raise ReducerError(
            f"y: fewer clips than classes (n_samples={n_samples} < n_classes={len(expected)}); "
            "every expected class needs at least one training clip"
        )
    present = set(np.unique(np.asarray(y)).tolist())
    missing = [c for c in expected if c not in present]
    if missing:
        raise ReducerError(
            f"y: classes missing from the training data: {missing} "
            f"(expected_classes={len(expected)} classes, present {sorted(present, key=str)})"
        )
    unknown = sorted(present - set(expected), key=str)
    if unknown:
        raise ReducerError(f"y: labels not in expected_classes: {unknown}")
