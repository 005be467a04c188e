"""A run folder: the one owner of its layout, its config, its records and the random seeds.

Layout of a run folder (``<output_dir>/<name>-seed<seed>/``)::

    config.yaml         resolved configuration (written before training starts)
    versions.json       library versions, git commit, machine
    timing.json         training wall time
    reducer.npz         audio reducer arrays (never a pickle); reducer_warnings.json
    frame_encoder.keras frame encoder (ResNet-20; a cross-fitted run joins its fold encoders)
    model.keras         clip model on frame-embedding sequences + reduced audio
    calibration.json    train.calibrate: the temperature model.keras's probabilities are read with
    ablation/{audio,video}.keras   single-modality models of a fusion run
    embeddings.h5       per-frame embedding cache of the training store
    stages/<stage>/     log.csv, state.json, last.keras, best.keras, tensorboard/
    folds/<fold>/       a fold of a cross-fitted run: the same layout again
    metrics.json  predictions.csv  confusion_matrix.{json,png}  training_curves.png
    ablation.md  result_record.json

Every path of that layout is spelled here and nowhere else. Everything loads in Keras
safe mode; nothing is unpickled.
"""

import json
import os
import platform
import subprocess
import sys
from functools import cached_property
from pathlib import Path

from preprocessing.errors import ModelError, one_line
from preprocessing.files import atomic_write_text

from emonet.experiment.config import config_yaml, load_resolved_config

#: Single-modality models a fusion run keeps for the ablation table.
ABLATION_MODES = ("audio", "video")


class RunDir:
    """Paths, config and records of one run folder (or of one fold inside it).

    Parameters
    ----------
    path : str or os.PathLike
        The folder. Nothing is read or created until asked.

    Examples
    --------
    >>> run = RunDir("runs/composite_fusion-seed0")          # doctest: +SKIP
    >>> run.config.model.mode, run.model_path.name            # doctest: +SKIP
    ('fusion', 'model.keras')
    """

    def __init__(self, path):
        self.path = Path(path)

    @classmethod
    def for_config(cls, cfg):
        """``<output_dir>/<name>-seed<seed>``: the seed names the run folder."""
        return cls(Path(cfg.output_dir) / f"{cfg.name}-seed{cfg.seed}")

    def __repr__(self):
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self):
        return str(self.path)

    # ------------------------------------------------------------------ layout
    @property
    def config_path(self):
        return self.path / "config.yaml"

    @property
    def versions_path(self):
        return self.path / "versions.json"

    @property
    def timing_path(self):
        return self.path / "timing.json"

    @property
    def reducer_path(self):
        return self.path / "reducer.npz"

    @property
    def reducer_warnings_path(self):
        return self.path / "reducer_warnings.json"

    @property
    def frame_encoder_path(self):
        return self.path / "frame_encoder.keras"

    @property
    def model_path(self):
        return self.path / "model.keras"

    @property
    def calibration_path(self):
        return self.path / "calibration.json"

    def temperature(self):
        """The temperature of ``calibration.json`` (``train.calibrate``), or None for a run without one."""
        try:
            record = self.read_json(self.calibration_path)
        except ValueError as err:
            raise ModelError(f"{self.calibration_path}: not valid JSON ({one_line(err)})") from err
        if record is None:
            return None
        value = record.get("temperature") if isinstance(record, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ModelError(f"{self.calibration_path}: 'temperature' must be a positive number; received {value!r}")
        return float(value)

    @property
    def embeddings_path(self):
        return self.path / "embeddings.h5"

    @property
    def metrics_path(self):
        return self.path / "metrics.json"

    def ablation_path(self, mode):
        """``ablation/<mode>.keras`` (``mode`` "audio" or "video")."""
        return self.path / "ablation" / f"{mode}.keras"

    def model_file(self, model_name="model"):
        """``<model_name>.keras``: "model", "ablation/audio" or "ablation/video"."""
        return self.path / f"{model_name}.keras"

    def ablation_models(self):
        """The single-modality models this run has: [("ablation/audio", "audio"), ...]."""
        return [(f"ablation/{m}", m) for m in ABLATION_MODES if self.ablation_path(m).is_file()]

    def stage_dir(self, stage):
        """``stages/<stage>/``: one training stage's checkpoints and logs."""
        return self.path / "stages" / stage

    def stage(self, stage):
        """``stages/<stage>/`` as a :class:`StageDir` (its file names)."""
        return StageDir(self.stage_dir(stage))

    def stage_logs(self):
        """Every stage's ``log.csv``, sorted by stage name."""
        return sorted((self.path / "stages").glob("*/log.csv"))

    def fold(self, name):
        """``folds/<name>/`` of a cross-fitted run, as a RunDir of its own (created)."""
        fold = RunDir(self.path / "folds" / name)
        fold.path.mkdir(parents=True, exist_ok=True)
        return fold

    def evaluation_dir(self, data=None):
        """Where an evaluation writes: the run folder itself, or ``eval_<stem of data>/`` for other data."""
        return self.path if data is None else self.path / f"eval_{Path(data).stem}"

    def evaluation_store(self, data_dir):
        """``eval_<folder name>_features.h5``: the store a dataset folder is extracted into for evaluation."""
        return self.path / f"eval_{Path(data_dir).name}_features.h5"

    @staticmethod
    def outputs(out_dir):
        """The evaluation outputs written into ``out_dir`` (the run folder or an ``eval_*`` folder)."""
        out_dir = Path(out_dir)
        return {"metrics": out_dir / "metrics.json", "predictions": out_dir / "predictions.csv",
                "confusion_png": out_dir / "confusion_matrix.png", "confusion_json": out_dir / "confusion_matrix.json",
                "curves": out_dir / "training_curves.png", "ablation": out_dir / "ablation.md",
                "record": out_dir / "result_record.json"}

    # ------------------------------------------------------------------ reading
    def check_is_run(self):
        """Raise ModelError unless the folder holds a run's ``config.yaml``."""
        if not self.config_path.is_file():
            raise ModelError(f"{self.path}: not a run directory (no config.yaml); "
                             f"pass a folder written by emonet train")
        return self

    @cached_property
    def config(self):
        """The run's resolved config (parsed once per RunDir)."""
        return load_resolved_config(self.check_is_run().config_path)

    def read_json(self, path, default=None):
        """A JSON record of the run (``default`` if the file is absent)."""
        path = Path(path)
        return json.loads(path.read_text()) if path.is_file() else default

    def versions(self):
        return self.read_json(self.versions_path, {})

    def timing(self):
        return self.read_json(self.timing_path, {})

    def metrics(self):
        """metrics.json as a dict (ModelError if absent)."""
        if not self.metrics_path.is_file():
            raise ModelError(f"{self.path}: no metrics.json (run `emonet evaluate {self.path}` first)")
        return self.read_json(self.metrics_path)

    # ------------------------------------------------------------------ writing (atomic)
    def write_json(self, path, record):
        """Write ``record`` as indented JSON to ``path`` atomically."""
        return atomic_write_text(path, json.dumps(record, indent=2))

    def write_config(self, cfg):
        """Write ``cfg`` as the run's ``config.yaml``."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, config_yaml(cfg))
        self.__dict__.pop("config", None)

    def same_config(self, cfg):
        """Whether ``cfg`` is the config this run was started with (for ``--resume``)."""
        return self.config_path.read_text(encoding="utf-8") == config_yaml(cfg)

    def write_versions(self):
        """versions.json: library versions, git commit, machine, command line."""
        import keras
        import sklearn
        import tensorflow as tf

        from preprocessing.extraction import library_versions  # librosa, OpenCV: not for every run folder read
        versions = {**library_versions(), "tensorflow": tf.__version__, "keras": keras.__version__,
                    "scikit-learn": sklearn.__version__, "git_commit": git_commit(),
                    "machine": f"{platform.machine()} {os.cpu_count()} cpus", "argv": sys.argv}
        self.write_json(self.versions_path, versions)

    def write_timing(self, train_seconds):
        self.write_json(self.timing_path, {"train_seconds": train_seconds})


class StageDir:
    """``stages/<stage>/`` of a run: one training stage's checkpoints and records.

    Parameters
    ----------
    path : str or os.PathLike
        The folder (created when a loop starts writing into it).
    """

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self):
        return f"StageDir({str(self.path)!r})"

    def __fspath__(self):
        return str(self.path)

    @property
    def best_path(self):
        """``best.keras``: the model of the best validation UAR so far (with optimizer state)."""
        return self.path / "best.keras"

    @property
    def last_path(self):
        """``last.keras``: the model after the last finished epoch (a killed run resumes from it)."""
        return self.path / "last.keras"

    @property
    def state_path(self):
        """``state.json``: epoch, best_uar, best_epoch, lr, stale, done, seconds."""
        return self.path / "state.json"

    @property
    def log_path(self):
        """``log.csv``: epoch (from 1), lr, loss, accuracy, val_uar, seconds."""
        return self.path / "log.csv"

    @property
    def tensorboard_dir(self):
        return self.path / "tensorboard"

    @property
    def outcome_path(self):
        """``outcome.json`` of the fine-tuning stage (improved, best_epoch, best_uar; marks it done)."""
        return self.path / "outcome.json"

    @property
    def out_of_fold_path(self):
        """``out_of_fold.npz`` of a cross-fitted fusion stage (branch predictions the head learned from)."""
        return self.path / "out_of_fold.npz"


def set_seeds(seed):
    """Seed Python, NumPy and TensorFlow (through Keras) for repeatable runs."""
    import keras
    keras.utils.set_random_seed(seed)


def git_commit():
    """The project's git commit (with ``-dirty`` when there are local changes), or "unknown"."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True,
                               timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if commit.returncode:
        return "unknown"
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
