"""Evaluation metrics for the seven-class emotion task, as plain JSON-ready numbers.

EmotiW ranks entries by accuracy, but emotion corpora are imbalanced (AFEW has few
*Disgust* and *Fear* clips), so a model that never predicts the rare classes can
look good on accuracy alone. :func:`classification_report` therefore reports, from
one set of predicted probabilities,

- **accuracy**: fraction of clips whose arg-max class is the true class;
- **UAR** (unweighted average recall, :func:`uar`): the mean over classes of the
  fraction of that class's clips recognised; chance level is ``1 / n_classes``
  whatever the balance;
- **macro-F1**: the mean over classes of the per-class F1;
- **AUC** (Hand & Till 2001, one-vs-one): how well the probabilities *rank* clips,
  independent of the arg-max decision; 0.5 is chance, 1.0 is a perfect ranking;
- **log-loss**: the mean negative log-probability of the true class, in nats;
- the **confusion matrix** (rows = true class, columns = predicted class).

Every number is computed by :mod:`sklearn.metrics`; this module fixes the conventions
(which classes count, what is ``None``) and validates the inputs.

Classes absent from ``y_true``
------------------------------
A class with no clip in ``y_true`` has no recall (0 / 0). It is listed under
``"absent_classes"``, its ``recall`` and ``f1`` are ``None``, and it is **excluded**
from UAR, macro-F1 and AUC (scikit-learn's ``labels=<present classes>``).
Predictions *of* an absent class still count as errors in accuracy and in the
precision of that class (which is then 0.0), and still appear in the confusion matrix.

No matplotlib here: the figures are in :mod:`emonet.evaluation.plots`.

Examples
--------
>>> import numpy as np
>>> from emonet.evaluation.metrics import classification_report, format_report
>>> y = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
>>> proba = np.zeros((10, 7)); proba[:, 0] = 1.0   # always "Angry"
>>> report = classification_report(y, proba)
>>> report["accuracy"], report["uar"]
(0.9, 0.5)
>>> print(format_report(report, title="always Angry").splitlines()[0])
always Angry: UAR 50.0%  accuracy 90.0%  macro-F1 47.4%  AUC 0.50  (n=10)
"""

import math
import warnings

import numpy as np
from sklearn.metrics import confusion_matrix, log_loss, precision_recall_fscore_support, recall_score, roc_auc_score

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError

__all__ = ["classification_report", "uar", "expected_calibration_error", "format_report", "ablation_table",
           "check_classes", "SUM_TOLERANCE"]

#: How far a probability row may sum away from 1 (float32 softmax outputs drift by ~1e-7).
SUM_TOLERANCE = 1e-3


def uar(y_true, y_pred, n_classes=len(CLASSES)):
    """Unweighted average recall: the mean recall over the classes present in ``y_true``.

    Parameters
    ----------
    y_true : array-like of int [shape=(n,)]
        True class ids. Rows whose id is outside ``[0, n_classes)`` (e.g. ``-1`` for an
        unlabelled clip) are ignored.
    y_pred : array-like of int [shape=(n,)]
        Predicted class ids, e.g. ``proba.argmax(axis=1)``.
    n_classes : int
        Number of classes; ids ``0 .. n_classes - 1`` are labels.

    Returns
    -------
    float
        In [0, 1]; chance level is ``1 / n_present_classes``. 0.0 when no row is labelled.

    Examples
    --------
    >>> uar([0] * 9 + [1], [0] * 10)   # accuracy 0.9, but Disgust is never recognised
    0.5
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labelled = (y_true >= 0) & (y_true < n_classes)
    present = np.unique(y_true[labelled])
    if present.size == 0:
        return 0.0
    return float(recall_score(y_true[labelled], y_pred[labelled], labels=present, average="macro",
                              zero_division=0))


def classification_report(y_true, proba, *, classes=CLASSES):
    """Accuracy, UAR, macro-F1, per-class scores, confusion matrix, AUC and log-loss.

    Parameters
    ----------
    y_true : array-like of int [shape=(n,)]
        True class ids, ``0 <= y_true < len(classes)``; id ``i`` means ``classes[i]``.
    proba : array-like of float [shape=(n, len(classes))]
        Predicted class probabilities, each row non-negative and summing to 1 (within
        :data:`SUM_TOLERANCE`). The predicted class is the row's arg-max (the lowest
        class id on ties).
    classes : sequence of str
        Class names, in column order. Default :data:`preprocessing.constants.CLASSES`.

    Returns
    -------
    dict
        JSON-serialisable (only ``int``, ``float``, ``str``, ``None``, lists, dicts):

        - ``n`` : int, number of clips;
        - ``accuracy``, ``uar``, ``macro_f1`` : float in [0, 1];
        - ``auc_ovo`` : float in [0, 1], Hand & Till multi-class AUC over the classes
          present in ``y_true``, with each row's probabilities renormalised over those
          classes (a row with zero mass on all of them becomes uniform); ``None`` when
          fewer than two classes are present;
        - ``log_loss`` : float, mean ``-ln proba[i, y_true[i]]`` in nats (probabilities
          clipped to ``[eps, 1 - eps]``, float64 eps; rows are not renormalised);
        - ``mean_confidence`` : float in [0, 1], the mean top probability (against ``accuracy``:
          how sure the model says it is against how often it is right);
        - ``calibration_error`` : float in [0, 1], :func:`expected_calibration_error`;
        - ``classes`` : list of str, the class names in id order;
        - ``absent_classes`` : list of str, classes with no clip in ``y_true``;
        - ``per_class`` : ``{name: {"precision", "recall", "f1", "support"}}``; precision
          is ``None`` for a class never predicted, recall and F1 are ``None`` for an
          absent class, F1 is 0.0 for a present class never predicted;
        - ``confusion_matrix`` : list of lists of int [shape=(K, K)], ``[true][predicted]``.

    Raises
    ------
    ConfigError
        On shape, dtype or range violations (message names the parameter and value).
    """
    names = check_classes(classes)
    n_classes = len(names)
    y, p = _check_inputs(y_true, proba, n_classes)
    pred = np.argmax(p, axis=1)
    ids = np.arange(n_classes)

    matrix = confusion_matrix(y, pred, labels=ids)
    # nan marks 0/0: precision of a class never predicted, recall of an absent class
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=ids, zero_division=np.nan)
    present = np.flatnonzero(support > 0)
    f1[support == 0] = np.nan  # an absent class that was predicted has F1 0 in sklearn; ours is undefined

    def defined(value):
        return None if np.isnan(value) else float(value)

    per_class = {name: {"precision": defined(precision[k]), "recall": defined(recall[k]), "f1": defined(f1[k]),
                        "support": int(support[k])} for k, name in enumerate(names)}
    return {
        "n": int(y.shape[0]),
        "accuracy": float(np.trace(matrix) / y.shape[0]),
        "uar": uar(y, pred, n_classes),
        "macro_f1": float(np.mean(f1[present])),
        "auc_ovo": _auc_ovo(y, p, present),
        "log_loss": _log_loss(y, p, ids),
        "mean_confidence": float(p.max(axis=1).mean()),
        "calibration_error": expected_calibration_error(y, p),
        "classes": list(names),
        "absent_classes": [names[k] for k in ids if not support[k]],
        "per_class": per_class,
        "confusion_matrix": matrix.astype(int).tolist(),
    }


def format_report(report, *, title=""):
    """Render a :func:`classification_report` dict as a plain-text block.

    Parameters
    ----------
    report : dict
        As returned by :func:`classification_report` (or read back from JSON).
    title : str
        Prefix of the first line, e.g. ``"fusion (AFEW val)"``; empty for none.

    Returns
    -------
    str
        Several lines, no trailing newline: the headline
        ``"UAR 43.1%  accuracy 45.2%  macro-F1 41.0%  AUC 0.78  (n=175)"``, one line
        explaining the metrics, a per-class table (precision, recall, F1, support) and
        the confusion matrix with class-name headers. Undefined values print as ``-``.
    """
    if not isinstance(report, dict):
        raise ConfigError(f"report must be a dict from classification_report(); received {type(report).__name__}")
    missing = [key for key in ("n", "accuracy", "uar", "macro_f1", "auc_ovo", "classes", "per_class",
                               "confusion_matrix") if key not in report]
    if missing:
        raise ConfigError(f"report is missing keys {missing}; pass the dict returned by classification_report()")
    names = list(report["classes"])
    present = len(names) - len(report.get("absent_classes", []))
    auc = "n/a" if report["auc_ovo"] is None else f"{report['auc_ovo']:.2f}"
    headline = (f"UAR {percent(report['uar'])}  accuracy {percent(report['accuracy'])}  "
                f"macro-F1 {percent(report['macro_f1'])}  AUC {auc}  (n={report['n']})")
    lines = [f"{title}: {headline}" if title else headline]
    explain = (f"UAR = mean per-class recall (chance {percent(1 / max(present, 1))} over {present} classes); "
               f"AUC: 0.5 = chance ranking, 1 = perfect")
    if report.get("log_loss") is not None:
        explain += f"; log-loss {report['log_loss']:.3f} nats"
    if report.get("mean_confidence") is not None:
        explain += (f"; mean top probability {percent(report['mean_confidence'])} (calibration error "
                    f"{report['calibration_error']:.3f})")
    lines += [explain, ""]

    width = max(9, max(len(name) for name in names) + 1)
    lines.append(f"{'class':<{width}}{'precision':>10}{'recall':>8}{'F1':>8}{'support':>9}")
    for name in names:
        row = report["per_class"][name]
        lines.append(f"{name:<{width}}{percent(row['precision']):>10}{percent(row['recall']):>8}"
                     f"{percent(row['f1']):>8}{row['support']:>9}")
    if report.get("absent_classes"):
        lines.append(f"absent from the true labels (excluded from UAR, macro-F1, AUC): "
                     f"{', '.join(report['absent_classes'])}")

    lines += ["", "confusion matrix (rows = true class, columns = predicted class)"]
    corner = "true \\ pred"
    first = max(width, len(corner) + 1)
    cell = max(len(name) for name in names) + 1
    lines.append(f"{corner:<{first}}" + "".join(f"{name:>{cell}}" for name in names))
    for name, counts in zip(names, report["confusion_matrix"]):
        lines.append(f"{name:<{first}}" + "".join(f"{int(c):>{cell}}" for c in counts))
    return "\n".join(lines)


def ablation_table(rows):
    """A Markdown table comparing runs, in the order given.

    Parameters
    ----------
    rows : sequence of dict
        Each with ``name`` (str), ``accuracy``, ``uar``, ``macro_f1`` (float in [0, 1])
        and ``n`` (int); an optional ``auc_ovo`` (float or None) fills the AUC column.
        The rows of :func:`emonet.evaluation.baselines.run_baselines` qualify as they are.

    Returns
    -------
    str
        A GitHub-flavoured Markdown table, percentages with one decimal, no trailing
        newline, e.g. for "audio-only / video-only / fusion / baselines".
    """
    if isinstance(rows, dict) or not hasattr(rows, "__iter__"):
        raise ConfigError(f"rows must be a list of dicts; received {type(rows).__name__}")
    rows = list(rows)
    if not rows:
        raise ConfigError("rows must hold at least one dict; received an empty list")
    lines = ["| model | n | accuracy | UAR | macro-F1 | AUC |", "|---|---:|---:|---:|---:|---:|"]
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ConfigError(f"rows[{i}] must be a dict; received {type(row).__name__}")
        missing = [key for key in ("name", "accuracy", "uar", "macro_f1", "n") if key not in row]
        if missing:
            raise ConfigError(f"rows[{i}] is missing keys {missing}; received keys {sorted(row)}")
        for key in ("accuracy", "uar", "macro_f1"):
            value = row[key]
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"rows[{i}][{key!r}] must be a fraction in [0, 1]; received {value!r}")
        name = str(row["name"]).replace("|", "\\|")
        auc = row.get("auc_ovo")
        lines.append(f"| {name} | {row['n']} | {percent(row['accuracy'])} | {percent(row['uar'])} | "
                     f"{percent(row['macro_f1'])} | {'-' if auc is None else f'{auc:.3f}'} |")
    return "\n".join(lines)


def percent(value):
    """A fraction as a percentage with one decimal: ``0.4312 -> '43.1%'``; ``None -> '-'``."""
    return "-" if value is None else f"{100 * value:.1f}%"


def check_classes(classes):
    """Return ``classes`` as a tuple of >= 2 distinct non-empty strings, or raise :class:`ConfigError`."""
    if isinstance(classes, str) or not hasattr(classes, "__iter__"):
        raise ConfigError(f"classes must be a sequence of class names; received {classes!r}")
    names = tuple(classes)
    if len(names) < 2 or not all(isinstance(name, str) and name for name in names) or len(set(names)) != len(names):
        raise ConfigError(f"classes must be >= 2 distinct non-empty strings; received {names!r}")
    return names


# ----------------------------------------------------------------------------- helpers

def _check_inputs(y_true, proba, n_classes):
    """Validate and convert ``y_true`` (int64, (n,)) and ``proba`` (float64, (n, K))."""
    y = np.asarray(y_true)
    if y.ndim != 1 or y.shape[0] == 0:
        raise ConfigError(f"y_true must be a non-empty 1-D array of class ids; received shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"y_true must hold integer class ids; received dtype {y.dtype}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ConfigError(f"y_true ids must be in [0, {n_classes - 1}]; received min {y.min()}, max {y.max()}")
    p = np.asarray(proba)
    if p.shape != (y.shape[0], n_classes):
        raise ConfigError(f"proba must have shape (n, {n_classes}) = ({y.shape[0]}, {n_classes}) to match y_true "
                          f"and the classes; received shape {p.shape}")
    if not np.issubdtype(p.dtype, np.number) or np.issubdtype(p.dtype, np.complexfloating):
        raise ConfigError(f"proba must be a real-valued array; received dtype {p.dtype}")
    p = p.astype(np.float64)
    if not np.all(np.isfinite(p)):
        raise ConfigError(f"proba must be finite; received {int(np.sum(~np.isfinite(p)))} NaN/inf values")
    if p.min() < 0:
        raise ConfigError(f"proba must be non-negative; received min {p.min():.4g}")
    sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > SUM_TOLERANCE:
        raise ConfigError(f"proba rows must sum to 1 (within {SUM_TOLERANCE}); row {worst} sums to {sums[worst]:.6g}")
    return y.astype(np.int64), p


def expected_calibration_error(y_true, proba, *, bins=10):
    """How far the top probability is from the hit rate: ``sum_b n_b / n * |accuracy_b - confidence_b|``.

    Clips are binned by their top probability into ``bins`` equal-width bins of [0, 1]; in each,
    ``confidence_b`` is the mean top probability and ``accuracy_b`` the share whose top class is
    right. 0 for a model exactly as sure as it is right; ``y_true`` (n,) ids, ``proba`` (n, K).
    """
    p = np.asarray(proba, np.float64)
    confidence, right = p.max(axis=1), p.argmax(axis=1) == np.asarray(y_true)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return float(sum(abs(right[which == b].mean() - confidence[which == b].mean()) * np.mean(which == b)
                     for b in range(bins) if np.any(which == b)))


def _log_loss(y, p, ids):
    """Mean ``-ln p[i, y[i]]`` in nats; ``p`` [shape=(n, K)] rows sum to 1 within :data:`SUM_TOLERANCE`.

    scikit-learn refuses values above 1 and warns about rows that do not sum to 1 to
    within ~1e-8; our contract is :data:`SUM_TOLERANCE` (float32 softmax rows drift by
    ~1e-7), so values are capped at 1 and that warning is silenced. Rows are not
    renormalised, by either.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The y_prob values do not sum to one", category=UserWarning)
        return float(log_loss(y, np.minimum(p, 1.0), labels=ids))


def _auc_ovo(y, p, present):
    """Hand & Till (2001) M over the ``present`` classes [shape=(m,)], or ``None`` if ``m < 2``.

    The mean over unordered class pairs (a, b) of (A(a|b) + A(b|a)) / 2, where ``A(a|b)``
    is the AUC of ``p[:, a]`` separating class ``a`` from class ``b`` among the clips of
    those two classes. ``p`` [shape=(n, K)] is first renormalised over the ``present``
    columns (zero mass: uniform), as scikit-learn's one-vs-one AUC requires rows summing
    to 1. With two classes both directed AUCs equal the binary AUC.
    """
    if present.size < 2:
        return None
    q = p[:, present]
    mass = q.sum(axis=1, keepdims=True)
    q = np.divide(q, mass, out=np.full_like(q, 1.0 / present.size), where=mass > 0)
    if present.size == 2:
        value = roc_auc_score(y == present[1], q[:, 1])
    else:
        value = roc_auc_score(y, q, multi_class="ovo", average="macro", labels=present)
    value = float(value)
    return value if math.isfinite(value) else None
