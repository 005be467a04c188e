"""The epoch loop of every training stage: stock Keras callbacks, plus what resume-after-kill needs.

Each epoch of a stage trains one pass (or a stage's own epoch, see :meth:`EpochLoop.run`),
scores the validation set by unweighted average recall (UAR), and keeps ``stages/<stage>/``
(:class:`emonet.experiment.rundir.StageDir`) up to date. Stock Keras callbacks do most of it:

- :class:`ValidationUAR` (ours, small) puts the validation UAR, the epoch's learning rate and
  its wall time into ``logs["val_uar"]``, ``logs["lr"]``, ``logs["seconds"]``;
- ``LearningRateScheduler`` sets the cosine schedule, per epoch, from the base rate down to
  :data:`COSINE_FLOOR` of it (``train.lr_schedule: cosine``; the schedule of earlier runs,
  unchanged); ``ReduceLROnPlateau`` halves the rate after ``patience // 3`` epochs without a
  better UAR (``plateau``); ``constant`` keeps the compiled rate;
- ``EarlyStopping(monitor="val_uar", mode="max")`` stops after ``patience`` epochs without a
  better UAR (0 = never);
- ``CSVLogger`` writes ``log.csv`` (:class:`StageCSVLogger` only fixes the columns, their
  rounding and the epoch count from 1, the format evaluation's training curves read);
- ``TensorBoard`` writes ``tensorboard/`` (``train/`` and ``validation/`` event files).

Custom code remains for two things, and why:

- :class:`StageCheckpoint` saves ``best.keras`` (when UAR improves), ``last.keras`` (with the
  optimizer state) and ``state.json`` after every epoch, each through a temporary file renamed
  over the old one. ``ModelCheckpoint`` (and ``BackupAndRestore``) write in place, so a run
  killed during a save would leave a torn checkpoint, and neither keeps the best UAR, best epoch
  and stale count a resumed run needs. On resume it also puts those counters back into
  ``EarlyStopping`` and ``ReduceLROnPlateau`` (which reset them in ``on_train_begin``), so a
  resumed run stops and decays exactly when the uninterrupted run would have.
- :meth:`EpochLoop.run` drives the same callbacks around a stage's own epoch function, for
  stages whose epoch is not one ``fit`` over a fixed dataset: the clip models draw new frame
  offsets, noise and modality dropout every epoch, and the fusion head makes several passes.
  Plain stages go through :meth:`EpochLoop.fit`, one ``model.fit`` call for all epochs.

Examples
--------
>>> loop = EpochLoop(run.stage("frames"), stage="frames", epochs=20, patience=6,  # doctest: +SKIP
...                  schedule="cosine", base_lr=1e-3)
>>> best = loop.fit(loop.resume_model(model), dataset, score)                     # doctest: +SKIP
"""

import json
import logging
import math
import time

import keras
import numpy as np

from preprocessing.files import atomic_write_text

from emonet.experiment.rundir import StageDir
from emonet.nn.io import load_model, save_model_atomically

#: A validation UAR counts as better only when it beats the best so far by more than this.
MIN_DELTA = 1e-6
#: The cosine schedule ends at this share of the base learning rate.
COSINE_FLOOR = 0.02
#: Columns of ``log.csv`` after ``epoch``, with their number formats.
LOG_COLUMNS = {"lr": "{:.6g}", "loss": "{:.5f}", "accuracy": "{:.4f}", "val_uar": "{:.4f}", "seconds": "{:.1f}"}
#: Factor by which the plateau schedule lowers the learning rate.
PLATEAU_FACTOR = 0.5


def cosine_learning_rate(epoch, *, base, epochs):
    """Learning rate of ``epoch`` (0-based) of ``epochs``: cosine decay from ``base`` to ``COSINE_FLOOR * base``."""
    return base * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * epoch / max(1, epochs))))


def make_optimizer(name, learning_rate, *, momentum=0.9, weight_decay=0.0):
    """Adam (with decoupled weight decay) or SGD with Nesterov momentum."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=True,
                                    weight_decay=weight_decay or None)
    return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)


def current_learning_rate(model):
    """The optimizer's learning rate now, as a float."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class ValidationUAR(keras.callbacks.Callback):
    """Puts validation UAR (and the epoch's learning rate and wall seconds) into the epoch logs.

    Parameters
    ----------
    score : callable(model) -> float
        Validation UAR of the model as it is.
    """

    def __init__(self, score):
        super().__init__()
        self.score = score
        self.started, self.lr = 0.0, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.lr = time.perf_counter(), current_learning_rate(self.model)

    def on_epoch_end(self, epoch, logs=None):
        logs["val_uar"] = float(self.score(self.model))
        logs["lr"] = self.lr
        logs["seconds"] = time.perf_counter() - self.started


class StageCSVLogger(keras.callbacks.CSVLogger):
    """Keras' CSVLogger writing ``log.csv`` as the project reads it: epoch from 1, :data:`LOG_COLUMNS`."""

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.keys = list(LOG_COLUMNS)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {key: form.format(float(logs.get(key, np.nan))) for key, form in LOG_COLUMNS.items()}
        super().on_epoch_end(epoch + 1, row)


class StageCheckpoint(keras.callbacks.Callback):
    """Atomic ``best.keras`` / ``last.keras`` / ``state.json`` every epoch; stock counters restored on resume.

    Must come after :class:`ValidationUAR`, ``ReduceLROnPlateau`` and ``EarlyStopping`` in the
    callback list (it reads what they decided).

    Parameters
    ----------
    loop : EpochLoop
        Owns the state and the stage folder.
    early_stopping : keras.callbacks.EarlyStopping, optional
    plateau : keras.callbacks.ReduceLROnPlateau, optional
    """

    def __init__(self, loop, *, early_stopping=None, plateau=None):
        super().__init__()
        self.loop, self.early_stopping, self.plateau = loop, early_stopping, plateau

    def on_train_begin(self, logs=None):
        state = self.loop.state
        best = state["best_uar"] if state["best_epoch"] >= 0 else None
        if self.early_stopping is not None:
            self.early_stopping.best, self.early_stopping.wait = best, state["stale"]
        if self.plateau is not None:
            self.plateau.best, self.plateau.wait = best, state["stale"] % self.plateau.patience

    def on_epoch_end(self, epoch, logs=None):
        self.loop.record(self.model, epoch, logs)


class EpochLoop:
    """Train a model epoch by epoch with checkpoints in ``folder`` (see the module docstring).

    Parameters
    ----------
    folder : emonet.experiment.rundir.StageDir or path-like
        ``stages/<stage>/``: ``last.keras``, ``best.keras``, ``state.json``, ``log.csv``, ``tensorboard/``.
    stage : str
        Name used in messages ("frames", "fusion", ...).
    epochs, patience : int
        Upper bound on epochs; stop after ``patience`` epochs without a better UAR (0 = never).
    schedule : str
        "cosine", "constant" or "plateau".
    base_lr : float
    keep : str
        "best" (default): :meth:`fit` and :meth:`run` return the best epoch's model; "last": the
        final epoch's (a refit whose validation split is in its training data).
    logger : logging.Logger or logging.LoggerAdapter, optional
        Where the progress lines go (a fold passes one that prefixes its name).

    Attributes
    ----------
    state : dict
        ``epoch`` (finished epochs), ``best_uar``, ``best_epoch`` (-1 none, 0 the start model),
        ``lr`` (learning rate now), ``stale`` (epochs since the best), ``done``, ``seconds``.
    """

    def __init__(self, folder, *, stage, epochs, patience, schedule, base_lr, keep="best", logger=None):
        self.folder = folder if isinstance(folder, StageDir) else StageDir(folder)
        self.folder.path.mkdir(parents=True, exist_ok=True)
        self.stage, self.epochs, self.patience, self.keep = stage, epochs, patience, keep
        self.schedule, self.base_lr = schedule, base_lr
        self.log = logger if logger is not None else logging.getLogger(__name__)
        self.state = {"epoch": 0, "best_uar": -1.0, "best_epoch": -1, "lr": base_lr, "stale": 0,
                      "done": False, "seconds": 0.0}
        if self.folder.state_path.exists():
            self.state.update(json.loads(self.folder.state_path.read_text()))

    @property
    def done(self):
        return self.state["done"]

    def best_model(self, *, compile=False):
        """The model of the best epoch so far, from ``best.keras``."""
        return load_model(self.folder.best_path, compile=compile)

    def kept_model(self, *, compile=False):
        """What the stage returns: :meth:`best_model`, or with ``keep="last"`` the last epoch's (``last.keras``)."""
        if self.keep == "last" and self.folder.last_path.exists():
            return load_model(self.folder.last_path, compile=compile)
        return self.best_model(compile=compile)

    def resume_model(self, model):
        """The model to continue from: ``last.keras`` if this stage was interrupted, else ``model``."""
        if self.state["epoch"] > 0 and self.folder.last_path.exists():
            self.log.info(f"{self.stage}: resuming after epoch {self.state['epoch']} "
                          f"(best UAR {self.state['best_uar']:.3f})")
            return load_model(self.folder.last_path)
        return model

    def start_from(self, model, score):
        """Count ``model``, as it is before the first epoch, as the best so far (epoch 0).

        For a stage that refines a trained model (fine-tuning, the fusion head): only an epoch
        whose validation UAR beats ``score(model)`` replaces ``best.keras``, so the stage returns
        the model it started from when no epoch improves on it (``state["best_epoch"]`` stays 0).
        Does nothing once a best model is recorded or an epoch has run (resume).

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
        save_model_atomically(model, self.folder.best_path)
        self.state.update(best_uar=val_uar, best_epoch=0)
        atomic_write_text(self.folder.state_path, json.dumps(self.state, indent=2))
        self.log.info(f"{self.stage}: starting from val UAR {val_uar:.3f} (epoch 0)")

    def callbacks(self, score):
        """The stage's Keras callbacks, in the order they must run (see the module docstring)."""
        callbacks = []
        if self.schedule == "cosine":
            callbacks.append(keras.callbacks.LearningRateScheduler(
                lambda epoch: cosine_learning_rate(epoch, base=self.base_lr, epochs=self.epochs)))
        callbacks.append(ValidationUAR(score))
        plateau = early_stopping = None
        if self.schedule == "plateau":
            plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_uar", mode="max", factor=PLATEAU_FACTOR,
                                                        patience=max(1, self.patience // 3), min_delta=MIN_DELTA,
                                                        min_lr=0.0)
            callbacks.append(plateau)
        if self.patience:
            early_stopping = keras.callbacks.EarlyStopping(monitor="val_uar", mode="max", patience=self.patience,
                                                           min_delta=MIN_DELTA)
            callbacks.append(early_stopping)
        callbacks += [StageCSVLogger(self.folder.log_path, append=self.state["epoch"] > 0),
                      keras.callbacks.TensorBoard(self.folder.tensorboard_dir, write_graph=False),
                      StageCheckpoint(self, early_stopping=early_stopping, plateau=plateau)]
        return callbacks

    def fit(self, model, data, score, **fit_kwargs):
        """Run the remaining epochs as one ``model.fit(data, ...)``; returns the kept model (compiled, :meth:`kept_model`).

        Parameters
        ----------
        model : keras.Model
            Compiled.
        data : tf.data.Dataset
            One pass per epoch (a generator-backed dataset draws a new epoch on every pass).
        score : callable(model) -> float
            Validation UAR.
        **fit_kwargs
            Passed to ``model.fit`` (``class_weight``, ``shuffle``).
        """
        if not self.done:
            model.fit(data, initial_epoch=self.state["epoch"], epochs=self.epochs, callbacks=self.callbacks(score),
                      verbose=0, **fit_kwargs)
        return self.kept_model(compile=True)

    def run(self, model, fit_epoch, score):
        """Run the remaining epochs of a stage whose epoch is its own function; returns the kept model.

        The callbacks of :meth:`callbacks` are driven as ``model.fit`` drives them, around
        ``fit_epoch`` instead of one pass over a dataset.

        Parameters
        ----------
        model : keras.Model
            Compiled.
        fit_epoch : callable(model, epoch) -> dict
            Trains epoch ``epoch`` (0-based), returns Keras' logs (loss, accuracy).
        score : callable(model) -> float
            Validation UAR.

        Returns
        -------
        keras.Model
            The best model (reloaded from ``best.keras``, compiled), or with ``keep="last"`` the last one.
        """
        if self.done:
            return self.kept_model(compile=True)
        callbacks = keras.callbacks.CallbackList(self.callbacks(score), model=model)
        model.stop_training = False
        callbacks.on_train_begin()
        try:
            for epoch in range(self.state["epoch"], self.epochs):
                callbacks.on_epoch_begin(epoch)
                logs = dict(fit_epoch(model, epoch) or {})
                callbacks.on_epoch_end(epoch, logs)
                if self.done:
                    break
        finally:
            callbacks.on_train_end()
        return self.kept_model(compile=True)

    def record(self, model, epoch, logs):
        """Book epoch ``epoch`` (0-based): best/last checkpoints and ``state.json``, atomically; one log line."""
        state = self.state
        val_uar, seconds = logs["val_uar"], logs["seconds"]
        improved = val_uar > state["best_uar"] + MIN_DELTA
        if improved:
            save_model_atomically(model, self.folder.best_path)
            state.update(best_uar=val_uar, best_epoch=epoch + 1, stale=0)
        else:
            state["stale"] += 1
        state["epoch"] = epoch + 1
        state["seconds"] += seconds
        state["lr"] = current_learning_rate(model)
        state["done"] = bool(model.stop_training or state["epoch"] >= self.epochs)
        save_model_atomically(model, self.folder.last_path)
        atomic_write_text(self.folder.state_path, json.dumps(state, indent=2))
        loss, accuracy = float(logs.get("loss", np.nan)), float(logs.get("accuracy", np.nan))
        self.log.info(f"{self.stage} epoch {epoch + 1}/{self.epochs}: loss {loss:.3f} acc {accuracy:.3f} "
                      f"val UAR {val_uar:.3f}{' *' if improved else ''} ({seconds:.0f} s)")
