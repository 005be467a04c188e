"""One resumable training loop for every stage: epochs, LR schedule, early stopping on UAR.

Each epoch: ``fit`` one pass, score the validation set (unweighted average
recall, UAR), log a CSV row and TensorBoard scalars, save ``last.keras`` (with
optimizer state) and ``state.json``, and keep ``best.keras`` when UAR improves.
A killed run resumes from ``last.keras`` and ``state.json``.
"""

import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from emonet.nn.io import load_model, save_model_atomically
from preprocessing.files import atomic_write_text


def uar(y_true, y_pred, n_classes=7):
    """Unweighted average recall: mean recall over the classes present in ``y_true``."""
    recalls = [np.mean(y_pred[y_true == c] == c) for c in range(n_classes) if np.any(y_true == c)]
    return float(np.mean(recalls)) if recalls else 0.0


def learning_rate(schedule, base, epoch, epochs, current):
    """Learning rate for ``epoch`` (0-based): cosine decay to 2% of ``base``, constant, or plateau."""
    if schedule == "cosine":
        return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * epoch / max(1, epochs))))
    if schedule == "constant":
        return base
    return current  # plateau: lowered by the loop when UAR stalls


def make_optimizer(name, learning_rate, *, momentum=0.9, weight_decay=0.0):
    """Adam (with decoupled weight decay) or SGD with Nesterov momentum."""
    import keras
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=True,
                                    weight_decay=weight_decay or None)
    return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)


class EpochLoop:
    """Train ``model`` epoch by epoch with checkpoints in ``folder``.

    Parameters
    ----------
    folder : pathlib.Path
        Holds ``last.keras``, ``best.keras``, ``state.json``, ``log.csv``, ``tensorboard/``.
    stage : str
        Name used in logs ("frames", "fusion", ...).
    epochs, patience : int
        Upper bound on epochs; stop after ``patience`` epochs without a better UAR (0 = never).
    schedule : str
        "cosine", "constant" or "plateau".
    base_lr : float
    log : callable
        Receives one-line progress messages.
    """

    def __init__(self, folder, *, stage, epochs, patience, schedule, base_lr, log):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.stage, self.epochs, self.patience = stage, epochs, patience
        self.schedule, self.base_lr, self.log = schedule, base_lr, log
        self.state_path = self.folder / "state.json"
        self.state = {"epoch": 0, "best_uar": -1.0, "best_epoch": -1, "lr": base_lr, "stale": 0,
                      "done": False, "seconds": 0.0}
        if self.state_path.exists():
            self.state.update(json.loads(self.state_path.read_text()))

    @property
    def done(self):
        return self.state["done"]

    def resume_model(self, model):
        """The model to continue from: ``last.keras`` if this stage was interrupted, else ``model``."""
        last = self.folder / "last.keras"
        if self.state["epoch"] > 0 and last.exists():
            self.log(f"{self.stage}: resuming after epoch {self.state['epoch']} "
                     f"(best UAR {self.state['best_uar']:.3f})")
            return load_model(last)
        return model

    def start_from(self, model, score):
        """Count ``model``, as it is before the first epoch, as the best so far (epoch 0).

        For a stage that refines a trained model (fine-tuning): only an epoch
        whose validation UAR beats ``score(model)`` replaces ``best.keras``, so the
        stage returns the model it started from when no epoch improves on it
        (``state["best_epoch"]`` stays 0). Does nothing once a best model is recorded
        or an epoch has run (resume).

        Parameters
        ----------
        model : keras.Model
            Compiled; saved as ``best.keras``.
        score : callable(model) -> float
            Validation UAR.
        """
        if self.state["epoch"] > 0 or self.state["best_epoch"] >= 0:
            return
        val_uar = float(score(model))
        if not model.optimizer.built:  # save its slots too, so best.keras reloads with a complete optimizer
            model.optimizer.build(model.trainable_variables)
        save_model_atomically(model, self.folder / "best.keras")
        self.state.update(best_uar=val_uar, best_epoch=0)
        atomic_write_text(self.state_path, json.dumps(self.state, indent=2))
        self.log(f"{self.stage}: starting from val UAR {val_uar:.3f} (epoch 0)")

    def run(self, model, fit_epoch, score):
        """Run the remaining epochs.

        Parameters
        ----------
        model : keras.Model
            Compiled.
        fit_epoch : callable(model, epoch) -> dict
            Trains one epoch, returns Keras' logs (loss, accuracy).
        score : callable(model) -> float
            Validation UAR.

        Returns
        -------
        keras.Model
            The best model (reloaded from ``best.keras``).
        """
        writer = tf.summary.create_file_writer(str(self.folder / "tensorboard"))
        log_path = self.folder / "log.csv"
        new_log = not log_path.exists() or self.state["epoch"] == 0
        with open(log_path, "w" if new_log else "a", newline="") as handle:
            rows = csv.writer(handle)
            if new_log:
                rows.writerow(["epoch", "lr", "loss", "accuracy", "val_uar", "seconds"])
            while not self.state["done"] and self.state["epoch"] < self.epochs:
                epoch = self.state["epoch"]
                lr = learning_rate(self.schedule, self.base_lr, epoch, self.epochs, self.state["lr"])
                model.optimizer.learning_rate.assign(lr)
                start = time.perf_counter()
                logs = fit_epoch(model, epoch) or {}
                val_uar = score(model)
                seconds = time.perf_counter() - start
                self._record(model, epoch, lr, logs, val_uar, seconds, rows, writer)
                handle.flush()
        writer.close()
        return load_model(self.folder / "best.keras")

    def _record(self, model, epoch, lr, logs, val_uar, seconds, rows, writer):
        state = self.state
        loss, accuracy = float(logs.get("loss", np.nan)), float(logs.get("accuracy", np.nan))
        rows.writerow([epoch + 1, f"{lr:.6g}", f"{loss:.5f}", f"{accuracy:.4f}", f"{val_uar:.4f}", f"{seconds:.1f}"])
        with writer.as_default():
            tf.summary.scalar(f"{self.stage}/loss", loss, step=epoch + 1)
            tf.summary.scalar(f"{self.stage}/accuracy", accuracy, step=epoch + 1)
            tf.summary.scalar(f"{self.stage}/val_uar", val_uar, step=epoch + 1)
            tf.summary.scalar(f"{self.stage}/learning_rate", lr, step=epoch + 1)
        improved = val_uar > state["best_uar"] + 1e-6
        if improved:
            save_model_atomically(model, self.folder / "best.keras")
            state.update(best_uar=val_uar, best_epoch=epoch + 1, stale=0)
        else:
            state["stale"] += 1
            if self.schedule == "plateau" and state["stale"] % max(1, self.patience // 3) == 0:
                state["lr"] = state["lr"] * 0.5
        state["epoch"] = epoch + 1
        state["seconds"] += seconds
        stop = (self.patience and state["stale"] >= self.patience) or state["epoch"] >= self.epochs
        state["done"] = bool(stop)
        save_model_atomically(model, self.folder / "last.keras")
        atomic_write_text(self.state_path, json.dumps(state, indent=2))
        self.log(f"{self.stage} epoch {epoch + 1}/{self.epochs}: loss {loss:.3f} acc {accuracy:.3f} "
                 f"val UAR {val_uar:.3f}{' *' if improved else ''} ({seconds:.0f} s)")
