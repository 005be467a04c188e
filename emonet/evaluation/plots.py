"""The figures of an evaluation: confusion matrix and training curves, as PNG files.

matplotlib is imported only inside the functions, and only its object-oriented
:class:`~matplotlib.figure.Figure` is used (no pyplot state, no display needed).
Every PNG is written through :func:`preprocessing.files.atomic_path`, so a path
never holds a half-written image.
"""

import csv
from pathlib import Path

import numpy as np

from emonet.evaluation.metrics import check_classes
from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError
from preprocessing.files import atomic_path

__all__ = ["plot_confusion_matrix", "plot_training_curves"]


def plot_confusion_matrix(matrix, path, *, classes=CLASSES, title=""):
    """Write the confusion matrix as a PNG: counts in the cells, colours row-normalised.

    Each cell's colour is its count divided by its row total (the fraction of that true
    class predicted as each class), so rare classes are as readable as common ones; the
    cell text is the count and that fraction.

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

    Raises
    ------
    ConfigError
        On a matrix of the wrong shape or with negative / non-finite counts, or a path
        not ending in ``.png`` (nothing is written then).
    """
    names = check_classes(classes)
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def plot_training_curves(stage_logs, path):
    """Write training loss and validation UAR per epoch, for every stage of a run, as a PNG.

    Reads each stage's ``log.csv`` (columns ``epoch``, ``loss``, ``val_uar``, one row per
    epoch, as the training stages write it; the stage is named by the log's folder); one line
    per stage in each of two panels (loss; UAR in [0, 1] with the 1/7 chance level).

    Parameters
    ----------
    stage_logs : list of pathlib.Path
        The run's ``stages/<stage>/log.csv`` files (:meth:`emonet.experiment.rundir.RunDir.stage_logs`).
    path : str or os.PathLike
        Output PNG; its folder must exist.

    Returns
    -------
    pathlib.Path or None
        ``path``, or ``None`` (nothing written) when the run has no stage log.
    """
    logs = [Path(log) for log in stage_logs]
    if not logs:
        return None
    from matplotlib.figure import Figure  # lazy: keeps matplotlib out of metric-only imports

    fig = Figure(figsize=(10, 3.5))
    axes = fig.subplots(1, 2)
    for log_path in logs:
        with open(log_path) as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            continue
        epochs = [int(r["epoch"]) for r in rows]
        axes[0].plot(epochs, [float(r["loss"]) for r in rows], label=log_path.parent.name)
        axes[1].plot(epochs, [float(r["val_uar"]) for r in rows], label=log_path.parent.name)
    axes[0].set(title="training loss", xlabel="epoch")
    axes[1].set(title="validation UAR", xlabel="epoch", ylim=(0, 1))
    axes[1].axhline(1 / len(CLASSES), color="grey", linestyle=":", label="chance")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
