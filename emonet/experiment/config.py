"""Run configurations: one YAML file per experiment, typed, strict keys, resolved before training.

A config file has the sections below (:class:`RunConfig` and its parts); every key has a
default except ``data.root`` (required). Unknown keys are an error, so a typo never
silently falls back to a default. Relative paths are relative to the config file.
A ``smoke:`` section may hold overrides of the same shape; ``--smoke`` applies them
(a quick variant of the same experiment).

The resolved config is a frozen dataclass tree: ``cfg.model.mode``, ``cfg.train.epochs``.
A changed copy is made with :meth:`RunConfig.with_changes`; ``cfg.to_dict()`` is the
plain mapping written to a run's ``config.yaml`` (keys in definition order).

Examples
--------
>>> cfg = load_config("experiments/composite_fusion.yaml")   # doctest: +SKIP
>>> cfg.model.mode                                          # doctest: +SKIP
'fusion'
"""

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from preprocessing.audio_augment import check_speeds
from preprocessing.constants import AUDIO_BLOCKS
from preprocessing.errors import ConfigError

#: Marks the one key without a default.
REQUIRED = "<required>"

#: The name that stands for the shipped model (``emonet/pretrained/emonet-base``) wherever a model is asked
#: for: ``emonet predict --model``, ``emonet evaluate RUN``, ``emonet.load_model`` and ``model.frame_encoder_init``.
#: A folder of that name, where the name is read, comes first.
SHIPPED_MODEL_NAME = "emonet-base"


@dataclass(frozen=True)
class DataConfig:
    """Where the clips come from and which splits train and validate."""
    root: str = REQUIRED        # dataset folder (extracted on the way) or an existing .h5 store
    layout: str = "afew"        # folder layout (preprocessing.datasets.LAYOUTS)
    store: str | None = None    # feature store path; default: <output_dir>/<root name>_features.h5
    train_split: str = "train"
    val_split: str = "val"
    workers: int | None = None  # extraction worker processes (None = CPU count)
    mix_store: str | None = None  # stage one only: a second feature store whose train_split clips add face
                                  # frames to the frame CNN's training (e.g. posed lab faces beside FER+);
                                  # validation stays on this run's own val_split. None = off
    mix_share: float = 0.25     # share of stage one's training batches drawn from mix_store, in (0, 1)
    mix_from: float = 0.0       # mix_store frames are drawn from this fraction of each clip onward, in [0, 1)
                                # (0.5: the second half, for posed clips that start from a neutral face)


@dataclass(frozen=True)
class ExtractConfig:
    """Extraction settings (the keyword arguments of ``ExtractParams``)."""
    crop_size: int = 64         # stored face crop side, px
    max_frames: int = 150       # frames kept per clip (6 s at 25 fps)
    detector: str = "haar"
    margin: float = 0.1         # border around the face box, fraction of its size per side
    keep_frames: bool = False
    audio_speeds: list = field(default_factory=list)  # also store the functionals of each clip played at these
                                                      # speeds (e.g. [0.9, 1.1]: pitch and formants x0.9, x1.1);
                                                      # training clips of audio branches draw one per epoch.
                                                      # [] = off (preprocessing.audio_augment)


@dataclass(frozen=True)
class ModelConfig:
    """The network: mode, sizes, audio reducer."""
    mode: str = "fusion"        # fusion | video | audio | frames (the frame CNN alone, e.g. on face images;
                                # a clip's probabilities are the mean over its frames)
    image_size: int = 48        # frame side fed to ResNet-20, px (crops are resized)
    n_frames: int = 16          # frames sampled per clip for the LSTM
    embedding_dim: int = 64     # ResNet-20 output width
    lstm_units: int = 128
    audio_dim: int = 512        # reducer output width (capped by the data)
    reducer: str = "lda"        # lda | pca | none
    audio_features: str = "all"  # the block of the audio vector the voice reads: all | functionals (the 1,825
                                 # hand-made values) | voice_encoder (the pretrained encoder's 1,536 statistics)
    reducer_shrinkage: str | float = "auto"  # LDA covariance shrinkage: "auto" (Ledoit-Wolf) or 0..1
    reducer_whiten: bool = True  # scale every reduced axis to unit variance
    audio_units: list = field(default_factory=lambda: [256, 128, 128])  # audio branch Dense sizes; the last is
                                                                        # the audio embedding's width
    head_units: list = field(default_factory=lambda: [256, 128, 64])   # Dense sizes of the head after the
                                                                        # branches; [] = the softmax reads them
    head_dropout: float = 0.5
    test_audio_speeds: list = field(default_factory=list)  # prediction: the voice also hears each clip played
    # at these speed factors (preprocessing.audio_augment), and the class probabilities of the clip and its copies
    # are averaged (test-time augmentation); [] = the clip alone. Costs one audio-functionals pass per factor.
    still_views: int = 1        # prediction: a still image (a clip with one face frame) is read as 1 view (its
                                # crop) or 10 (five crops of 11/12 of the side and their mirror images), whose
                                # embeddings are averaged (test-time augmentation; emonet.features.frames.still_views)
    frame_encoder_init: str | None = None  # stage one starts from this trained frame CNN: a run folder (its
                                           # frame_encoder.keras, and its frame head when it has one), a .keras
                                           # frame encoder, or "emonet-base" (the shipped model's frame CNN and
                                           # face expert); None = random initialisation


@dataclass(frozen=True)
class TrainConfig:
    """The schedule and its hyper-parameters."""
    schedule: str = "two_stage"  # two_stage: frame CNN on single frames, then LSTMs on cached embeddings;
                                 # end_to_end: ResNet-20 + LSTMs trained together on frame sequences
                                 # (video branch only; audio and fusion as in two_stage). See docs/DESIGN.md
    optimizer: str = "adam"      # adam | sgd (momentum)
    learning_rate: float = 1.0e-3
    momentum: float = 0.9        # sgd only
    weight_decay: float = 1.0e-4
    batch_size: int = 32
    frame_epochs: int = 20       # stage 1: frame CNN on single frames; 0 = none, the CNN stays as it starts
                                 # (model.frame_encoder_init, e.g. emonet-base's, used frozen)
    frames_per_clip: int = 4     # stage 1: frames drawn per clip per epoch
    epochs: int = 60             # stage 2 (or end-to-end) epochs, upper bound
    finetune_epochs: int = 0     # two_stage only: then fine-tune the video branch end to end (0 = off)
    finetune_lr_scale: float = 0.1  # fine-tuning learning rate = learning_rate * this
    patience: int = 12           # early stopping on validation UAR (stage two, end_to_end, finetune);
                                 # stage one uses half
    lr_schedule: str = "cosine"  # cosine | constant | plateau
    keep: str = "best"           # the model a stage returns: best (the epoch of the best validation UAR) |
                                 # last (its final epoch: a refit on every speaker, whose val split is
                                 # not held out; needs patience 0)
    class_weights: bool | str = True  # true: balanced (n / (k * count)); "sqrt": its square root; false: none
    augment: bool = True         # crop, flip, brightness on frames
    augment_policy: str = "basic"  # stage one: basic (crop, flip, brightness) | footage (also rotation, zoom,
                                   # blur, erasing: faces in the wild)
    soft_labels: bool = True     # stage one: train on the store's per-clip label distributions where it has
                                 # them (FER+ votes), cross-entropy against the distribution
    folds: int = 3               # cross-fitting (video and fusion runs): K subject-disjoint video models whose
                                 # mean is the video branch, and a fusion head trained on out-of-fold branch
                                 # predictions (see emonet.training.crossfit); 0 or 1 = one video model, joint fusion
    fusion_init: str = "branches"  # folds 0/1 only -- fusion: train audio-only and video-only models first and fuse
                                   # their frozen encoders ("branches"), or train the whole model at once ("scratch")
    modality_dropout: float = 0.25  # stage two: share of training clips whose video or audio is hidden
    embedding_noise: float = 0.3    # stage two: Gaussian noise on frame embeddings, in embedding std units
    audio_noise: float = 0.5        # stage two: Gaussian noise on the reduced audio vector, in its std units
    calibrate: bool = False         # after training, fit a temperature on the validation split's predictions
                                    # (calibration.json): probabilities that say how sure the model is, decisions
                                    # unchanged (emonet.training.calibration; the split also chose the epochs)


@dataclass(frozen=True)
class RunConfig:
    """One experiment: its name and seed (which name the run folder), data, extraction, model and training."""
    name: str | None = None      # run name; default: the config file's stem
    seed: int = 0                # seeds Python, NumPy and TensorFlow; part of the run folder name
    output_dir: str = "../runs"  # parent of run folders
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    smoke: dict | None = None    # overrides for --smoke (None once resolved)

    def to_dict(self):
        """The plain nested mapping (JSON/YAML-serialisable), keys in definition order."""
        return dataclasses.asdict(self)

    def with_changes(self, **sections):
        """A copy with some keys changed: ``cfg.with_changes(model={"mode": "video"}, seed=3)``."""
        merged = _merge(self.to_dict(), sections, "with_changes")
        return _build(merged)


SECTIONS = {"data": DataConfig, "extract": ExtractConfig, "model": ModelConfig, "train": TrainConfig}


def _defaults():
    """Every key with its default, as a nested dict (``data.root`` is :data:`REQUIRED`)."""
    return RunConfig().to_dict()


#: Every key with its default (a plain nested dict; ``REQUIRED`` marks ``data.root``).
DEFAULTS = _defaults()

_CHOICES = {
    ("model", "mode"): ("fusion", "video", "audio", "frames"),
    ("train", "augment_policy"): ("basic", "footage"),
    ("train", "class_weights"): (True, False, "sqrt"),
    ("model", "reducer"): ("lda", "pca", "none"),
    ("model", "audio_features"): AUDIO_BLOCKS,
    ("train", "schedule"): ("two_stage", "end_to_end"),
    ("train", "optimizer"): ("adam", "sgd"),
    ("train", "lr_schedule"): ("cosine", "constant", "plateau"),
    ("train", "keep"): ("best", "last"),
    ("train", "fusion_init"): ("branches", "scratch"),
    ("train", "calibrate"): (True, False),
    ("data", "train_split"): ("train", "val", "test"),
    ("data", "val_split"): ("train", "val", "test"),
    ("model", "still_views"): (1, 10),
}

_POSITIVE = {
    ("model", "image_size"), ("model", "n_frames"), ("model", "embedding_dim"), ("model", "lstm_units"),
    ("model", "audio_dim"), ("train", "learning_rate"), ("train", "batch_size"), ("train", "frames_per_clip"),
    ("train", "epochs"), ("train", "finetune_lr_scale"), ("extract", "crop_size"), ("extract", "max_frames"),
}

_COUNTS = (("train", "frame_epochs"), ("train", "patience"), ("train", "folds"), ("train", "finetune_epochs"))


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
    """Check a merged nested dict; raises ConfigError naming the file, the key and the value."""
    for (section, key), choices in _CHOICES.items():
        value = cfg[section][key]
        if value not in choices or (isinstance(value, bool) and not any(c is value for c in choices)):
            raise ConfigError(f"{source}: {section}.{key} must be one of {', '.join(map(str, choices))}; "
                              f"received {cfg[section][key]!r}")
    for section, key in _POSITIVE:
        value = cfg[section][key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{source}: {section}.{key} must be a positive number; received {value!r}")
    for section, key in _COUNTS:
        value = cfg[section][key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{source}: {section}.{key} must be an integer >= 0; received {value!r}")
    if cfg["train"]["schedule"] == "end_to_end" and cfg["train"]["finetune_epochs"]:
        raise ConfigError(f"{source}: train.finetune_epochs applies to the two_stage schedule only (end_to_end "
                          f"already trains the video branch end to end); set it to 0")
    if cfg["train"]["keep"] == "last" and cfg["train"]["patience"]:
        raise ConfigError(f"{source}: train.keep: last trains every epoch, so early stopping cannot apply; "
                          f"set train.patience to 0 (received {cfg['train']['patience']})")
    if cfg["data"]["root"] in (REQUIRED, None, ""):
        raise ConfigError(f"{source}: data.root is required (a dataset folder or a .h5 feature store)")
    cfg["extract"]["audio_speeds"] = list(check_speeds(cfg["extract"]["audio_speeds"] or [],
                                                       name=f"{source}: extract.audio_speeds"))
    cfg["model"]["test_audio_speeds"] = list(check_speeds(cfg["model"]["test_audio_speeds"] or [],
                                                          name=f"{source}: model.test_audio_speeds"))
    for key, may_be_empty in (("audio_units", False), ("head_units", True)):
        units = cfg["model"][key]
        if (not isinstance(units, list) or (not units and not may_be_empty)
                or any(isinstance(u, bool) or not isinstance(u, int) or u < 1 for u in units)):
            kind = "a list" if may_be_empty else "a non-empty list"
            raise ConfigError(f"{source}: model.{key} must be {kind} of positive integers (layer sizes); "
                              f"received {units!r}")
    init = cfg["model"]["frame_encoder_init"]
    if init is not None and (not isinstance(init, str) or not init):
        raise ConfigError(f"{source}: model.frame_encoder_init must be a path (a run folder or a .keras file), "
                          f"{SHIPPED_MODEL_NAME!r} or null; received {init!r}")
    share = cfg["data"]["mix_share"]
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
        raise ConfigError(f"{source}: data.mix_share must be a number in (0, 1); received {share!r}")
    start = cfg["data"]["mix_from"]
    if isinstance(start, bool) or not isinstance(start, (int, float)) or not 0 <= start < 1:
        raise ConfigError(f"{source}: data.mix_from must be a number in [0, 1); received {start!r}")
    mix = cfg["data"]["mix_store"]
    if mix is not None and (not isinstance(mix, str) or not mix.endswith(".h5")):
        raise ConfigError(f"{source}: data.mix_store must be the path of a .h5 feature store or null; "
                          f"received {mix!r}")
    if not isinstance(cfg["seed"], int) or isinstance(cfg["seed"], bool):
        raise ConfigError(f"{source}: seed must be an integer; received {cfg['seed']!r}")


def _build(merged):
    """A :class:`RunConfig` from a complete nested dict."""
    top = {k: v for k, v in merged.items() if k not in SECTIONS}
    return RunConfig(**top, **{name: cls(**merged[name]) for name, cls in SECTIONS.items()})


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
    RunConfig
        The resolved configuration.
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
    if cfg["data"]["mix_store"]:
        cfg["data"]["mix_store"] = str((base / cfg["data"]["mix_store"]).resolve())
    init = cfg["model"]["frame_encoder_init"]
    if init and (init != SHIPPED_MODEL_NAME or (base / init).exists()):
        cfg["model"]["frame_encoder_init"] = str((base / cfg["model"]["frame_encoder_init"]).resolve())
    return _build(cfg)


def _read_yaml(path):
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc


def load_config(path, *, smoke=False, seed=None):
    """Read and resolve a YAML run config (see :func:`resolve_config`); ``seed`` overrides the file's."""
    raw = _read_yaml(path)
    if seed is not None and isinstance(raw, dict):
        raw = {**raw, "seed": seed}
    return resolve_config(raw, source=str(path), base_dir=Path(path).parent, smoke=smoke)


def load_resolved_config(path):
    """A run folder's ``config.yaml`` (already resolved: absolute paths) as a :class:`RunConfig`.

    Keys a run written by an older version lacks take their defaults; unknown keys are an error.
    """
    raw = _read_yaml(path)
    cfg = _merge(DEFAULTS, raw or {}, str(path))
    _validate(cfg, str(path))
    return _build(cfg)


def config_yaml(cfg):
    """The YAML text of a resolved config (keys in definition order), as a run's ``config.yaml`` holds it."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
