"""The audio reducer on disk: its state as plain arrays, in a pickle-free ``.npz``.

A fitted :class:`emonet.features.reducer.AudioReducer` is numeric and string arrays
only (:func:`reducer_to_arrays`); :func:`write_npz` stores them with
:func:`numpy.savez` through :func:`preprocessing.files.atomic_path`, and
:func:`read_npz` reads them back with ``allow_pickle=False``: a reducer file never
contains or executes a pickle. :func:`state_from_arrays` checks the arrays and
splits them into constructor settings and fitted attributes.

Examples
--------
>>> arrays = reducer_to_arrays(reducer)                  # doctest: +SKIP
>>> write_npz("reducer.npz", arrays)                     # doctest: +SKIP
>>> params, fitted = state_from_arrays(read_npz("reducer.npz"))  # doctest: +SKIP
"""

from pathlib import Path

import numpy as np

from emonet.features.reducer_checks import MODES, ReducerError, one_line
from preprocessing.errors import ModelError
from preprocessing.files import atomic_path

__all__ = ["FORMAT", "reducer_to_arrays", "state_from_arrays", "write_npz", "read_npz"]

#: Value of the ``format`` array in :func:`reducer_to_arrays`; bumped when the
#: array layout changes.
FORMAT = "emonet.AudioReducer/1"

#: Keys every reducer array set holds (``expected_classes``, ``classes_`` and
#: ``feature_names_in_`` are optional).
REQUIRED = (
    "format", "n_components", "mode", "shrinkage", "whiten", "mean_", "scale_",
    "components_", "n_features_in_", "n_components_", "n_lda_components_",
    "lda_eigenvalues_", "pca_explained_variance_", "shrinkage_", "warnings_",
)


def reducer_to_arrays(reducer):
    """Settings and fitted state of a fitted ``AudioReducer`` as plain arrays.

    Parameters
    ----------
    reducer : AudioReducer
        Fitted.

    Returns
    -------
    dict of str -> np.ndarray
        Numeric, bool or unicode arrays only; the identity projection of
        ``mode="none"`` is stored as an empty ``components_`` and rebuilt on load.

    Raises
    ------
    ReducerError
        ``expected_classes`` or ``classes_`` hold labels that are neither numbers
        nor strings.
    """
    arrays = {
        "format": np.array(FORMAT),
        "n_components": np.array(int(reducer.n_components), dtype=np.int64),
        "mode": np.array(str(reducer.mode)),
        "shrinkage": np.array(_shrinkage_to_str(reducer.shrinkage)),
        "whiten": np.array(bool(reducer.whiten)),
        "mean_": np.asarray(reducer.mean_, dtype=np.float64),
        "scale_": np.asarray(reducer.scale_, dtype=np.float64),
        "components_": (np.zeros((0, 0)) if reducer.mode == "none"
                        else np.asarray(reducer.components_, dtype=np.float64)),
        "n_features_in_": np.array(int(reducer.n_features_in_), dtype=np.int64),
        "n_components_": np.array(int(reducer.n_components_), dtype=np.int64),
        "n_lda_components_": np.array(int(reducer.n_lda_components_), dtype=np.int64),
        "lda_eigenvalues_": np.asarray(reducer.lda_eigenvalues_, dtype=np.float64),
        "pca_explained_variance_": np.asarray(reducer.pca_explained_variance_, dtype=np.float64),
        "shrinkage_": np.array(float(reducer.shrinkage_), dtype=np.float64),
        "warnings_": np.array(list(reducer.warnings_), dtype=str),
        "first_feature": np.array(int(getattr(reducer, "first_feature", 0)), dtype=np.int64),
    }
    if reducer.expected_classes is not None:
        arrays["expected_classes"] = _plain_array(reducer.expected_classes, "expected_classes")
    if hasattr(reducer, "classes_"):
        arrays["classes_"] = _plain_array(reducer.classes_, "classes_")
    if hasattr(reducer, "feature_names_in_"):
        arrays["feature_names_in_"] = np.asarray(reducer.feature_names_in_, dtype=str)
    return arrays


def state_from_arrays(arrays, *, source="arrays"):
    """Check :func:`reducer_to_arrays` output and split it into settings and fitted state.

    Parameters
    ----------
    arrays : mapping of str -> np.ndarray
        As returned by :func:`reducer_to_arrays` or :func:`read_npz`.
    source : str, default="arrays"
        Named in error messages (e.g. the file path).

    Returns
    -------
    params : dict
        Constructor settings (``n_components``, ``mode``, ``shrinkage``, ``whiten``,
        ``expected_classes``).
    fitted : dict
        Fitted attributes (names ending in ``_``), consistent shapes and finite values.

    Raises
    ------
    preprocessing.errors.ModelError
        Wrong format tag, missing keys, object arrays or inconsistent shapes.
    """
    missing = [key for key in REQUIRED if key not in arrays]
    if missing:
        raise ModelError(f"{source}: reducer arrays incomplete; missing keys {missing}")
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise ModelError(f"{source}: reducer array {key!r} has dtype object; only numeric/str arrays are allowed")
    fmt = str(np.asarray(arrays["format"]))
    if fmt != FORMAT:
        raise ModelError(f"{source}: reducer format must be {FORMAT!r}; received {fmt!r}")

    def scalar(key, kind):
        value = np.asarray(arrays[key])
        if value.size != 1:
            raise ModelError(f"{source}: reducer array {key!r} must hold one value; received shape {value.shape}")
        return kind(value.item())

    def floats(key):
        return np.asarray(arrays[key], dtype=np.float64)

    mode = scalar("mode", str)
    if mode not in MODES:
        raise ModelError(f"{source}: reducer mode must be one of {MODES}; received {mode!r}")
    expected = None
    if "expected_classes" in arrays:
        value = np.asarray(arrays["expected_classes"])
        expected = value.item() if value.ndim == 0 else tuple(value.tolist())
    params = {
        "n_components": scalar("n_components", int),
        "mode": mode,
        "shrinkage": _shrinkage_from_str(scalar("shrinkage", str), source),
        "whiten": scalar("whiten", bool),
        "expected_classes": expected,
        "first_feature": scalar("first_feature", int) if "first_feature" in arrays else 0,  # absent before session 14
    }
    n_in, n_out = scalar("n_features_in_", int), scalar("n_components_", int)
    fitted = {
        "mean_": floats("mean_"),
        "scale_": floats("scale_"),
        "n_features_in_": n_in,
        "components_": np.eye(n_in) if mode == "none" else floats("components_"),
        "n_components_": n_out,
        "n_lda_components_": scalar("n_lda_components_", int),
        "lda_eigenvalues_": floats("lda_eigenvalues_"),
        "pca_explained_variance_": floats("pca_explained_variance_"),
        "shrinkage_": scalar("shrinkage_", float),
        "warnings_": [str(w) for w in np.asarray(arrays["warnings_"]).tolist()],
    }
    if "classes_" in arrays:
        fitted["classes_"] = np.asarray(arrays["classes_"])
    if "feature_names_in_" in arrays:
        fitted["feature_names_in_"] = np.asarray(arrays["feature_names_in_"]).astype(object)

    shapes = {"mean_": (n_in,), "scale_": (n_in,), "components_": (n_out, n_in)}
    for key, want in shapes.items():
        got = fitted[key].shape
        if got != want:
            raise ModelError(f"{source}: reducer array {key!r} must have shape {want}; received {got}")
    if not (np.all(np.isfinite(fitted["components_"])) and np.all(fitted["scale_"] > 0)
            and np.all(np.isfinite(fitted["mean_"]))):
        raise ModelError(f"{source}: reducer arrays contain non-finite values or a non-positive scale_")
    return params, fitted


def write_npz(path, arrays):
    """Write ``arrays`` to ``path`` as an uncompressed ``.npz``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination, used exactly as given (no suffix added).
    arrays : dict of str -> np.ndarray
        Plain arrays (:func:`reducer_to_arrays`).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: savez adds no ".npz"
        np.savez(fh, **arrays)
    return path


def read_npz(path):
    """Read the arrays of a reducer ``.npz`` with ``allow_pickle=False``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict of str -> np.ndarray

    Raises
    ------
    preprocessing.errors.ModelError
        The file is missing, not an ``.npz``, holds pickled objects or is damaged.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: reducer file does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError) as err:
        raise ModelError(f"{path}: not a readable pickle-free reducer .npz ({one_line(err)})") from err
    except Exception as err:  # zipfile.BadZipFile and friends from a damaged file
        raise ModelError(f"{path}: damaged reducer .npz ({type(err).__name__}: {one_line(err)})") from err


def _shrinkage_to_str(shrinkage):
    if shrinkage is None:
        return "none"
    if isinstance(shrinkage, str):
        return shrinkage
    return repr(float(shrinkage))


def _shrinkage_from_str(text, source):
    if text == "none":
        return None
    if text == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise ModelError(f"{source}: reducer shrinkage must be 'auto', 'none' or a float; received {text!r}") from None


def _plain_array(values, name):
    """``values`` as a numeric/bool/unicode array (object arrays of str become unicode)."""
    arr = np.asarray(values)
    if arr.dtype == object:
        if not all(isinstance(v, str) for v in arr.ravel().tolist()):
            raise ReducerError(f"{name}: labels must be numbers or strings to be saved; received {values!r}")
        arr = arr.astype(str)
    return arr
