"""Run configurations: one YAML file per experiment, strict keys, resolved before training.

A config file has the sections below; every key has a default except
``data.root`` (required). Unknown keys are an error, so a typo never silently
falls back to a default. Relative paths are relative to the config file.
A ``smoke:`` section may hold overrides of the same shape; ``--smoke`` applies
them (a quick variant of the same experiment).

Examples
--------
>>> cfg = load_config("experiments/composite_fusion.yaml")   # doctest: +SKIP
>>> cfg["model"]["mode"]                                     # doctest: +SKIP
'fusion'
"""

import copy
import json
from pathlib import Path

import yaml

from preprocessing.errors import ConfigError

#: Every key with its default. ``None`` marks "no default"; ``REQUIRED`` must be given.
REQUIRED = "<required>"

DEFAULTS = {
    "name": None,               # run name; default: the config file's stem
    "seed": 0,                  # seeds Python, NumPy and TensorFlow; part of the run folder name
    "output_dir": "../runs",    # parent of run folders
    "description": "",
    "data": {
        "root": REQUIRED,       # dataset folder (extracted on the way) or an existing .h5 store
        "layout": "afew",       # folder layout (preprocessing.datasets.LAYOUTS)
        "store": None,          # feature store path; default: <output_dir>/<root name>_features.h5
        "train_split": "train",
        "val_split": "val",
        "workers": None,        # extraction worker processes (None = CPU count)
    },
    "extract": {
        "crop_size": 64,        # stored face crop side, px
        "max_frames": 150,      # frames kept per clip (6 s at 25 fps)
        "detector": "haar",
        "margin": 0.1,          # border around the face box, fraction of its size per side
        "keep_frames": False,
    },
    "model": {
        "mode": "fusion",       # fusion | video | audio
        "image_size": 48,       # frame side fed to ResNet-20, px (crops are resized)
        "n_frames": 16,         # frames sampled per clip for the LSTM
        "embedding_dim": 64,    # ResNet-20 output width
        "lstm_units": 128,
        "audio_dim": 512,       # reducer output width (capped by the data)
        "reducer": "lda",       # lda | pca | none
        "reducer_shrinkage": "auto",  # LDA covariance shrinkage: "auto" (Ledoit-Wolf) or 0..1
        "reducer_whiten": True,   # scale every reduced axis to unit variance
        "head_dropout": 0.5,
    },
    "train": {
        "schedule": "two_stage",    # two_stage: frame CNN on single frames, then LSTMs on cached embeddings;
                                    # end_to_end: ResNet-20 + LSTMs trained together on frame sequences
                                    # (video branch only; audio and fusion as in two_stage). See docs/DESIGN.md
        "optimizer": "adam",        # adam | sgd (momentum)
        "learning_rate": 1.0e-3,
        "momentum": 0.9,            # sgd only
        "weight_decay": 1.0e-4,
        "batch_size": 32,
        "frame_epochs": 20,         # stage 1: frame CNN on single frames
        "frames_per_clip": 4,       # stage 1: frames drawn per clip per epoch
        "epochs": 60,               # stage 2 (or end-to-end) epochs, upper bound
        "finetune_epochs": 0,       # two_stage only: then fine-tune the video branch end to end (0 = off)
        "finetune_lr_scale": 0.1,   # fine-tuning learning rate = learning_rate * this
        "patience": 12,             # early stopping on validation UAR (stage two, end_to_end, finetune);
                                    # stage one uses half
        "lr_schedule": "cosine",    # cosine | constant | plateau
        "class_weights": True,
        "augment": True,            # crop, flip, brightness on frames
        "folds": 3,                 # cross-fitting (video and fusion runs): K subject-disjoint video models whose
                                    # mean is the video branch, and a fusion head trained on out-of-fold branch
                                    # predictions (see emonet.crossfit); 0 or 1 = one video model, joint fusion
        "fusion_init": "branches",  # folds 0/1 only -- fusion: train audio-only and video-only models first and fuse their
                                    # frozen encoders ("branches"), or train the whole model at once ("scratch")
        "modality_dropout": 0.25,   # stage two: share of training clips whose video or audio is hidden
        "embedding_noise": 0.3,     # stage two: Gaussian noise on frame embeddings, in embedding std units
        "audio_noise": 0.5,         # stage two: Gaussian noise on the reduced audio vector, in its std units
    },
    "smoke": None,              # overrides for --smoke
}

_CHOICES = {
    ("model", "mode"): ("fusion", "video", "audio"),
    ("model", "reducer"): ("lda", "pca", "none"),
    ("train", "schedule"): ("two_stage", "end_to_end"),
    ("train", "optimizer"): ("adam", "sgd"),
    ("train", "lr_schedule"): ("cosine", "constant", "plateau"),
    ("train", "fusion_init"): ("branches", "scratch"),
    ("data", "train_split"): ("train", "val", "test"),
    ("data", "val_split"): ("train", "val", "test"),
}

_POSITIVE = {
    ("model", "image_size"), ("model", "n_frames"), ("model", "embedding_dim"), ("model", "lstm_units"),
    ("model", "audio_dim"), ("train", "learning_rate"), ("train", "batch_size"), ("train", "frames_per_clip"),
    ("train", "epochs"), ("train", "finetune_lr_scale"), ("extract", "crop_size"), ("extract", "max_frames"),
}


def _merge(defaults, given, source, prefix=""):
    """Defaults overlaid with ``given``, refusing keys the defaults do not have."""
    if not isinstance(given, dict):
        raise ConfigError(f"{source}: section {prefix or 'top level'} must be a mapping; received {given!r}")
    merged = copy.deepcopy(defaults)
    for key, value in given.items():
        where = f"{prefix}{key}"
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise ConfigError(f"{source}: unknown key {where!r} (known keys here: {known})")
        if isinstance(defaults[key], dict):
            merged[key] = _merge(defaults[key], value or {}, source, prefix=f"{where}.")
        else:
            merged[key] = value
    return merged


def _validate(cfg, source):
    for (section, key), choices in _CHOICES.items():
        if cfg[section][key] not in choices:
            raise ConfigError(f"{source}: {section}.{key} must be one of {', '.join(choices)}; "
                              f"received {cfg[section][key]!r}")
    for section, key in _POSITIVE:
        value = cfg[section][key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{source}: {section}.{key} must be a positive number; received {value!r}")
    for section, key in [("train", "frame_epochs"), ("train", "patience"), ("train", "folds"), ("train", "finetune_epochs")]:
        value = cfg[section][key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{source}: {section}.{key} must be an integer >= 0; received {value!r}")
    if cfg["train"]["schedule"] == "end_to_end" and cfg["train"]["finetune_epochs"]:
        raise ConfigError(f"{source}: train.finetune_epochs applies to the two_stage schedule only (end_to_end "
                          f"already trains the video branch end to end); set it to 0")
    if cfg["data"]["root"] in (REQUIRED, None, ""):
        raise ConfigError(f"{source}: data.root is required (a dataset folder or a .h5 feature store)")
    if not isinstance(cfg["seed"], int) or isinstance(cfg["seed"], bool):
        raise ConfigError(f"{source}: seed must be an integer; received {cfg['seed']!r}")


def resolve_config(raw, *, source="config", base_dir=".", smoke=False):
    """Defaults + ``raw`` (+ its smoke overrides), validated, with absolute paths.

    Parameters
    ----------
    raw : dict
        Parsed YAML.
    source : str
        Name used in error messages (the file path).
    base_dir : str or os.PathLike
        Folder that relative paths are relative to.
    smoke : bool
        Apply the ``smoke:`` overrides.

    Returns
    -------
    dict
        The resolved configuration (JSON-serialisable).
    """
    cfg = _merge(DEFAULTS, raw or {}, source)
    if smoke:
        if not cfg["smoke"]:
            raise ConfigError(f"{source}: --smoke given but the config has no smoke: section")
        overrides = {k: v for k, v in cfg["smoke"].items() if k != "smoke"}
        cfg = _merge(cfg, overrides, f"{source} (smoke)")
        cfg["name"] = f"{cfg['name'] or Path(source).stem}_smoke"
    cfg["smoke"] = None
    _validate(cfg, source)
    base = Path(base_dir).absolute()
    cfg["name"] = cfg["name"] or Path(source).stem
    cfg["output_dir"] = str((base / cfg["output_dir"]).resolve())
    cfg["data"]["root"] = str((base / cfg["data"]["root"]).resolve())
    if cfg["data"]["store"]:
        cfg["data"]["store"] = str((base / cfg["data"]["store"]).resolve())
    return cfg


def load_config(path, *, smoke=False, seed=None):
    """Read and resolve a YAML run config (see :func:`resolve_config`); ``seed`` overrides the file's."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if seed is not None and isinstance(raw, dict):
        raw = {**raw, "seed": seed}
    return resolve_config(raw, source=str(path), base_dir=path.parent, smoke=smoke)


def dump_config(cfg, path):
    """Write a resolved config as YAML (keys in definition order)."""
    Path(path).write_text(yaml.safe_dump(json.loads(json.dumps(cfg)), sort_keys=False), encoding="utf-8")
