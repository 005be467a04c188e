"""Evaluation metrics for the seven-class emotion task, as plain JSON-ready numbers.

EmotiW ranks entries by accuracy, but emotion corpora are imbalanced (AFEW has few
*Disgust* and *Fear* clips), so a model that never predicts the rare classes can
look good on accuracy alone. :func:`classification_report` therefore reports, from
one set of predicted probabilities,

- **accuracy**: fraction of clips whose arg-max class is the true class;
- **UAR** (unweighted average recall): the mean over classes of the fraction of that
  class's clips recognised; chance level is ``1 / n_classes`` whatever the balance;
- **macro-F1**: the mean over classes of the per-class F1;
- **AUC** (Hand & Till 2001, one-vs-one): how well the probabilities *rank* clips,
  independent of the arg-max decision; 0.5 is chance, 1.0 is a perfect ranking;
- **log-loss**: the mean negative log-probability of the true class, in nats;
- the **confusion matrix** (rows = true class, columns = predicted class).

Classes absent from ``y_true``
------------------------------
A class with no clip in ``y_true`` has no recall (0 / 0). It is listed under
``"absent_classes"``, its ``recall`` and ``f1`` are ``None``, and it is **excluded**
from UAR, macro-F1 and AUC (the same as scikit-learn's ``labels=<present classes>``).
Predictions *of* an absent class still count as errors in accuracy and in the
precision of that class (which is then 0.0), and still appear in the confusion matrix.

Pure numpy / scipy / scikit-learn; matplotlib is imported only inside
:func:`plot_confusion_matrix`, with the non-interactive Agg canvas.

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
import os
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError

__all__ = ["classification_report", "format_report", "plot_confusion_matrix", "ablation_table",
           "SUM_TOLERANCE"]

#: How far a probability row may sum away from 1 (float32 softmax outputs drift by ~1e-7).
SUM_TOLERANCE = 1e-3

#: Probabilities are clipped to at least this before the log in the log-loss (float64 eps,
#: as scikit-learn does), so a confident mistake costs ~36 nats instead of infinity.
_LOG_EPS = np.finfo(np.float64).eps


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
        - ``log_loss`` : float, mean ``-ln proba[i, y_true[i]]`` in nats;
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
    names = _check_classes(classes)
    n_classes = len(names)
    y, p = _check_inputs(y_true, proba, n_classes)
    n = y.shape[0]
    pred = np.argmax(p, axis=1)

    matrix = np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    hits = np.diag(matrix)
    present = np.flatnonzero(support > 0)

    per_class, recalls, f1s = {}, [], []
    for k, name in enumerate(names):
        precision = float(hits[k] / predicted[k]) if predicted[k] else None
        if support[k]:
            recall = float(hits[k] / support[k])
            f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
            recalls.append(recall)
            f1s.append(f1)
        else:
            recall = f1 = None
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(support[k])}

    return {
        "n": int(n),
        "accuracy": float(hits.sum() / n),
        "uar": float(np.mean(recalls)),
        "macro_f1": float(np.mean(f1s)),
        "auc_ovo": _auc_ovo(y, p, present),
        "log_loss": float(-np.mean(np.log(np.clip(p[np.arange(n), y], _LOG_EPS, None)))),
        "classes": list(names),
        "absent_classes": [names[k] for k in range(n_classes) if not support[k]],
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
    headline = (f"UAR {_pct(report['uar'])}  accuracy {_pct(report['accuracy'])}  "
                f"macro-F1 {_pct(report['macro_f1'])}  AUC {auc}  (n={report['n']})")
    lines = [f"{title}: {headline}" if title else headline]
    explain = (f"UAR = mean per-class recall (chance {_pct(1 / max(present, 1))} over {present} classes); "
               f"AUC: 0.5 = chance ranking, 1 = perfect")
    if report.get("log_loss") is not None:
        explain += f"; log-loss {report['log_loss']:.3f} nats"
    lines += [explain, ""]

    width = max(9, max(len(name) for name in names) + 1)
    lines.append(f"{'class':<{width}}{'precision':>10}{'recall':>8}{'F1':>8}{'support':>9}")
    for name in names:
        row = report["per_class"][name]
        lines.append(f"{name:<{width}}{_pct(row['precision']):>10}{_pct(row['recall']):>8}"
                     f"{_pct(row['f1']):>8}{row['support']:>9}")
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


def plot_confusion_matrix(matrix, path, *, classes=CLASSES, title=""):
    """Write the confusion matrix as a PNG: counts in the cells, colours row-normalised.

    Each cell's colour is its count divided by its row total (the fraction of that true
    class predicted as each class), so rare classes are as readable as common ones; the
    cell text is the count and that fraction. The file is written to a temporary name in
    the same folder and renamed, so ``path`` never holds a half-written image.

    Parameters
    ----------
    matrix : array-like of int [shape=(K, K)]
        ``matrix[true][predicted]`` counts, e.g. ``report["confusion_matrix"]``.
    path : str or os.PathLike
        Output file; must end in ``.png``. Missing parent folders are created.
    classes : sequence of str [shape=(K,)]
        Class names in row/column order.
    title : str
        Figure title; empty for none.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    names = _check_classes(classes)
    counts = np.asarray(matrix)
    k = len(names)
    if counts.shape != (k, k):
        raise ConfigError(f"matrix must have shape ({k}, {k}) to match {k} classes; received shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.number) or not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ConfigError(f"matrix must hold finite non-negative counts; received dtype {counts.dtype} "
                          f"with min {np.min(counts) if counts.size else 'n/a'}")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"path must end in .png; received {str(path)!r}")

    from matplotlib.figure import Figure  # lazy: keeps matplotlib out of metric-only imports

    totals = counts.sum(axis=1, keepdims=True).astype(float)
    fractions = np.divide(counts, totals, out=np.zeros((k, k)), where=totals > 0)
    fig = Figure(figsize=(1.1 * k + 2.4, 1.0 * k + 1.8), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            colour = "white" if fractions[i, j] > 0.55 else "black"
            label = f"{int(round(counts[i, j]))}" + (f"\n{fractions[i, j]:.0%}" if totals[i, 0] > 0 else "")
            ax.text(j, i, label, ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), [f"{name} ({int(t)})" for name, t in zip(names, totals[:, 0])])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (clips)")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, label="fraction of the true class")

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png.tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            fig.savefig(out, format="png")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def ablation_table(rows):
    """A Markdown table comparing runs, in the order given.

    Parameters
    ----------
    rows : sequence of dict
        Each with ``name`` (str), ``accuracy``, ``uar``, ``macro_f1`` (float in [0, 1])
        and ``n`` (int); an optional ``auc_ovo`` (float or None) fills the AUC column.
        The rows of :func:`emonet.baselines.run_baselines` qualify as they are.

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
        lines.append(f"| {name} | {row['n']} | {_pct(row['accuracy'])} | {_pct(row['uar'])} | "
                     f"{_pct(row['macro_f1'])} | {'-' if auc is None else f'{auc:.3f}'} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers

def _pct(value):
    """``0.4312 -> '43.1%'``; ``None -> '-'``."""
    return "-" if value is None else f"{100 * value:.1f}%"


def _check_classes(classes):
    """Return ``classes`` as a tuple of >= 2 distinct strings, or raise :class:`ConfigError`."""
    if isinstance(classes, str) or not hasattr(classes, "__iter__"):
        raise ConfigError(f"classes must be a sequence of class names; received {classes!r}")
    names = tuple(classes)
    if len(names) < 2 or not all(isinstance(name, str) and name for name in names) or len(set(names)) != len(names):
        raise ConfigError(f"classes must be >= 2 distinct non-empty strings; received {names!r}")
    return names


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


def _binary_auc(positive, scores):
    """Mann-Whitney AUC: P(score of a random positive > that of a random negative), ties 1/2."""
    ranks = rankdata(scores)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    return (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _auc_ovo(y, p, present):
    """Hand & Till (2001) M: mean over unordered class pairs (a, b) of (A(a|b) + A(b|a)) / 2.

    ``A(a|b)`` is the AUC of ``p[:, a]`` separating class ``a`` from class ``b`` among the
    clips of those two classes. ``p`` is first renormalised over the ``present`` columns,
    which makes the result equal to scikit-learn's
    ``roc_auc_score(multi_class="ovo", average="macro", labels=present)``.
    """
    if present.size < 2:
        return None
    q = p[:, present]
    mass = q.sum(axis=1, keepdims=True)
    q = np.divide(q, mass, out=np.full_like(q, 1.0 / present.size), where=mass > 0)
    pair_aucs = []
    for i in range(present.size):
        for j in range(i + 1, present.size):
            mask = (y == present[i]) | (y == present[j])
            is_i = y[mask] == present[i]
            pair_aucs.append((_binary_auc(is_i, q[mask, i]) + _binary_auc(~is_i, q[mask, j])) / 2)
    value = float(np.mean(pair_aucs))
    return value if math.isfinite(value) else None
