"""A fitted audio reducer applied without scikit-learn: what prediction needs of ``reducer.npz``.

:class:`emonet.features.reducer.AudioReducer` is a scikit-learn estimator; importing it
imports scikit-learn, SciPy and pandas (1.6 s on the 2-core machine, a quarter of a
one-clip ``emonet predict``). Prediction only transforms, and a fitted reducer's transform
is one standardisation and one matrix product on plain arrays. :class:`FittedReducer`
reads the same pickle-free ``.npz`` (:mod:`emonet.features.reducer_arrays`, the same
checks) and computes ``AudioReducer.transform``'s result with the same operations in the
same order, so the output is identical (``tests/test_reducer.py``).

Examples
--------
>>> reducer = FittedReducer.load("runs/RUN/reducer.npz")    # doctest: +SKIP
>>> reducer.transform(functionals).shape                      # (n, 3361) -> (n, n_components_)  # doctest: +SKIP
"""

import numpy as np

from emonet.features.reducer_arrays import read_npz, state_from_arrays
from emonet.features.reducer_checks import ReducerError


class FittedReducer:
    """The transform of a fitted :class:`~emonet.features.reducer.AudioReducer`, from its arrays.

    Attributes
    ----------
    mode : str
        ``"lda"``, ``"pca"`` or ``"none"`` (standardisation only).
    mean_, scale_ : np.ndarray [shape=(n_features_in_,), dtype=float64]
        Training mean and scale of each functional.
    components_ : np.ndarray [shape=(n_components_, n_features_in_), dtype=float64]
        Projection of the standardised functionals.
    n_features_in_, n_components_ : int
    first_feature : int
        Column of the audio vector that is the first input (see ``AudioReducer``).
    """

    def __init__(self, params, fitted):
        self.mode = params["mode"]
        self.mean_, self.scale_ = fitted["mean_"], fitted["scale_"]
        self.components_ = fitted["components_"]
        self.n_features_in_, self.n_components_ = fitted["n_features_in_"], fitted["n_components_"]
        self.first_feature = params.get("first_feature", 0)

    @classmethod
    def load(cls, path):
        """Read ``reducer.npz`` as :meth:`AudioReducer.load <emonet.features.reducer.AudioReducer.load>` does.

        Raises
        ------
        preprocessing.errors.ModelError
            Missing, damaged, pickled or incomplete file.
        """
        return cls(*state_from_arrays(read_npz(path), source=str(path)))

    def transform(self, X):
        """Audio functionals (n, n_features_in_) -> reduced (n, n_components_) float64 (``n_features_in_`` for
        mode ``"none"``).

        Raises
        ------
        ReducerError
            Not a 2-D array of finite numbers, or another number of features than the reducer was fitted on.
        """
        X_arr = np.asarray(X, dtype=np.float64)
        if X_arr.ndim != 2:
            raise ReducerError(f"Expected 2D array, got {X_arr.ndim}D array instead")
        if not np.isfinite(X_arr).all():
            raise ReducerError("Input X contains NaN or infinity")
        if X_arr.shape[1] != self.n_features_in_:
            raise ReducerError(f"X has {X_arr.shape[1]} features, but AudioReducer is expecting "
                               f"{self.n_features_in_} features as input (the number seen in fit)")
        Z = (X_arr - self.mean_) / self.scale_
        if self.mode == "none":
            return Z
        return Z @ self.components_.T
