"""``emonet-base``, the shipped model: assembled from a frame CNN run, a voice run and posed-face clips.

The parts (each trained by ``emonet train``; ``experiments/emonet_base.py`` runs the lot):

1. **Frame CNN** -- a ``frames`` run (e.g. ``experiments/ferplus_lab_faces.yaml``: ResNet-20
   on FER+ faces in the wild with posed lab faces mixed in). Its encoder is the run's
   ``frame_encoder.keras``; its softmax is the *face expert* of :mod:`emonet.nn.experts`,
   which on still images gets the class prior of FER+'s training faces
   (:func:`photo_prior_correction`, when ``photo_store`` is given).
2. **Clip expert** -- a softmax on the mean frame embedding of a clip, fitted here
   (multinomial logistic regression, class-balanced) on the training split of a store of
   footage (the composite corpus's Train_AFEW), embedded by the same frame CNN.
3. **Voice** -- an ``audio`` run (e.g. ``experiments/voice_mlp_all.yaml``: all speech corpora,
   every speaker); its model is the audio branch, its ``reducer.npz`` the reducer. When it heard
   the fusion split's speakers, ``fusion_voice_run`` names the same recipe trained without them
   (``experiments/voice_mlp.yaml``), whose predictions fit the fusion weight instead.
4. **Fusion** -- :func:`emonet.nn.fusion.build_fusion_head` with an untrained (zero) correction:
   the linear pool of the branches that have input, the video weight fitted by maximum
   likelihood on the *fusion split* of the footage store (Val_AFEW: faces and speakers the
   video part and the fusion voice never trained on).

:func:`replace_base_voice` gives an assembled model a new voice (and fits the fusion weight again),
keeping its frame CNN and video branch. The result is an ordinary run folder of mode ``fusion``
(``config.yaml``, ``model.keras``, ``frame_encoder.keras``, ``reducer.npz``, ``versions.json``,
``parts.json``), so ``predict`` and ``evaluate`` load it like any run.
"""

import dataclasses
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError
from preprocessing.files import atomic_path
from preprocessing.store import FeatureStore

from emonet.evaluation.metrics import uar
from emonet.experiment.config import RunConfig
from emonet.experiment.rundir import RunDir
from emonet.features.datasets import sequence_batch
from emonet.features.frames import sample_indices
from emonet.features.tables import SplitTable, audio_matrix
from emonet.inference.trained_run import TrainedRun
from emonet.nn.experts import build_video_experts, softmax_weights
from emonet.nn.fusion import build_fusion_head, build_stacked_fusion
from emonet.nn.io import load_model, save_model_atomically
from emonet.training.calibration import temper_output
from emonet.training.folds import fit_pool_weight

logger = logging.getLogger(__name__)

#: Bias of a class the clip expert saw no clip of (its logit; ~e^-30 of the probability of the others).
ABSENT_CLASS_BIAS = -30.0

#: The files of a run folder that inference needs, plus its provenance: what the package ships.
SHIPPED_FILES = ("config.yaml", "model.keras", "frame_encoder.keras", "reducer.npz", "versions.json", "parts.json")


@dataclass(frozen=True)
class BaseModelRecipe:
    """What ``emonet-base`` is made of (all paths absolute or relative to the working folder)."""
    frames_run: str                 # a ``frames`` run: frame CNN + face expert
    voice_run: str                  # an ``audio`` run: audio branch + reducer
    footage_store: str              # feature store of labelled footage (clip expert, fusion weight)
    clip_split: str = "train"       # split of the footage store the clip expert is fitted on
    fusion_split: str = "val"       # split the fusion weight is fitted on (unseen faces and speakers)
    face_weight: float = 0.5        # weight of the face expert on footage (emonet_base.py ships 0.25; docs/DESIGN.md)
    clip_expert_c: float = 0.1      # inverse L2 strength of the clip expert's logistic regression
    n_frames: int = 16              # frames sampled per clip (centred segments), as every run reads them
    photo_store: str | None = None  # store of still faces (FER+) whose training split's class prior stills
                                    # get (photo_prior_correction); None = stills get the face expert as is
    fusion_voice_run: str | None = None  # the audio run whose predictions fit the fusion weight, when
                                         # voice_run heard the fusion split's speakers (a refit on every
                                         # speaker): the same recipe trained without them; None = voice_run
    still_views: int = 1            # views a still image is read in (model.still_views: 1 or 10); the photo
                                    # prior is fitted on training faces read the same way
    voice_temperature: float = 1.0  # the voices' logits divided by this (calibration.temper_output), the shipped
                                    # one and the one fitting the fusion weight alike; fitted out of fold


def mean_embeddings(frames, store, keys, n_frames):
    """Mean frame-CNN embedding of each clip over its centred segment frames (as inference samples them).

    Returns
    -------
    np.ndarray [shape=(n, E), dtype=float32]
        Zeros for a clip without a face.
    """
    out = np.zeros((len(keys), frames.frame_encoder.output_shape[-1]), np.float32)
    for i, key in enumerate(keys):
        faces = store.clip(key)["faces"]
        if not faces.shape[0]:
            continue
        index, mask = sample_indices(faces.shape[0], n_frames)
        picked = faces[()][np.unique(index[mask > 0])]
        out[i] = frames.encode_faces(picked).mean(axis=0)
    return out


def fit_clip_expert(embeddings, labels, *, c=0.1, seed=0):
    """Class-balanced multinomial logistic regression on mean embeddings, as one softmax layer.

    The standardisation is folded into the weights, so ``softmax(x @ kernel + bias)`` equals
    the fitted model's ``predict_proba`` on raw mean embeddings ``x``. A class without
    clips gets probability ~0 (bias :data:`ABSENT_CLASS_BIAS`).

    Parameters
    ----------
    embeddings : np.ndarray [shape=(n, E)]
    labels : np.ndarray of int [shape=(n,)]
        Class indices into :data:`preprocessing.constants.CLASSES`; at least two classes.

    Returns
    -------
    kernel : np.ndarray [shape=(E, 7)] float32
    bias : np.ndarray [shape=(7,)] float32
    """
    labels = np.asarray(labels)
    present = np.unique(labels)
    if len(present) < 2:
        raise ConfigError(f"clip expert: the footage split has clips of {len(present)} class(es); needs two or more")
    scaler = StandardScaler().fit(embeddings)
    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced", random_state=seed)
    model.fit(scaler.transform(embeddings), labels)
    coef = model.coef_ if len(present) > 2 else np.vstack([-model.coef_, model.coef_]) / 2
    intercept = model.intercept_ if len(present) > 2 else np.concatenate([-model.intercept_, model.intercept_]) / 2
    kernel = np.zeros((embeddings.shape[1], len(CLASSES)), np.float32)
    bias = np.full(len(CLASSES), ABSENT_CLASS_BIAS, np.float32)
    kernel[:, model.classes_] = (coef / scaler.scale_).T
    bias[model.classes_] = intercept - (coef * scaler.mean_ / scaler.scale_).sum(axis=1)
    return kernel, bias


def photo_prior_correction(frames, face_head, store_path, *, split="train", views=1, batch_size=1024):
    """A logit bias that gives the face expert the class prior of ``store_path``'s ``split`` faces.

    ``log(prior) - log(mean predicted probability)`` over the first frame of each clip of
    the split (for a corpus of still faces such as FER+: every face), where the prior is
    the mean of the clips' label distributions (rater votes, or one-hot labels). A frame CNN
    trained with other faces mixed in (``data.mix_store``: posed clips with balanced
    classes) predicts that mix's prior; on photos in the wild, the corpus's own prior is
    the better guess (Bayes' rule for a change of prior). Fitted on training faces only.

    Parameters
    ----------
    frames : TrainedRun
        The frames run (its encoder embeds the faces).
    face_head : (np.ndarray [shape=(E, C)], np.ndarray [shape=(C,)])
        The face expert's softmax kernel and bias.
    store_path : str or os.PathLike
    views : {1, 10}
        Views each face is read in (:meth:`TrainedRun.encode_stills`), as the model reads stills.

    Returns
    -------
    np.ndarray [shape=(C,), dtype=float32]
        Natural-log bias per class (0 where prior and predictions agree).
    """
    kernel, bias = face_head
    with FeatureStore(store_path) as store:
        table, _ = SplitTable(store, split, labelled=False).labelled_part(keep_soft=True)
        keys = [k for k, n in zip(table.keys, table.n_frames) if n > 0]
        prior = (table.soft_labels if table.soft_labels is not None
                 else np.eye(len(CLASSES))[np.maximum(table.labels, 0)])[table.n_frames > 0].mean(axis=0)
        total = np.zeros(len(CLASSES))
        for start in range(0, len(keys), batch_size):
            crops = np.stack([store.clip(k)["faces"][0] for k in keys[start:start + batch_size]])
            logits = frames.encode_stills(crops, n_views=views) @ kernel + bias
            proba = np.exp(logits - logits.max(axis=1, keepdims=True))
            total += (proba / proba.sum(axis=1, keepdims=True)).sum(axis=0)
    if not keys:
        raise ConfigError(f"{store_path}: no face in split {split!r} to fit the photo prior on")
    floor = 1e-6  # a class absent from the prior is pushed down, not to minus infinity
    return (np.log(np.maximum(prior, floor)) - np.log(np.maximum(total / len(keys), floor))).astype(np.float32)


def class_balance_weights(labels):
    """Per-clip weights ``n / (k * count(class))``: every class counts alike."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
    return len(labels) / (np.count_nonzero(counts) * counts[labels])


def base_config(image_config, voice_config, footage_store, *, n_frames=16, still_views=1):
    """The shipped run's config: the frame CNN's image settings (``image_config``, the RunConfig of the frames
    run or of the model whose video branch is kept), footage extraction, the voice reducer and network."""
    keys = {f.name for f in dataclasses.fields(RunConfig().extract)}
    with FeatureStore(footage_store) as store:
        extract = {k: v for k, v in store.params.items() if k in keys}
    return RunConfig().with_changes(
        name="emonet-base", description="the shipped model (emonet.training.base_model; MODEL_CARD.md)",
        data={"root": "../shared/data (FER+, speech corpora, composite; see MODEL_CARD.md)", "layout": "afew"},
        extract=extract,
        model={"mode": "fusion", "image_size": image_config.model.image_size,
               "embedding_dim": image_config.model.embedding_dim, "n_frames": n_frames,
               "reducer": voice_config.model.reducer, "audio_features": voice_config.model.audio_features,
               "audio_dim": voice_config.model.audio_dim,
               "audio_units": voice_config.model.audio_units, "head_units": voice_config.model.head_units,
               "test_audio_speeds": voice_config.model.test_audio_speeds, "still_views": still_views})


def assemble_base_model(recipe, out_dir):
    """Build the shipped model into ``out_dir`` (a run folder); returns the record of its parts (dict).

    Raises
    ------
    ModelError
        A part's run folder is missing or incomplete.
    ConfigError
        The parts do not fit together (modes, embedding widths) or the footage lacks a class.
    """
    frames, voice = TrainedRun(recipe.frames_run), check_voice(recipe.voice_run)
    if frames.mode != "frames":
        raise ConfigError(f"emonet-base needs a frames run; received {frames.mode} ({recipe.frames_run})")
    face_head = softmax_weights(frames.model)
    with FeatureStore(recipe.footage_store) as store:
        clips = SplitTable(store, recipe.clip_split)
        fusion = SplitTable(store, recipe.fusion_split)
        logger.info(f"emonet-base: clip expert on {len(clips)} clips of split {recipe.clip_split!r}")
        clip_x = mean_embeddings(frames, store, clips.keys, recipe.n_frames)
        has_faces = clips.n_frames > 0
        clip_head = fit_clip_expert(clip_x[has_faces], clips.labels[has_faces], c=recipe.clip_expert_c)
        still_bias = (photo_prior_correction(frames, face_head, recipe.photo_store, views=recipe.still_views)
                      if recipe.photo_store else None)
        video_branch = build_video_experts(face_head, clip_head, n_frames=recipe.n_frames, alpha=recipe.face_weight,
                                           still_bias=still_bias)
        fusion_clips = FusionClips.read(frames, store, fusion)
    record = {"recipe": dataclasses.asdict(recipe),
              "photo_prior_bias": None if still_bias is None else dict(zip(CLASSES, map(float, still_bias)))}
    config = base_config(frames.run.config, voice.run.config, recipe.footage_store, n_frames=recipe.n_frames,
                         still_views=recipe.still_views)
    return fuse_and_write(video_branch, voice, recipe, fusion_clips, config, frames.run.frame_encoder_path, out_dir,
                          record)


def replace_base_voice(base_dir, recipe, out_dir):
    """The model of ``base_dir`` (an emonet-base run folder) with the voice of ``recipe.voice_run``, into ``out_dir``.

    The frame CNN and the video branch (face expert, clip expert, photo prior, the face weight) are the
    base's, unchanged; the audio branch and reducer are the new voice's, and the fusion weight is fitted
    again on ``recipe.fusion_split`` of ``recipe.footage_store`` with the voice of ``recipe.fusion_voice_run``
    (as :func:`assemble_base_model` fits it). Only ``voice_run``, ``fusion_voice_run``, ``footage_store``,
    ``fusion_split`` and ``voice_temperature`` of ``recipe`` are read. Returns the record of the parts: the
    base's, with the voice replaced and ``video_from`` naming the model whose video part this is and the commit
    it was assembled at (the base's own ``video_from`` when the base already had its voice replaced).
    """
    base, voice = TrainedRun(base_dir), check_voice(recipe.voice_run)
    if base.mode != "fusion" or not base.run.frame_encoder_path.is_file():
        raise ConfigError(f"{base_dir}: not an emonet-base model folder (mode {base.mode})")
    video_branch = load_model(base.model_path, compile=False).get_layer("video_branch")
    with FeatureStore(recipe.footage_store) as store:
        fusion_clips = FusionClips.read(base, store, SplitTable(store, recipe.fusion_split))
    old = base.run.read_json(base.run.path / "parts.json")
    old_recipe = dict(old.get("recipe", {}))
    for field in ("voice_run", "fusion_voice_run", "footage_store", "fusion_split", "voice_temperature"):
        old_recipe[field] = getattr(recipe, field)
    # where the video part was assembled: the base's own origin when its voice was replaced before
    origin = old.get("video_from") or {"model": str(base_dir),
                                       "model_git_commit": base.run.versions().get("git_commit")}
    record = {"recipe": old_recipe, "photo_prior_bias": old.get("photo_prior_bias"),
              "video_from": {**origin, "fusion_video_weight_before": old.get("fusion_video_weight")}}
    config = base_config(base.run.config, voice.run.config, recipe.footage_store,
                         n_frames=base.run.config.model.n_frames, still_views=base.run.config.model.still_views)
    return fuse_and_write(video_branch, voice, recipe, fusion_clips, config, base.run.frame_encoder_path, out_dir,
                          record)


def check_voice(voice_run):
    """The TrainedRun of an ``audio`` run, or a ConfigError naming it."""
    voice = TrainedRun(voice_run)
    if voice.mode != "audio":
        raise ConfigError(f"emonet-base needs an audio run for its voice; received {voice.mode} ({voice_run})")
    return voice


@dataclasses.dataclass(frozen=True)
class FusionClips:
    """The clips that fit the fusion weight: their split table, per-clip frame embeddings ((T, E) float32 each,
    from the model's frame CNN) and audio vectors ((n, D) float64)."""

    table: SplitTable
    embeddings: list
    audio: np.ndarray

    @classmethod
    def read(cls, frames, store, table):
        """The clips of ``table`` in ``store``, embedded by the frame CNN of TrainedRun ``frames``."""
        return cls(table, frames.store_embeddings(store, table.keys), audio_matrix(store, table.keys))


def fuse_and_write(video_branch, voice, recipe, clips, config, frame_encoder_path, out_dir, record):
    """Fit the fusion weight on FusionClips ``clips``, write the run folder ``out_dir``; returns ``record`` completed."""
    fusion = clips.table
    audio_branch = temper_output(load_model(voice.model_path, compile=False), recipe.voice_temperature)
    p_video = np.asarray(video_branch.predict(frames_inputs(clips.embeddings, config.model.n_frames), verbose=0))
    fitting_run, fitting_branch = fusion_voice(recipe, voice, audio_branch)
    if fitting_branch is not audio_branch:
        temper_output(fitting_branch, recipe.voice_temperature)
    p_audio = np.asarray(fitting_branch.predict(fitting_run.reduce_audio(clips.audio, fusion.has_audio), verbose=0))
    both = fusion.has_audio & (fusion.n_frames > 0)
    alpha = fit_pool_weight(p_video[both], p_audio[both], fusion.labels[both],
                            sample_weight=class_balance_weights(fusion.labels[both]))
    model = build_stacked_fusion(video_branch, audio_branch, build_fusion_head(alpha=alpha), name="emonet_base")
    run = RunDir(out_dir)
    run.write_config(config)
    save_model_atomically(model, run.model_path)
    copy_file(frame_encoder_path, run.frame_encoder_path)
    copy_file(voice.run.reducer_path, run.reducer_path)
    run.write_versions()
    record = {**record, "fusion_video_weight": alpha, "fusion_split_clips": int(both.sum()),
              "fusion_split_uar": {"video": uar(fusion.labels, p_video.argmax(1)),
                                   "audio": uar(fusion.labels[fusion.has_audio], p_audio[fusion.has_audio].argmax(1))}}
    run.write_json(run.path / "parts.json", record)
    logger.info(f"emonet-base: fusion video weight {alpha:.3f} (fitted on {int(both.sum())} clips of split "
                f"{recipe.fusion_split!r}) -> {run.path}")
    return record


def fusion_voice(recipe, voice, audio_branch):
    """(run, branch) of the voice that fits the fusion weight: ``recipe.fusion_voice_run`` if given, else ``voice``."""
    if recipe.fusion_voice_run is None:
        return voice, audio_branch
    held_out = TrainedRun(recipe.fusion_voice_run)
    if held_out.mode != "audio":
        raise ConfigError(f"emonet-base: the fusion voice run must be an audio run; received {held_out.mode} "
                          f"({recipe.fusion_voice_run})")
    return held_out, load_model(held_out.model_path, compile=False)


def frames_inputs(embeddings, n_frames):
    """Input dict of a video branch for clips' per-frame embeddings (centred segment sampling)."""
    x, mask = sequence_batch(embeddings, n_frames)
    return {"frame_embeddings": x, "frame_mask": mask}


def copy_run(source, target):
    """Copy the inference files of a run folder (the shipped model's package folder), replacing ``target``."""
    source, target = Path(source), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED_FILES:
        copy_file(source / name, target / name)


def copy_file(source, target):
    """Copy one file atomically (a killed copy leaves the old ``target`` or none, never half a file)."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
