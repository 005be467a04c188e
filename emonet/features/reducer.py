"""The audio reducer: ~1,500 audio functionals -> 512 dims, fitted on the training split.

Fisher LDA on ``C`` classes has at most ``C - 1`` discriminant axes (6 for the seven
emotions), and with ~1,500 features and a few hundred clips the within-class scatter
is singular. :class:`AudioReducer` therefore

1. standardises every feature with the training mean and standard deviation
   (constant features get scale 1, so they contribute ``x - mean``);
2. takes the ``C - 1`` LDA axes of the standardised data, with the pooled
   within-class covariance shrunk towards a scaled identity (Ledoit-Wolf by default):
   scikit-learn's ``LinearDiscriminantAnalysis(solver="eigen", shrinkage=...)``;
3. fills the remaining dimensions with the principal components of what LDA leaves
   (``sklearn.decomposition.PCA(whiten=...)``): the standardised data minus its
   least-squares fit on the LDA scores, so on the training data the PCA dims are
   uncorrelated with the LDA dims and with each other.

The output width is capped by what the training data support (numerical rank of the
standardised data, at most ``min(n_samples - 1, n_features)``); a cap is recorded in
``warnings_`` and emitted once as a :class:`ReducerWarning`.

The numerics live in :mod:`emonet.features.reducer_axes`, the checks in
:mod:`emonet.features.reducer_checks`, the pickle-free ``.npz`` format in
:mod:`emonet.features.reducer_arrays`. The fitted state is plain arrays (mean, scale,
one projection matrix): :meth:`AudioReducer.transform` is one matrix product, and
reducer files written by earlier versions load and transform exactly as before.

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

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from emonet.features.reducer_arrays import FORMAT, read_npz, reducer_to_arrays, state_from_arrays, write_npz
from emonet.features.reducer_axes import feature_scale, fit_projection
from emonet.features.reducer_checks import (MODES, ReducerError, ReducerWarning, check_expected_classes,
                                            checked_settings, one_line)

__all__ = ["AudioReducer", "ReducerError", "ReducerWarning", "MODES", "FORMAT"]


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
        its mean eigenvalue): ``"auto"`` uses the Ledoit-Wolf coefficient of
        :func:`sklearn.covariance.ledoit_wolf_shrinkage`, ``None`` no shrinkage (the
        LDA is solved where the scatter is non-zero). ``mode="lda"`` only.
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
    first_feature : int >= 0, default=0
        Column of the whole audio vector (:func:`preprocessing.audio.feature_names`) that is the
        reducer's first input: it reads columns ``first_feature .. first_feature + n_features_in_ - 1``
        (a block, :func:`preprocessing.audio.audio_block`). Stored with the reducer and applied by
        :func:`emonet.features.embedding.reduce_audio`; ``fit`` and ``transform`` take the block itself.

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
        Between-class / (shrunk) within-class variance ratio of each LDA axis
        (training data), decreasing.
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

    def __init__(self, n_components=512, mode="lda", shrinkage="auto", whiten=True, expected_classes=None,
                 first_feature=0):
        self.n_components = n_components
        self.mode = mode
        self.shrinkage = shrinkage
        self.whiten = whiten
        self.expected_classes = expected_classes
        self.first_feature = first_feature

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
        mode, n_components, shrinkage, whiten, expected = checked_settings(self)
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
            raise ReducerError(one_line(err)) from err
        n_samples, n_features = X.shape
        check_expected_classes(y, expected, n_samples)
        if mode != "none" and n_samples < 2:
            raise ReducerError(
                f"X: mode={mode!r} needs at least 2 clips to estimate a projection; "
                f"received n_samples={n_samples}"
            )
        if supervised:
            try:
                check_classification_targets(y)
            except ValueError as err:
                raise ReducerError(f"y: {one_line(err)}") from err
            classes, y_idx = np.unique(y, return_inverse=True)
            if len(classes) < 2:
                raise ReducerError(
                    f"y: mode='lda' needs at least 2 classes; received 1 class ({classes.tolist()[0]!r})"
                )

        # Everything is computed into locals first and assigned at the end.
        mean = X.mean(axis=0)
        scale = feature_scale(X, mean)
        Z = (X - mean) / scale
        # Centre again in standardised units: for a feature whose offset dwarfs its
        # spread (x = 50 +- 1e-3) the rounding of the mean leaves column sums of ~1e-10,
        # a spurious direction that whitening would blow up to unit variance.
        Z -= Z.mean(axis=0)
        if mode == "none":
            components, notes = np.eye(n_features), []
            fitted = {"n_lda_components_": 0, "lda_eigenvalues_": np.zeros(0),
                      "pca_explained_variance_": np.zeros(0), "shrinkage_": float("nan")}
        else:
            components, fitted, notes = fit_projection(
                Z, y_idx if supervised else None, len(classes) if supervised else 0,
                n_components=n_components, shrinkage=shrinkage, whiten=whiten,
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
            raise ReducerError(one_line(err)) from err
        if X_arr.shape[1] != self.n_features_in_:
            raise ReducerError(
                f"X has {X_arr.shape[1]} features, but AudioReducer is expecting "
                f"{self.n_features_in_} features as input (the number seen in fit)"
            )
        try:  # feature-name consistency (DataFrames); counts already agree
            validate_data(self, X, reset=False, skip_check_array=True)
        except ValueError as err:
            raise ReducerError(one_line(err)) from err
        Z = (X_arr - self.mean_) / self.scale_
        if self.mode == "none":
            return Z
        return Z @ self.components_.T

    # ------------------------------------------------------------------ persistence

    # ------------------------------------------------------------------ persistence

    def to_arrays(self):
        """Return the settings and fitted state as plain arrays (no objects).

        Returns
        -------
        dict of str -> np.ndarray
            Numeric, bool or unicode arrays only (layout :data:`FORMAT`, see
            :func:`emonet.features.reducer_arrays.reducer_to_arrays`);
            :meth:`from_arrays` inverts it and ``np.savez`` /
            ``np.load(..., allow_pickle=False)`` store it safely.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            The reducer is not fitted.
        """
        check_is_fitted(self, "components_")
        return reducer_to_arrays(self)

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
        params, fitted = state_from_arrays(arrays, source=source)
        reducer = cls(**params)
        for name, value in fitted.items():
            setattr(reducer, name, value)
        return reducer

    def save(self, path):
        """Write the fitted reducer to ``path`` as an uncompressed ``.npz``.

        :func:`numpy.savez` of :meth:`to_arrays` (no pickles) through
        :func:`preprocessing.files.atomic_path` (never half-written); no suffix added.

        Parameters
        ----------
        path : str or os.PathLike
            Destination, conventionally ``<run_dir>/reducer.npz``.

        Returns
        -------
        pathlib.Path
            The written file.
        """
        return write_npz(path, self.to_arrays())

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
        return cls.from_arrays(read_npz(path), source=str(path))
