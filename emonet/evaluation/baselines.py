"""Classical baselines on the same train/test split as the network (scikit-learn only).

Every number EmoNet publishes sits next to what simple models reach on the same
features and split, so a reader can tell what the network adds. :func:`run_baselines`
fits four models on the training split only and scores them on the test split with
:func:`emonet.evaluation.metrics.classification_report`:

- **majority class**: ``DummyClassifier("most_frequent")``, always the commonest
  training class. Its UAR is ``1 / n_present_classes`` (1/7 with seven classes in the
  test split) and its AUC 0.5: the chance floor.
- **k-NN**: ``KNeighborsClassifier``, Euclidean on standardised features, uniform
  votes, ``k = min(5, n_train)``. Rule: the common default, not tuned (tuning on the
  test split would leak, and a reference baseline needs no search).
- **MLP**: ``MLPClassifier(hidden_layer_sizes=(256,), max_iter=300)``, Adam, seeded;
  early stopping on 10 % of the training split when ``n_train >= 50`` and every
  training class has >= 2 clips (else off, recorded in ``notes``).
- **linear SVM**: ``LinearSVC(C=1, class_weight="balanced", dual="auto")``, one-vs-rest.

Each model is a :class:`~sklearn.pipeline.Pipeline` whose first step is a
:class:`~sklearn.preprocessing.StandardScaler`, so standardisation is learnt from the
training split only (:func:`build_baselines` returns them unfitted,
:func:`fit_baselines` fitted).

Probabilities (needed for AUC and log-loss) come from ``predict_proba`` for the
majority, k-NN and MLP models. LinearSVC has none, so its one-vs-rest margins are
passed through a softmax: a monotone score that ranks clips (good for AUC) but is
**not calibrated** (its log-loss is not comparable with the others); rows record this
in ``"proba_source"``. Classes absent from the training split get probability 0, so
every probability array is ``(n, 7)`` in :data:`~preprocessing.constants.CLASSES`
order, rows summing to 1.

Feature sets are whatever the caller passes (audio functionals ``(n, ~1500)``,
mean-pooled frame embeddings ``(n, 64)``, ...); nothing is read from disk here.

Examples
--------
>>> import numpy as np
>>> from emonet.evaluation.baselines import run_baselines
>>> from emonet.evaluation.metrics import ablation_table
>>> rng = np.random.default_rng(0)
>>> y = np.repeat(np.arange(7), 20)
>>> X = rng.normal(size=(140, 30)) + 2.0 * np.eye(7, 30)[y]
>>> rows = run_baselines(X[::2], y[::2], X[1::2], y[1::2], feature_set="toy")
>>> [row["name"] for row in rows]
['majority class (toy)', 'k-NN (toy)', 'MLP (toy)', 'linear SVM (toy)']
>>> print(ablation_table(rows).splitlines()[2])
| majority class (toy) | 70 | 14.3% | 14.3% | 3.6% | 0.500 |
"""

import numbers
import time
import warnings

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from emonet.evaluation.metrics import classification_report
from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError

__all__ = ["MODELS", "build_baselines", "fit_baselines", "full_probabilities", "proba_source", "run_baselines"]

#: Baseline names, in the order :func:`run_baselines` reports them.
MODELS = ("majority class", "k-NN", "MLP", "linear SVM")

#: k of the k-NN baseline (capped at the number of training clips).
KNN_K = 5

#: MLP early stopping needs a validation split of a few clips per class; below this
#: many training clips it is switched off.
MLP_EARLY_STOPPING_MIN_TRAIN = 50

#: LinearSVC iteration cap: the liblinear solver converges in well under this on
#: standardised features of a few hundred clips; hitting it is recorded in ``notes``.
SVM_MAX_ITER = 20000


def build_baselines(train_y, *, seed=0):
    """The four baseline pipelines, unfitted, with settings derived from the training labels.

    Parameters
    ----------
    train_y : array-like of int [shape=(n_train,)]
        Training class ids (used only for ``k`` and the MLP early-stopping rule).
    seed : int
        Seed of the MLP's initialisation, batching and validation split.

    Returns
    -------
    models : dict of str -> sklearn.pipeline.Pipeline
        Keyed by :data:`MODELS`, each ``StandardScaler -> classifier``.
    notes : dict of str -> list of str
        Per model, the rule-driven settings a reader should know about.
    """
    y = np.asarray(train_y)
    counts = np.bincount(y, minlength=len(CLASSES))
    n_train = int(y.shape[0])
    k = min(KNN_K, n_train)
    early = n_train >= MLP_EARLY_STOPPING_MIN_TRAIN and counts[counts > 0].min() >= 2
    notes = {name: [] for name in MODELS}
    if k < KNN_K:
        notes["k-NN"].append(f"k lowered to {k}: only {n_train} training clips")
    if not early:
        notes["MLP"].append(f"early stopping off: {n_train} training clips (< {MLP_EARLY_STOPPING_MIN_TRAIN}) "
                            f"or a training class with a single clip")
    models = {
        "majority class": DummyClassifier(strategy="most_frequent"),
        "k-NN": KNeighborsClassifier(n_neighbors=k),
        "MLP": MLPClassifier(hidden_layer_sizes=(256,), early_stopping=bool(early), max_iter=300,
                             random_state=seed),
        "linear SVM": LinearSVC(C=1.0, class_weight="balanced", dual="auto", max_iter=SVM_MAX_ITER,
                                random_state=seed),
    }
    return {name: Pipeline([("scale", StandardScaler()), ("model", model)]) for name, model in models.items()}, notes


def fit_baselines(train_X, train_y, *, seed=0):
    """Fit the four baselines on the training split.

    Parameters
    ----------
    train_X : array-like of float [shape=(n_train, n_features)]
    train_y : array-like of int [shape=(n_train,)]
        Class ids in ``[0, 7)``, at least two distinct.
    seed : int

    Returns
    -------
    models : dict of str -> sklearn.pipeline.Pipeline
        Fitted, keyed by :data:`MODELS`.
    info : dict of str -> dict
        Per model: ``fit_seconds`` (float, wall clock) and ``notes`` (list of str).
    """
    X, y = _check_split("train", train_X, train_y)
    if np.unique(y).size < 2:
        raise ConfigError(f"train_y must hold at least 2 distinct classes to fit a classifier; "
                          f"received only {CLASSES[int(y[0])]!r}")
    seed = _check_seed(seed)
    models, notes = build_baselines(y, seed=seed)
    info = {}
    for name, model in models.items():
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(X, y)
        for warning in caught:
            if issubclass(warning.category, ConvergenceWarning):
                notes[name].append(f"did not converge: {str(warning.message).splitlines()[0]}")
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        info[name] = {"fit_seconds": time.perf_counter() - start, "notes": notes[name]}
    return models, info


def proba_source(model):
    """How :func:`full_probabilities` gets ``model``'s probabilities.

    Returns
    -------
    str
        ``"predict_proba"`` when the model (or a pipeline's last step) has it, else
        ``"softmax(decision_function)"`` (a ranking score, not calibrated).
    """
    return "predict_proba" if hasattr(model, "predict_proba") else "softmax(decision_function)"


def full_probabilities(model, X):
    """Class probabilities of a fitted classifier over all seven classes.

    Parameters
    ----------
    model : sklearn classifier or Pipeline
        Fitted; its ``classes_`` are class ids in ``[0, 7)``, and it has
        ``predict_proba`` or ``decision_function`` (see :func:`proba_source`).
    X : array-like of float [shape=(n, n_features)]

    Returns
    -------
    np.ndarray of float64 [shape=(n, 7)]
        Columns in :data:`~preprocessing.constants.CLASSES` order; classes the model
        never saw in training get 0; rows sum to 1.
    """
    seen = np.asarray(model.classes_, dtype=np.int64)
    if proba_source(model) == "predict_proba":
        part = model.predict_proba(X)
    else:
        margins = np.asarray(model.decision_function(X), dtype=np.float64)
        if margins.ndim == 1:  # two training classes: one margin, positive means seen[1]
            margins = np.stack([np.zeros_like(margins), margins], axis=1)
        margins -= margins.max(axis=1, keepdims=True)
        part = np.exp(margins)
        part /= part.sum(axis=1, keepdims=True)
    proba = np.zeros((part.shape[0], len(CLASSES)))
    proba[:, seen] = part
    return proba


def run_baselines(train_X, train_y, test_X, test_y, *, feature_set, seed=0):
    """Fit the four baselines on the training split and report them on the test split.

    Parameters
    ----------
    train_X : array-like of float [shape=(n_train, n_features)]
        Training features, finite.
    train_y : array-like of int [shape=(n_train,)]
        Training class ids in ``[0, 7)``; at least two distinct classes.
    test_X : array-like of float [shape=(n_test, n_features)]
        Test features, same ``n_features``; never used for fitting.
    test_y : array-like of int [shape=(n_test,)]
        Test class ids in ``[0, 7)``.
    feature_set : str
        Name of the features, shown in the row names, e.g. ``"audio functionals"``.
    seed : int
        Seed of the MLP and of LinearSVC's coordinate order.

    Returns
    -------
    list of dict
        One row per model in :data:`MODELS` order, JSON-serialisable, ready for
        :func:`emonet.evaluation.metrics.ablation_table`: ``name`` (``"k-NN (audio functionals)"``),
        ``model``, ``feature_set``, ``accuracy``, ``uar``, ``macro_f1``, ``auc_ovo``,
        ``n`` (test clips), ``n_train``, ``proba_source``, ``fit_seconds``, ``notes``
        (list of str) and ``report`` (the full :func:`~emonet.evaluation.metrics.classification_report`).
    """
    if not isinstance(feature_set, str) or not feature_set.strip():
        raise ConfigError(f"feature_set must be a non-empty name such as 'audio functionals'; received {feature_set!r}")
    X_train, y_train = _check_split("train", train_X, train_y)
    X_test, y_test = _check_split("test", test_X, test_y)
    if X_test.shape[1] != X_train.shape[1]:
        raise ConfigError(f"test_X must have the {X_train.shape[1]} features of train_X; "
                          f"received {X_test.shape[1]}")
    models, info = fit_baselines(X_train, y_train, seed=seed)
    rows = []
    for name, model in models.items():
        report = classification_report(y_test, full_probabilities(model, X_test))
        rows.append({
            "name": f"{name} ({feature_set})", "model": name, "feature_set": feature_set,
            "accuracy": report["accuracy"], "uar": report["uar"], "macro_f1": report["macro_f1"],
            "auc_ovo": report["auc_ovo"], "n": report["n"], "n_train": int(y_train.shape[0]),
            "proba_source": proba_source(model), "fit_seconds": round(info[name]["fit_seconds"], 3),
            "notes": list(info[name]["notes"]), "report": report,
        })
    return rows


# ----------------------------------------------------------------------------- helpers

def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer; received {seed!r}")
    return int(seed)


def _check_split(split, X, y):
    """Validate one split: ``X`` finite 2-D float64, ``y`` int64 ids in [0, 7), same length."""
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ConfigError(f"{split}_X must be a non-empty 2-D array (clips, features); received shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ConfigError(f"{split}_X must be real-valued; received dtype {X.dtype}")
    X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise ConfigError(f"{split}_X must be finite; received {int(np.sum(~np.isfinite(X)))} NaN/inf values")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ConfigError(f"{split}_y must be 1-D with one id per row of {split}_X ({X.shape[0]}); "
                          f"received shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"{split}_y must hold integer class ids; received dtype {y.dtype}")
    if y.min() < 0 or y.max() >= len(CLASSES):
        raise ConfigError(f"{split}_y ids must be in [0, {len(CLASSES) - 1}]; received min {y.min()}, max {y.max()}")
    return X, y.astype(np.int64)
