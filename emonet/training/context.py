"""What every training stage of a run shares: config, run folder, feature store, split tables, class weights.

A cross-fitted run trains some stages once per fold: a fold is the same context with its own
run folder (``folds/<name>/``), a subset of the training table and a changed config
(:meth:`RunContext.fold`); the stages themselves do not know whether they train a fold.
"""

import logging

import keras

from preprocessing.constants import CLASSES

from emonet.features.tables import SplitTable
from emonet.training.loop import EpochLoop, make_optimizer

logger = logging.getLogger(__name__)


class FoldLog(logging.LoggerAdapter):
    """Prefixes a fold's messages with ``[<fold name>] ``."""

    def process(self, msg, kwargs):
        return f"[{self.extra['fold']}] {msg}", kwargs


class RunContext:
    """The shared inputs of a run's training stages.

    Parameters
    ----------
    cfg : emonet.experiment.config.RunConfig
    run : emonet.experiment.rundir.RunDir
        Where the stages write (the run folder, or a fold's folder inside it).
    store : preprocessing.store.FeatureStore
        Open for reading.
    train_table, val_table : emonet.features.tables.SplitTable
    cache_keys : list of str, optional
        The clips the embedding cache covers (default: training then validation clips, once each).
    log : logging.Logger or logging.LoggerAdapter, optional
        Where the stages' progress lines go.

    Attributes
    ----------
    class_weight : dict or None
        ``{class: weight}`` balancing the training table's classes (``train.class_weights``).
    """

    def __init__(self, cfg, run, store, *, train_table, val_table, cache_keys=None, log=None):
        self.cfg, self.run, self.store = cfg, run, store
        self.train_table, self.val_table = train_table, val_table
        self.cache_keys = list(cache_keys) if cache_keys is not None else list(
            dict.fromkeys(train_table.keys + val_table.keys))  # the splits may coincide
        self.log = log if log is not None else logger
        self.class_weight = class_weights(train_table, cfg.train.class_weights)

    @classmethod
    def open(cls, cfg, run, store):
        """The context of a whole run: the config's training and validation splits of ``store``."""
        soft = cfg.model.mode == "frames" and cfg.train.soft_labels  # only stage one trains on distributions
        train_table, dropped_train = SplitTable(store, cfg.data.train_split, labelled=False).labelled_part(
            keep_soft=soft)
        val_table, dropped_val = SplitTable(store, cfg.data.val_split, labelled=False).labelled_part()
        if dropped_train or dropped_val:
            logger.info(f"left out {dropped_train} training and {dropped_val} validation clips without a label")
        unlabelled = int((train_table.labels < 0).sum())
        if unlabelled:
            logger.info(f"{unlabelled} training clips have rater votes but no majority label: they train the "
                        f"soft-label loss only")
        context = cls(cfg, run, store, train_table=train_table, val_table=val_table)
        counts = context.train_table.class_counts()
        missing = [CLASSES[c] for c in range(len(CLASSES)) if counts[c] == 0]
        if missing:
            logger.warning(f"warning: no training clip of class {', '.join(missing)}")
        logger.info(f"train: {len(context.train_table)} clips, val: {len(context.val_table)} clips")
        return context

    def fold(self, name, keep, *, mode):
        """A fold of a cross-fitted run: training clips ``keep`` only, ``mode``, outputs in ``folds/<name>/``.

        Same store, validation table and cached clips (held-out training clips are embedded
        too); fine-tuning stays on for video folds only.

        Parameters
        ----------
        name : str
            Fold folder name ("video0", "audio2", ...); prefixes the fold's messages.
        keep : np.ndarray [shape=(n_train,), dtype=bool]
        mode : str
            "video" or "audio".
        """
        finetune = self.cfg.train.finetune_epochs if mode == "video" else 0
        cfg = self.cfg.with_changes(model={"mode": mode}, train={"finetune_epochs": finetune})
        return RunContext(cfg, self.run.fold(name), self.store, train_table=self.train_table.subset(keep),
                          val_table=self.val_table, cache_keys=self.cache_keys, log=FoldLog(logger, {"fold": name}))

    def stage_loop(self, model, stage, *, epochs, patience=None, learning_rate=None, soft_labels=False):
        """Compile ``model`` for classification and return its :class:`EpochLoop` in ``stages/<stage>/``.

        The run's optimizer (``train.optimizer``, momentum, weight decay), sparse categorical
        cross-entropy and accuracy (against label distributions with ``soft_labels``); ``patience`` and
        ``learning_rate`` default to the run's.
        """
        train = self.cfg.train
        learning_rate = train.learning_rate if learning_rate is None else learning_rate
        model.compile(optimizer=make_optimizer(train.optimizer, learning_rate, momentum=train.momentum,
                                               weight_decay=train.weight_decay),
                      loss="categorical_crossentropy" if soft_labels else "sparse_categorical_crossentropy",
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy") if soft_labels else "accuracy"])
        return EpochLoop(self.run.stage(stage), stage=stage, epochs=epochs,
                         patience=train.patience if patience is None else patience, schedule=train.lr_schedule,
                         base_lr=learning_rate, keep=train.keep, logger=self.log)


def class_weights(table, setting):
    """The training loss's class weights for ``train.class_weights``: balanced, its square root, or none.

    Parameters
    ----------
    table : emonet.features.tables.SplitTable
    setting : bool or "sqrt"

    Returns
    -------
    dict or None
        ``{class: weight}``.
    """
    if not setting:
        return None
    balanced = table.class_weights()
    return {c: w ** 0.5 for c, w in balanced.items()} if setting == "sqrt" else balanced
