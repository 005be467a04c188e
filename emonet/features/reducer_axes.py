"""The audio reducer's numerics: LDA axes (scikit-learn's eigen solver) and the residual PCA fill.

Everything works on standardised training clips ``Z`` [shape=(n, p)] (centred, unit
variance per feature) and returns projection rows [shape=(k, p)]: a clip ``z`` maps
to ``z @ rows.T``. The fitted state of :class:`emonet.features.reducer.AudioReducer`
is built from these rows, so its ``transform`` stays one matrix product.

The LDA is :class:`sklearn.discriminant_analysis.LinearDiscriminantAnalysis` with
``solver="eigen"``, solved in the span of the training data (a PCA rotation that
loses nothing: the class means and the within-class scatter live in it). The pooled
within-class covariance is shrunk towards ``mu * I`` (``mu`` its mean eigenvalue over
all ``p`` features) with the Ledoit-Wolf coefficient of
:func:`sklearn.covariance.ledoit_wolf_shrinkage` by default; inside the span the
coefficient is rescaled so that the shrunk covariance is the full-space one.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> Z = rng.normal(size=(70, 10)); Z -= Z.mean(axis=0)
>>> rows, info = lda_axes(Z, np.arange(70) % 7, 7, shrinkage="auto", whiten=True)
>>> rows.shape, info["rank"]
((6, 10), 6)
"""

import numpy as np
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from emonet.features.reducer_checks import ReducerError, one_line

__all__ = ["EPS", "feature_scale", "rank_tol", "sign_flip", "lda_axes", "residual", "pca_axes", "fit_projection"]

EPS = np.finfo(np.float64).eps


def feature_scale(X, mean):
    """Standard deviation per feature (ddof=0), 1.0 where the feature is constant.

    A column counts as constant when its values are all equal, or when its standard
    deviation is within rounding error of its mean (``100 * eps * |mean|``).

    Parameters
    ----------
    X : np.ndarray [shape=(n, p)]
        Training clips (feature units).
    mean : np.ndarray [shape=(p,)]
        Their mean.

    Returns
    -------
    np.ndarray [shape=(p,)], feature units, > 0
    """
    std = X.std(axis=0)
    constant = (np.ptp(X, axis=0) == 0) | (std <= 100 * EPS * np.abs(mean))
    return np.where(constant, 1.0, std)


def rank_tol(s, scale, shape):
    """Number of singular values ``s`` above ``max(shape) * eps * scale``."""
    return int(np.count_nonzero(s > max(shape) * EPS * scale))


def sign_flip(rows):
    """Make the largest-magnitude entry of every row positive (deterministic signs)."""
    if rows.shape[0] == 0:
        return rows
    pivots = rows[np.arange(rows.shape[0]), np.argmax(np.abs(rows), axis=1)]
    return rows * np.where(pivots < 0, -1.0, 1.0)[:, None]


def _span(A):
    """Orthonormal rows [shape=(r, p)] spanning the rows of centred ``A``, numerical rank only."""
    pca = PCA(svd_solver="full").fit(A)
    s = pca.singular_values_
    return pca.components_[: rank_tol(s, s[0], A.shape) if s[0] > 0 else 0]


def lda_axes(Z, y_idx, n_classes, *, shrinkage, whiten):
    """Fisher LDA axes of standardised clips with a shrunk pooled within-class covariance.

    Parameters
    ----------
    Z : np.ndarray [shape=(n, p)]
        Standardised, centred training clips.
    y_idx : np.ndarray [shape=(n,), dtype=int]
        Class index of each clip, ``0 .. n_classes-1``, every class present.
    n_classes : int
        C.
    shrinkage : "auto", float in [0, 1] or None
        ``"auto"``: Ledoit-Wolf coefficient of the within-class-centred clips.
        ``None`` or 0: no shrinkage (the LDA is solved where the scatter is non-zero).
    whiten : bool
        Scale each axis to unit training variance (ddof=1) instead of unit length.

    Returns
    -------
    rows : np.ndarray [shape=(rank, p)]
        LDA directions, decreasing between/within variance ratio.
    info : dict
        ``eigenvalues`` [shape=(rank,)]: between-class variance of each axis over its
        shrunk within-class variance; ``shrinkage``: the coefficient used (float);
        ``rank``: discriminant axes the class means support (<= C - 1).

    Raises
    ------
    ReducerError
        Every class has exactly one clip (no within-class scatter), or the unshrunk
        scatter is numerically singular.

    Notes
    -----
    The axes are the leading ``C - 1`` columns of the fitted ``scalings_``, ordered by
    their between/within ratio. scikit-learn's eigen solver takes the between-class
    scatter as shrunk total minus shrunk within scatter, which adds
    ``a * trace(Sb) / p`` times the identity: with shrinkage the weak axes differ slightly from a
    pure Fisher solution (not at all without shrinkage).
    """
    n, p = Z.shape
    priors = np.bincount(y_idx, minlength=n_classes) / n
    means = np.stack([Z[y_idx == k].mean(axis=0) for k in range(n_classes)])  # (C, p)
    Xc = Z - means[y_idx]
    if not np.any(Xc):
        raise ReducerError(
            f"y: every class has exactly one clip (n_samples={n}, n_classes={n_classes}); "
            "the within-class scatter cannot be estimated"
        )
    if shrinkage == "auto":
        a = float(ledoit_wolf_shrinkage(Xc, assume_centered=True))
    else:
        a = 0.0 if shrinkage is None else float(shrinkage)
    # Solve in the span of the data. Shrunk: all of span(Z), where Sw + a mu I is
    # invertible. Unshrunk: span(Xc) only (a pseudo-inverse of the singular scatter).
    basis = _span(Z) if a > 0.0 else _span(Xc)
    r = basis.shape[0]
    # shrunk_covariance(S, a') = (1-a') S + a' tr(S)/r I: choose a' so it is the
    # full-space (1-a) S + a tr(S)/p I up to a factor (same axes).
    if 0.0 < a < 1.0:
        odds = a / (1.0 - a) * r / p
        a_span = odds / (1.0 + odds)
    else:
        a_span = a if a > 0.0 else None
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=a_span)
    try:
        lda.fit(Z @ basis.T, y_idx)
    except np.linalg.LinAlgError as err:
        raise ReducerError(
            f"X: the within-class scatter is numerically singular for mode='lda' with shrinkage={shrinkage!r} "
            f"({one_line(err)}); use shrinkage='auto' or a float > 0"
        ) from err
    W = basis.T @ lda.scalings_[:, : min(n_classes - 1, r)]  # (p, m), columns in the data's units

    B = np.sqrt(priors)[:, None] * means  # Sb = B.T @ B (Z is centred)
    between = np.sum((B @ W) ** 2, axis=0)
    mu = float(np.sum(Xc**2)) / (n * p)  # mean eigenvalue of Sw
    within = (1.0 - a) * np.sum((Xc @ W) ** 2, axis=0) / n + a * mu * np.sum(W**2, axis=0)
    ratio = between / within
    s = np.linalg.svd(B, compute_uv=False)
    # class means are sums over n clips: their rounding scales with max(n, p)
    rank = min(n_classes - 1, W.shape[1], rank_tol(s, s[0], Z.shape) if s[0] > 0 else 0)
    order = np.argsort(-ratio, kind="stable")[:rank]
    W, ratio = W[:, order], ratio[order]
    if whiten:
        std = (Z @ W).std(axis=0, ddof=1)
        W = W / np.where(std > 0, std, 1.0)
    else:
        W = W / np.linalg.norm(W, axis=0)
    return sign_flip(W.T), {"eigenvalues": ratio, "shrinkage": a, "rank": rank}


def residual(Z, lda_rows):
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


def pca_axes(R, n_wanted, *, z_norm, whiten):
    """Principal directions of ``R`` (centred) with :class:`sklearn.decomposition.PCA`.

    Parameters
    ----------
    R : np.ndarray [shape=(n, p)]
        Centred data (the standardised clips, or their LDA residual).
    n_wanted : int
        Directions wanted (>= 1).
    z_norm : float
        Frobenius norm of the standardised clips: singular values below
        ``max(n, p) * eps * z_norm`` count as zero.
    whiten : bool
        Divide each direction by its training standard deviation, as
        ``PCA(whiten=True).transform`` does.

    Returns
    -------
    rows : np.ndarray [shape=(k, p)]
        ``k = min(n_wanted, rank)`` directions, decreasing variance.
    variances : np.ndarray [shape=(k,)]
        Training variance (ddof=1) along each direction before whitening.
    rank : int
        Numerical rank of ``R``, counted up to ``n_wanted`` (so ``rank < n_wanted``
        means the data support no more directions).
    """
    n_fit = min(n_wanted, *R.shape)
    pca = PCA(n_components=n_fit, whiten=whiten, svd_solver="full").fit(R)
    rank = rank_tol(pca.singular_values_, z_norm, R.shape)
    rows = pca.components_[:rank]
    variances = pca.explained_variance_[:rank]
    if pca.whiten:
        rows = rows / np.sqrt(variances)[:, None]
    return sign_flip(rows), variances, rank


def fit_projection(Z, y_idx, n_classes, *, n_components, shrinkage, whiten):
    """LDA rows (when ``y_idx`` is given) then residual PCA rows, up to ``n_components``.

    Parameters
    ----------
    Z : np.ndarray [shape=(n, p)]
        Standardised, centred training clips.
    y_idx : np.ndarray [shape=(n,), dtype=int] or None
        Class indices (``mode="lda"``); None for PCA only.
    n_classes : int
        C (ignored without ``y_idx``).
    n_components : int
        Requested width.
    shrinkage, whiten
        As in :func:`lda_axes` / :func:`pca_axes`.

    Returns
    -------
    components : np.ndarray [shape=(width, p)]
        Projection rows, ``width <= n_components``.
    fitted : dict
        ``n_lda_components_``, ``lda_eigenvalues_``, ``pca_explained_variance_``,
        ``shrinkage_`` (the reducer attributes of the same names).
    notes : list of str
        One line per cap applied (fewer discriminant axes, fewer dims than requested).

    Raises
    ------
    ReducerError
        Every feature is constant, or every class has exactly one clip.
    """
    n_samples, n_features = Z.shape
    z_norm = float(np.linalg.norm(Z))
    if z_norm == 0.0:
        raise ReducerError(
            f"X: every one of the {n_features} features is constant over the "
            f"{n_samples} training clips; nothing to project"
        )
    fitted = {"n_lda_components_": 0, "lda_eigenvalues_": np.zeros(0),
              "pca_explained_variance_": np.zeros(0), "shrinkage_": float("nan")}
    notes = []
    rows = np.zeros((0, n_features))
    if y_idx is not None:
        lda_rows, info = lda_axes(Z, y_idx, n_classes, shrinkage=shrinkage, whiten=whiten)
        if info["rank"] < min(n_classes - 1, n_components):
            notes.append(
                f"mode='lda': only {info['rank']} discriminant axes for {n_classes} classes "
                f"(at most C-1 = {n_classes - 1}); the class means span fewer dimensions"
            )
        rows = lda_rows[:n_components]
        fitted.update(n_lda_components_=rows.shape[0], lda_eigenvalues_=info["eigenvalues"][:n_components],
                      shrinkage_=info["shrinkage"])
    n_lda = rows.shape[0]

    n_pca_wanted = n_components - n_lda
    pca_rank = 0
    if n_pca_wanted > 0:
        R, regression = residual(Z, rows) if n_lda else (Z, None)
        pca_rows, variances, pca_rank = pca_axes(R, n_pca_wanted, z_norm=z_norm, whiten=whiten)
        if regression is not None:
            # map a direction v of the residual onto the clip: r @ v = z @ (v - (C v) L)
            pca_rows = pca_rows - (pca_rows @ regression.T) @ rows
        rows = np.vstack([rows, pca_rows])
        fitted["pca_explained_variance_"] = variances

    if rows.shape[0] < n_components:
        notes.append(
            f"n_components={n_components} capped to {rows.shape[0]}: the "
            f"{n_samples} training clips x {n_features} features support at most "
            f"{n_lda + pca_rank} dimensions (bound min(n_samples-1, n_features) = "
            f"{min(n_samples - 1, n_features)})"
        )
    return rows, fitted, notes
