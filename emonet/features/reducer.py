"""The audio reducer: ~1,500 audio functionals -> 512 dims, fitted on the training split.

Fisher LDA on ``C`` classes has at most ``C - 1`` discriminant axes (6 for the seven
emotions), and with ~1,500 features and a few hundred clips the within-class scatter
is singular. :class:`AudioReducer` therefore

1. standardises every feature with the training mean and standard deviation
   (constant features get scale 1, so they contribute ``x - mean``);
2. takes the ``C - 1`` LDA axes of the standardised data, with the pooled
   within-class covariance shrunk towards a scaled identity (Ledoit-Wolf by default);
3. fills the remaining dimensions with the PCA-whitened principal components of what
   LDA leaves: the standardised data minus its least-squares fit on the LDA scores,
   so on the training data the PCA dims are uncorrelated with the LDA dims and with
   each other.

The output width is capped by what the training data support (numerical rank of the
standardised data, at most ``min(n_samples - 1, n_features)``); a cap is recorded in
``warnings_`` and emitted once as a :class:`ReducerWarning`.

The fitted state is plain numeric and string arrays (:meth:`AudioReducer.to_arrays`),
saved with :func:`numpy.savez` and read back with ``allow_pickle=False``: a reducer
file never contains or executes a pickle.

Examples
--------
>>> import numpy as np
>>> from emonet.features.reducer import AudioReducer
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(700, 1500))
>>> y = np.repeat(np.arange(7), 100)
>>> reducer = AudioReducer(n_components=512).fit(X, y)
>>> reducer.transform(X).shape
(700, 512)
"""

import numbers
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from preprocessing.errors import ConfigError, ModelError

__all__ = ["AudioReducer", "ReducerError", "ReducerWarning", "MODES", "FORMAT"]

#: Reduction modes: LDA axes then residual PCA, PCA only, standardisation only.
MODES = ("lda", "pca", "none")

#: Value of the ``format`` array in :meth:`AudioReducer.to_arrays`; bumped when the
#: array layout changes.
FORMAT = "emonet.AudioReducer/1"

_EPS = np.finfo(np.float64).eps


class ReducerError(ConfigError, ValueError):
    """A reducer setting or its training/transform data breaks a rule.

    Derives from :class:`ValueError` too, so scikit-learn (pipelines, estimator
    checks, grid search) sees the bad-input errors it expects.
    """


class ReducerWarning(UserWarning):
    """The reducer produced fewer dimensions than requested (see ``warnings_``)."""


class AudioReducer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Standardise, project on the LDA axes, fill up with residual whitened PCA.

    A scikit-learn transformer: ``__init__`` only stores settings, :meth:`fit`
    learns the attributes ending in ``_``, :meth:`transform` maps clips.

    Parameters
    ----------
    n_components : int, default=512
        Requested output width (ignored when ``mode="none"``). In ``mode="lda"`` the
        first ``min(n_components, C - 1)`` dims are the LDA axes. Capped by what the
        training data support; the width actually produced is ``n_components_``.
    mode : {"lda", "pca", "none"}, default="lda"
        ``"lda"``: LDA axes first, then PCA-whitened components of the residual
        (needs ``y``). ``"pca"``: PCA components of the standardised data (``y`` is
        ignored). ``"none"``: standardisation only, output width ``n_features``.
    shrinkage : "auto", float in [0, 1] or None, default="auto"
        Shrinkage of the pooled within-class covariance towards ``mu * I`` (``mu``
        its mean eigenvalue): ``"auto"`` uses the Ledoit-Wolf coefficient, ``None``
        no shrinkage (a singular scatter is pseudo-inverted). ``mode="lda"`` only.
    whiten : bool, default=True
        ``True``: every output dim has unit variance on the training data (ddof=1).
        ``False``: LDA dims are projections of the standardised clip onto unit-length
        directions, PCA dims are coordinates of the residual along orthonormal
        directions (their training variance is ``pca_explained_variance_``).
        Ignored when ``mode="none"``.
    expected_classes : None, int or sequence of labels, default=None
        When given, ``fit`` checks that ``y`` holds every expected class and nothing
        else: an int ``k`` means the class ids ``0 .. k-1`` (use 7 for
        :data:`preprocessing.constants.CLASSES`), a sequence lists the labels.

    Attributes
    ----------
    mean_ : np.ndarray [shape=(n_features_in_,)]
        Training mean of each feature (feature units).
    scale_ : np.ndarray [shape=(n_features_in_,)]
        Training standard deviation of each feature (ddof=0); 1.0 for constant
        features.
    components_ : np.ndarray [shape=(n_components_, n_features_in_)]
        Projection applied to the standardised clips ``z = (x - mean_) / scale_``:
        ``out = z @ components_.T``. Rows ``0 .. n_lda_components_-1`` are the LDA
        axes (decreasing discriminant ratio), the rest residual PCA (decreasing
        variance). The identity in ``mode="none"``.
    n_components_ : int
        Output width of :meth:`transform`.
    n_lda_components_ : int
        Number of leading output dims that are LDA axes (0 unless ``mode="lda"``).
    lda_eigenvalues_ : np.ndarray [shape=(n_lda_components_,)]
        Between-class / within-class variance ratio of each LDA axis (training data).
    pca_explained_variance_ : np.ndarray [shape=(n_components_ - n_lda_components_,)]
        Training variance (ddof=1, standardised units) along each PCA direction
        before whitening.
    shrinkage_ : float
        Shrinkage coefficient actually used (``mode="lda"``; NaN otherwise).
    classes_ : np.ndarray [shape=(n_classes,)]
        Sorted class labels seen in ``fit`` (``mode="lda"`` only).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : np.ndarray [shape=(n_features_in_,)]
        Feature names, only when ``X`` had string column names.
    warnings_ : list of str
        One line per cap applied in ``fit`` (empty when none was needed).

    Notes
    -----
    :meth:`transform` returns float64 whatever the input dtype.

    Examples
    --------
    >>> reducer = AudioReducer(n_components=512, expected_classes=7)
    >>> Z_train = reducer.fit_transform(X_train, y_train)   # doctest: +SKIP
    >>> reducer.save(run_dir / "reducer.npz")               # doctest: +SKIP
    >>> Z_val = AudioReducer.load(run_dir / "reducer.npz").transform(X_val)  # doctest: +SKIP
    """

    def __init__(self, n_components=512, mode="lda", shrinkage="auto", whiten=True, expected_classes=None):
        self.n_components = n_components
        self.mode = mode
        self.shrinkage = shrinkage
        self.whiten = whiten
        self.expected_classes = expected_classes

    # ------------------------------------------------------------------ sklearn API

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # LDA needs the class labels; pca and none are unsupervised.
        tags.target_tags.required = self.mode == "lda"
        return tags

    @property
    def _n_features_out(self):
        return self.n_components_

    def fit(self, X, y=None):
        """Learn standardisation, LDA axes and residual PCA from the training clips.

        Parameters
        ----------
        X : array-like [shape=(n_samples, n_features)]
            Audio functionals of the training clips (feature units; finite).
        y : array-like [shape=(n_samples,)] or None
            Class ids or labels of the clips; required when ``mode="lda"``,
            ignored otherwise (except for the ``expected_classes`` check).

        Returns
        -------
        self : AudioReducer

        Raises
        ------
        ReducerError
            Bad setting, empty / non-finite ``X``, ``y`` missing or with fewer than
            2 classes (``mode="lda"``), fewer clips than expected classes, or a class
            of ``expected_classes`` absent from ``y``. A fit that raises leaves the
            previous fitted state (if any) as it was.
        """
        # validate_data sets these two before the fit can still fail: restore them
        kept = {k: getattr(self, k) for k in ("n_features_in_", "feature_names_in_") if hasattr(self, k)}
        try:
            return self._fit(X, y)
        except BaseException:
            for key in ("n_features_in_", "feature_names_in_"):
                if key in kept:
                    setattr(self, key, kept[key])
                elif hasattr(self, key):
                    delattr(self, key)
            raise

    def _fit(self, X, y):
        mode, n_components, shrinkage, whiten, expected = self._checked_settings()
        supervised = mode == "lda"
        if supervised and y is None:
            raise ReducerError(
                "y: mode='lda' requires y to be passed, but the target y is None; "
                "pass the class ids of the training clips or use mode='pca'"
            )
        try:
            if supervised or (y is not None and expected is not None):
                X, y = validate_data(self, X, y, dtype=np.float64)
            else:
                X = validate_data(self, X, dtype=np.float64)
        except ValueError as err:
            raise ReducerError(_one_line(err)) from err
        n_samples, n_features = X.shape
        self._check_expected_classes(y, expected, n_samples)
        if mode != "none" and n_samples < 2:
            raise ReducerError(
                f"X: mode={mode!r} needs at least 2 clips to estimate a projection; "
                f"received n_samples={n_samples}"
            )
        if supervised:
            try:
                check_classification_targets(y)
            except ValueError as err:
                raise ReducerError(f"y: {_one_line(err)}") from err
            classes, y_idx = np.unique(y, return_inverse=True)
            if len(classes) < 2:
                raise ReducerError(
                    f"y: mode='lda' needs at least 2 classes; received 1 class ({classes.tolist()[0]!r})"
                )

        # Everything is computed into locals first and assigned at the end.
        mean = X.mean(axis=0)
        scale = _feature_scale(X, mean)
        Z = (X - mean) / scale
        # Centre again in standardised units: for a feature whose offset dwarfs its
        # spread (x = 50 +- 1e-3) the rounding of the mean leaves column sums of ~1e-10,
        # a spurious direction that whitening would blow up to unit variance.
        Z -= Z.mean(axis=0)
        fitted = {
            "n_lda_components_": 0,
            "lda_eigenvalues_": np.zeros(0),
            "pca_explained_variance_": np.zeros(0),
            "shrinkage_": float("nan"),
        }
        notes = []
        if mode == "none":
            components = np.eye(n_features)
        else:
            components = self._fit_projection(
                Z, y_idx if supervised else None, classes if supervised else None,
                n_components=n_components, shrinkage=shrinkage, whiten=whiten,
                fitted=fitted, notes=notes,
            )

        if hasattr(self, "classes_"):
            del self.classes_
        if supervised:
            self.classes_ = classes
        self.mean_, self.scale_, self.components_ = mean, scale, components
        self.n_components_ = components.shape[0]
        for name, value in fitted.items():
            setattr(self, name, value)
        self.warnings_ = notes
        if notes:
            warnings.warn("AudioReducer: " + "; ".join(notes), ReducerWarning, stacklevel=3)
        return self

    @staticmethod
    def _fit_projection(Z, y_idx, classes, *, n_components, shrinkage, whiten, fitted, notes):
        """LDA rows (if ``y_idx`` is given) then residual PCA rows; fills ``fitted``/``notes``."""
        n_samples, n_features = Z.shape
        z_norm = float(np.linalg.norm(Z))
        if z_norm == 0.0:
            raise ReducerError(
                f"X: every one of the {n_features} features is constant over the "
                f"{n_samples} training clips; nothing to project"
            )
        rows = []
        n_lda = 0
        if y_idx is not None:
            n_classes = len(classes)
            lda_rows, eigenvalues, fitted["shrinkage_"], lda_rank = _lda_axes(
                Z, y_idx, n_classes, shrinkage=shrinkage, whiten=whiten
            )
            if lda_rank < min(n_classes - 1, n_components):
                notes.append(
                    f"mode='lda': only {lda_rank} discriminant axes for {n_classes} classes "
                    f"(at most C-1 = {n_classes - 1}); the class means span fewer dimensions"
                )
            n_lda = min(lda_rank, n_components)
            rows.append(lda_rows[:n_lda])
            fitted["n_lda_components_"] = n_lda
            fitted["lda_eigenvalues_"] = eigenvalues[:n_lda]

        n_pca_wanted = n_components - n_lda
        pca_rank = 0
        if n_pca_wanted > 0:
            residual, regression = _residual(Z, rows[0]) if n_lda else (Z, None)
            pca_rows, variances, pca_rank = _pca_axes(residual, z_norm=z_norm, whiten=whiten)
            pca_rows = pca_rows[:n_pca_wanted]
            if regression is not None:
                # map a direction v of the residual onto the clip: r @ v = z @ (v - (C v) L)
                pca_rows = pca_rows - (pca_rows @ regression.T) @ rows[0]
            rows.append(pca_rows)
            fitted["pca_explained_variance_"] = variances[:n_pca_wanted]

        components = np.vstack(rows)
        if components.shape[0] < n_components:
            notes.append(
                f"n_components={n_components} capped to {components.shape[0]}: the "
                f"{n_samples} training clips x {n_features} features support at most "
                f"{n_lda + pca_rank} dimensions (bound min(n_samples-1, n_features) = "
                f"{min(n_samples - 1, n_features)})"
            )
        return components

    def transform(self, X):
        """Map clips to the reduced space.

        Parameters
        ----------
        X : array-like [shape=(n_samples, n_features_in_)]
            Audio functionals, same features and order as in :meth:`fit`.

        Returns
        -------
        np.ndarray [shape=(n_samples, n_components_), dtype=float64]
            Reduced features (unit variance per dim on the training data when
            ``whiten=True``).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            :meth:`fit` (or :meth:`from_arrays`) has not been called.
        ReducerError
            Wrong number of features, non-finite values.
        """
        check_is_fitted(self, "components_")
        try:
            X_arr = check_array(X, dtype=np.float64)
        except ValueError as err:
            raise ReducerError(_one_line(err)) from err
        if X_arr.shape[1] != self.n_features_in_:
            raise ReducerError(
                f"X has {X_arr.shape[1]} features, but AudioReducer is expecting "
                f"{self.n_features_in_} features as input (the number seen in fit)"
            )
        try:  # feature-name consistency (DataFrames); counts already agree
            validate_data(self, X, reset=False, skip_check_array=True)
        except ValueError as err:
            raise ReducerError(_one_line(err)) from err
        Z = (X_arr - self.mean_) / self.scale_
        if self.mode == "none":
            return Z
        return Z @ self.components_.T

    # ------------------------------------------------------------------ persistence

    def to_arrays(self):
        """Return the settings and fitted state as plain arrays (no objects).

        Returns
        -------
        dict of str -> np.ndarray
            Numeric, bool or unicode arrays only; :meth:`from_arrays` inverts it and
            ``np.savez`` / ``np.load(..., allow_pickle=False)`` store it safely.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            The reducer is not fitted.
        """
        check_is_fitted(self, "components_")
        arrays = {
            "format": np.array(FORMAT),
            "n_components": np.array(int(self.n_components), dtype=np.int64),
            "mode": np.array(str(self.mode)),
            "shrinkage": np.array(_shrinkage_to_str(self.shrinkage)),
            "whiten": np.array(bool(self.whiten)),
            "mean_": np.asarray(self.mean_, dtype=np.float64),
            "scale_": np.asarray(self.scale_, dtype=np.float64),
            # the identity of mode="none" is rebuilt on load instead of stored
            "components_": (np.zeros((0, 0)) if self.mode == "none"
                            else np.asarray(self.components_, dtype=np.float64)),
            "n_features_in_": np.array(int(self.n_features_in_), dtype=np.int64),
            "n_components_": np.array(int(self.n_components_), dtype=np.int64),
            "n_lda_components_": np.array(int(self.n_lda_components_), dtype=np.int64),
            "lda_eigenvalues_": np.asarray(self.lda_eigenvalues_, dtype=np.float64),
            "pca_explained_variance_": np.asarray(self.pca_explained_variance_, dtype=np.float64),
            "shrinkage_": np.array(float(self.shrinkage_), dtype=np.float64),
            "warnings_": np.array(list(self.warnings_), dtype=str),
        }
        if self.expected_classes is not None:
            arrays["expected_classes"] = _plain_array(self.expected_classes, "expected_classes")
        if hasattr(self, "classes_"):
            arrays["classes_"] = _plain_array(self.classes_, "classes_")
        if hasattr(self, "feature_names_in_"):
            arrays["feature_names_in_"] = np.asarray(self.feature_names_in_, dtype=str)
        return arrays

    @classmethod
    def from_arrays(cls, arrays, *, source="arrays"):
        """Rebuild a fitted reducer from :meth:`to_arrays` output.

        Parameters
        ----------
        arrays : mapping of str -> np.ndarray
            As returned by :meth:`to_arrays` (or read from a saved ``.npz``).
        source : str, default="arrays"
            Named in error messages (e.g. the file path).

        Returns
        -------
        AudioReducer
            Fitted; transforms exactly like the reducer that produced ``arrays``.

        Raises
        ------
        preprocessing.errors.ModelError
            Wrong format tag, missing keys, object arrays or inconsistent shapes.
        """
        required = (
            "format", "n_components", "mode", "shrinkage", "whiten", "mean_", "scale_",
            "components_", "n_features_in_", "n_components_", "n_lda_components_",
            "lda_eigenvalues_", "pca_explained_variance_", "shrinkage_", "warnings_",
        )
        missing = [key for key in required if key not in arrays]
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

        mode = scalar("mode", str)
        if mode not in MODES:
            raise ModelError(f"{source}: reducer mode must be one of {MODES}; received {mode!r}")

        expected = None
        if "expected_classes" in arrays:
            value = np.asarray(arrays["expected_classes"])
            expected = value.item() if value.ndim == 0 else tuple(value.tolist())
        reducer = cls(
            n_components=scalar("n_components", int),
            mode=mode,
            shrinkage=_shrinkage_from_str(scalar("shrinkage", str), source),
            whiten=scalar("whiten", bool),
            expected_classes=expected,
        )
        reducer.mean_ = np.asarray(arrays["mean_"], dtype=np.float64)
        reducer.scale_ = np.asarray(arrays["scale_"], dtype=np.float64)
        reducer.n_features_in_ = scalar("n_features_in_", int)
        if reducer.mode == "none":
            reducer.components_ = np.eye(reducer.n_features_in_)
        else:
            reducer.components_ = np.asarray(arrays["components_"], dtype=np.float64)
        reducer.n_components_ = scalar("n_components_", int)
        reducer.n_lda_components_ = scalar("n_lda_components_", int)
        reducer.lda_eigenvalues_ = np.asarray(arrays["lda_eigenvalues_"], dtype=np.float64)
        reducer.pca_explained_variance_ = np.asarray(arrays["pca_explained_variance_"], dtype=np.float64)
        reducer.shrinkage_ = scalar("shrinkage_", float)
        reducer.warnings_ = [str(w) for w in np.asarray(arrays["warnings_"]).tolist()]
        if "classes_" in arrays:
            reducer.classes_ = np.asarray(arrays["classes_"])
        if "feature_names_in_" in arrays:
            reducer.feature_names_in_ = np.asarray(arrays["feature_names_in_"]).astype(object)

        n_in, n_out = reducer.n_features_in_, reducer.n_components_
        shapes = {
            "mean_": (reducer.mean_.shape, (n_in,)),
            "scale_": (reducer.scale_.shape, (n_in,)),
            "components_": (reducer.components_.shape, (n_out, n_in)),
        }
        for key, (got, want) in shapes.items():
            if got != want:
                raise ModelError(f"{source}: reducer array {key!r} must have shape {want}; received {got}")
        if not (np.all(np.isfinite(reducer.components_)) and np.all(reducer.scale_ > 0)
                and np.all(np.isfinite(reducer.mean_))):
            raise ModelError(f"{source}: reducer arrays contain non-finite values or a non-positive scale_")
        return reducer

    def save(self, path):
        """Write the fitted reducer to ``path`` as an uncompressed ``.npz``.

        Uses :func:`numpy.savez` on :meth:`to_arrays` (no pickles); the file is written
        to a temporary name in the same folder and renamed, so a crash never leaves a
        half-written reducer. The path is used exactly as given (no suffix added).

        Parameters
        ----------
        path : str or os.PathLike
            Destination, conventionally ``<run_dir>/reducer.npz``.

        Returns
        -------
        pathlib.Path
            The written file.
        """
        arrays = self.to_arrays()
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path):
        """Read a reducer written by :meth:`save`.

        Reads with ``np.load(path, allow_pickle=False)``: object arrays (pickles) are
        refused, never executed.

        Parameters
        ----------
        path : str or os.PathLike
            A ``.npz`` file from :meth:`save`.

        Returns
        -------
        AudioReducer
            Fitted reducer.

        Raises
        ------
        preprocessing.errors.ModelError
            The file is missing, not an ``.npz``, holds pickled objects or is
            incomplete.
        """
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: reducer file does not exist")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except (OSError, ValueError, EOFError) as err:
            raise ModelError(f"{path}: not a readable pickle-free reducer .npz ({_one_line(err)})") from err
        except Exception as err:  # zipfile.BadZipFile and friends from a damaged file
            raise ModelError(f"{path}: damaged reducer .npz ({type(err).__name__}: {_one_line(err)})") from err
        return cls.from_arrays(arrays, source=str(path))

    # ------------------------------------------------------------------ checks

    def _checked_settings(self):
        mode = self.mode
        if not isinstance(mode, str) or mode not in MODES:
            raise ReducerError(f"mode: must be one of {MODES}; received {mode!r}")
        n_components = self.n_components
        if (not isinstance(n_components, numbers.Integral) or isinstance(n_components, bool)
                or n_components < 1):
            raise ReducerError(f"n_components: must be an integer >= 1; received {n_components!r}")
        shrinkage = self.shrinkage
        if isinstance(shrinkage, str):
            if shrinkage != "auto":
                raise ReducerError(f"shrinkage: must be 'auto', None or a float in [0, 1]; received {shrinkage!r}")
        elif shrinkage is not None:
            if (not isinstance(shrinkage, numbers.Real) or isinstance(shrinkage, bool)
                    or not 0.0 <= float(shrinkage) <= 1.0):
                raise ReducerError(f"shrinkage: must be 'auto', None or a float in [0, 1]; received {shrinkage!r}")
            shrinkage = float(shrinkage)
        whiten = self.whiten
        if not isinstance(whiten, (bool, np.bool_)):
            raise ReducerError(f"whiten: must be True or False; received {whiten!r}")
        expected = self.expected_classes
        if expected is not None:
            if isinstance(expected, numbers.Integral) and not isinstance(expected, bool):
                if expected < 2:
                    raise ReducerError(f"expected_classes: must be >= 2 when an int; received {expected!r}")
                expected = list(range(int(expected)))
            elif isinstance(expected, (str, bytes)) or not hasattr(expected, "__iter__"):
                raise ReducerError(
                    f"expected_classes: must be None, an int or a sequence of labels; received {expected!r}"
                )
            else:
                expected = list(expected)
                if len(expected) < 2 or len(set(expected)) != len(expected):
                    raise ReducerError(
                        f"expected_classes: needs at least 2 distinct labels; received {self.expected_classes!r}"
                    )
        return mode, int(n_components), shrinkage, bool(whiten), expected

    @staticmethod
    def _check_expected_classes(y, expected, n_samples):
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


# ---------------------------------------------------------------------- numerics


def _one_line(err, limit=300):
    """``err`` as one line of at most ``limit`` characters, without array dumps."""
    text = re.sub(r"array=\[.*?\]\.", "", str(err), flags=re.DOTALL)
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    if not text:
        return type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _feature_scale(X, mean):
    """Standard deviation per feature (ddof=0), 1.0 where the feature is constant.

    A column counts as constant when its values are all equal, or when its standard
    deviation is within rounding error of its mean (``100 * eps * |mean|``).
    """
    std = X.std(axis=0)
    constant = (np.ptp(X, axis=0) == 0) | (std <= 100 * _EPS * np.abs(mean))
    return np.where(constant, 1.0, std)


def _rank_tol(s, scale, shape):
    """Number of singular values ``s`` above ``max(shape) * eps * scale``."""
    return int(np.count_nonzero(s > max(shape) * _EPS * scale))


def _sign_flip(rows):
    """Make the largest-magnitude entry of every row positive (deterministic signs)."""
    if rows.shape[0] == 0:
        return rows
    pivots = rows[np.arange(rows.shape[0]), np.argmax(np.abs(rows), axis=1)]
    return rows * np.where(pivots < 0, -1.0, 1.0)[:, None]


def _ledoit_wolf(Xc, d):
    """Ledoit-Wolf shrinkage coefficient of centred data ``Xc`` [shape=(n, p)].

    Same estimate as :func:`sklearn.covariance.ledoit_wolf_shrinkage` with
    ``assume_centered=True``, but from the eigenvalues ``d`` of ``Xc.T @ Xc / n``, so
    it costs O(n p) instead of O(n p^2).
    """
    n, p = Xc.shape
    if p == 1:
        return 0.0
    frob2 = float(np.sum(d**2))  # ||S||_F^2
    row_norm2 = np.einsum("ij,ij->i", Xc, Xc)
    fourth = float(np.sum(row_norm2**2))  # sum_i ||x_i||^4
    mu = float(np.sum(d)) / p
    beta = (fourth / n - frob2) / (p * n)
    delta = (frob2 - 2.0 * mu * float(np.sum(d)) + p * mu**2) / p  # ||S - mu I||_F^2 / p
    beta = min(beta, delta)
    if beta <= 0.0 or delta <= 0.0:
        return 0.0
    return float(min(1.0, beta / delta))


def _lda_axes(Z, y_idx, n_classes, *, shrinkage, whiten):
    """Fisher LDA axes of standardised data with a shrunk pooled within-class covariance.

    Solves ``Sb w = lambda Sw w`` through ``Sw^(-1/2)``, which is applied in closed
    form from the thin SVD of the within-class-centred data (no p x p matrix).

    Returns
    -------
    rows : np.ndarray [shape=(rank, p)]
        LDA directions (unit training variance if ``whiten`` else unit length).
    eigenvalues : np.ndarray [shape=(rank,)]
        Between / within variance ratio of each axis, decreasing.
    shrinkage : float
        Coefficient used.
    rank : int
        Number of discriminant axes the data support (<= n_classes - 1).
    """
    n, p = Z.shape
    counts = np.bincount(y_idx, minlength=n_classes).astype(np.float64)
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), y_idx] = 1.0
    means = (onehot.T @ Z) / counts[:, None]  # (C, p), class means of standardised data
    Xc = Z - means[y_idx]
    if not np.any(Xc):
        raise ReducerError(
            f"y: every class has exactly one clip (n_samples={n}, n_classes={n_classes}); "
            "the within-class scatter cannot be estimated"
        )
    _, sig, Vt = np.linalg.svd(Xc, full_matrices=False)
    d_all = sig**2 / n  # eigenvalues of the pooled within-class covariance
    keep = _rank_tol(sig, sig[0], Xc.shape)
    d, V = d_all[:keep], Vt[:keep].T
    if shrinkage == "auto":
        a = _ledoit_wolf(Xc, d_all)
    else:
        a = 0.0 if shrinkage is None else float(shrinkage)
    mu = float(np.sum(d_all)) / p
    lam = (1.0 - a) * d + a * mu  # shrunk eigenvalues inside span(V)
    lam0 = a * mu  # shrunk eigenvalue of the orthogonal complement

    def sw_inv_sqrt(A):  # Sw^(-1/2) @ A for A [shape=(p, m)] (pseudo-inverse if lam0 == 0)
        coef = V.T @ A
        if lam0 > 0.0:
            return V @ ((lam**-0.5 - lam0**-0.5)[:, None] * coef) + lam0**-0.5 * A
        return V @ ((lam**-0.5)[:, None] * coef)

    B = np.sqrt(counts / n)[:, None] * means  # Sb = B.T @ B
    T = sw_inv_sqrt(B.T).T  # (C, p): B Sw^(-1/2)
    _, s, Ut = np.linalg.svd(T, full_matrices=False)
    # class means are sums over n clips: their rounding scales with max(n, p)
    rank = min(n_classes - 1, _rank_tol(s, s[0], Z.shape) if s[0] > 0 else 0)
    W = sw_inv_sqrt(Ut[:rank].T)  # (p, rank), W.T Sw W = I
    if whiten:
        std = (Z @ W).std(axis=0, ddof=1)
        W = W / np.where(std > 0, std, 1.0)
    else:
        W = W / np.linalg.norm(W, axis=0)
    return _sign_flip(W.T), s[:rank] ** 2, a, rank


def _residual(Z, lda_rows):
    """What the LDA axes leave of ``Z``: the least-squares residual on the LDA scores.

    Parameters
    ----------
    Z : np.ndarray [shape=(n, p)]
        Standardised training clips.
    lda_rows : np.ndarray [shape=(k, p)]
        LDA directions ``L``.

    Returns
    -------
    residual : np.ndarray [shape=(n, p)]
        ``Z - S @ coef`` with ``S = Z @ L.T``; its columns are uncorrelated with the
        LDA scores on the training data, so the PCA dims built from it carry no
        (linear) copy of the LDA dims.
    coef : np.ndarray [shape=(k, p)]
        Regression of ``Z`` on ``S``; a clip's residual is ``z - (z @ L.T) @ coef``.
    """
    scores = Z @ lda_rows.T
    coef = np.linalg.lstsq(scores, Z, rcond=None)[0]
    return Z - scores @ coef, coef


def _pca_axes(R, *, z_norm, whiten):
    """Principal directions of ``R`` (already centred), numerical rank only.

    Returns rows [shape=(rank, p)] (whitened: divided by the training std along each
    direction), the variances (ddof=1) and the rank. Singular values below
    ``max(n, p) * eps * ||Z||_F`` count as zero.
    """
    n = R.shape[0]
    _, s, Vt = np.linalg.svd(R, full_matrices=False)
    rank = _rank_tol(s, z_norm, R.shape)
    variances = s[:rank] ** 2 / (n - 1)
    rows = Vt[:rank]
    if whiten:
        rows = rows / np.sqrt(variances)[:, None]
    return _sign_flip(rows), variances, rank


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
