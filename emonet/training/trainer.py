"""Training a run from a YAML config: run folder, seeds, feature store, stages, evaluation.

:func:`train` checks and prepares the run folder (``config.yaml``, ``versions.json``), seeds
Python, NumPy and TensorFlow, prepares the feature store, trains the stages and writes
``timing.json``, with ``train.calibrate`` fits the temperature of its probabilities
(:func:`emonet.training.calibration.fit_run_temperature`), then evaluates the run on its validation
split (:func:`emonet.evaluation.evaluate.evaluate_run`).

The stages, one class each, share a :class:`~emonet.training.context.RunContext`:

- :class:`~emonet.training.stages.ReducerStage`: the audio reducer (``reducer.npz``);
- the video branch by ``train.schedule`` (:func:`emonet.training.branches.train_video_branch`).
  The default is the two-stage one the EmotiW winners used, because end-to-end ResNet-20 + LSTM
  training is slow on a 2-core CPU:

  1. **frames** (:class:`~emonet.training.stages.FrameEncoderStage`): ResNet-20 + softmax trained
     on single face frames (each epoch draws ``frames_per_clip`` frames per training clip, augmented);
  2. **cache** (:class:`~emonet.training.stages.EmbeddingCache`): the trained frame encoder embeds
     every frame of every clip once (``embeddings.h5``);
  3. **clip model** (:class:`~emonet.training.clip_model.ClipModelStage`): LSTMs + audio branch +
     fusion head trained on sequences of cached embeddings and the reduced audio vector.

  With ``train.finetune_epochs`` > 0 the two-stage video model is then fine-tuned end to end
  (:class:`~emonet.training.sequences.FinetuneStage`, ``stages/finetune``); it must beat the
  two-stage model (its epoch 0) or the two-stage model is kept. ``schedule: end_to_end`` replaces
  step 1 and the video clip model by :class:`~emonet.training.sequences.EndToEndStage`
  (``stages/end_to_end``), whose best model is split into ``frame_encoder.keras`` and the
  embeddings-input video model, so everything after runs as for two_stage.
- With ``train.folds`` >= 2 (the default, 3), a video or fusion run is *cross-fitted*
  (:mod:`emonet.training.crossfit`): the video branch is trained once per face-subject-disjoint
  fold, their mean is the video branch, and the fusion head learns from out-of-fold predictions.

Every stage stops early on validation UAR and checkpoints every epoch in ``stages/<stage>/``
(:mod:`emonet.training.loop`), and is skipped when its output exists, so an interrupted run
resumes where it stopped (``emonet train CONFIG --resume``).

Examples
--------
>>> run_dir = train_from_config("experiments/composite_fusion.yaml")   # doctest: +SKIP
"""

import logging
import shutil
import time

from preprocessing.errors import ConfigError
from preprocessing.store import FeatureStore

from emonet.evaluation.evaluate import evaluate_run
from emonet.experiment.config import load_config
from emonet.experiment.rundir import RunDir, set_seeds
from emonet.experiment.stores import prepare_store
from emonet.training.branches import train_frames_only, train_joint
from emonet.training.calibration import TEMPERATURE_BOUNDS, fit_run_temperature
from emonet.training.context import RunContext
from emonet.training.crossfit import CrossFitter

logger = logging.getLogger(__name__)


def train_from_config(config_path, *, smoke=False, seed=None, resume=False, overwrite=False):
    """Train the run declared by a YAML config and evaluate it on the validation split.

    Parameters
    ----------
    config_path : str or os.PathLike
    smoke : bool
        Apply the config's ``smoke:`` overrides (a quick variant).
    seed : int, optional
        Overrides the config's ``seed`` (and so the run folder ``<name>-seed<seed>``).
    resume : bool
        Continue an interrupted run in the same folder.
    overwrite : bool
        Start a finished or interrupted run again from scratch.

    Returns
    -------
    pathlib.Path
        The run directory.
    """
    cfg = load_config(config_path, smoke=smoke, seed=seed)
    return train(cfg, resume=resume, overwrite=overwrite)


def train(cfg, *, resume=False, overwrite=False):
    """Train from a resolved config (see :func:`train_from_config`); returns the run directory.

    Raises
    ------
    ConfigError
        The run folder holds files and neither ``resume`` nor ``overwrite`` is given, or
        ``resume`` is given with a config that differs from the run's ``config.yaml``.
    """
    run = RunDir.for_config(cfg)
    prepare_run_folder(run, cfg, resume=resume, overwrite=overwrite)
    logger.info(f"run {run.path} (mode {cfg.model.mode}, schedule {cfg.train.schedule}, seed {cfg.seed})")
    started = time.perf_counter()
    set_seeds(cfg.seed)
    store_path = prepare_store(cfg)
    with FeatureStore(store_path) as store:
        train_stages(RunContext.open(cfg, run, store))
    seconds = time.perf_counter() - started
    run.write_timing(seconds)
    if cfg.train.calibrate:
        record = fit_run_temperature(run)
        logger.info(f"calibrate: temperature {record['temperature']:.2f} on the {record['split']} split "
                    f"(log-loss {record['log_loss_before']:.3f} -> {record['log_loss_after']:.3f} nats)")
        if not TEMPERATURE_BOUNDS[0] * 1.01 < record["temperature"] < TEMPERATURE_BOUNDS[1] / 1.01:
            logger.warning(f"warning: the temperature reached the end of its range {TEMPERATURE_BOUNDS} on "
                           f"{record['n']} clips; a larger validation split would fit it better")
    evaluate_run(run)
    logger.info(f"trained in {seconds / 60:.1f} min -> {run.path}")
    return run.path


def prepare_run_folder(run, cfg, *, resume, overwrite):
    """Check ``run``'s folder against the flags, then write ``config.yaml`` and ``versions.json``."""
    path = run.path
    if path.exists() and any(path.iterdir()) and not (resume or overwrite):
        raise ConfigError(f"{path}: run folder exists; pass --resume to continue it or --overwrite to start again")
    if overwrite and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    if resume and run.config_path.exists() and not run.same_config(cfg):
        raise ConfigError(f"{path}: --resume with a config that differs from the run's config.yaml")
    run.write_config(cfg)
    run.write_versions()


def train_stages(context):
    """All stages of a run: the frame CNN alone (``frames``), cross-fitted (video and fusion runs with
    ``train.folds`` >= 2) or joint."""
    mode = context.cfg.model.mode
    if mode == "frames":
        train_frames_only(context)
    elif context.cfg.train.folds >= 2 and mode != "audio":
        CrossFitter(context, context.cfg.train.folds).fit()
    else:
        train_joint(context)
