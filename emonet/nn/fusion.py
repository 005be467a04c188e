"""Cross-fitted branches and the stacked fusion head.

Why (measured on Val_AFEW, docs/DESIGN.md has the figures): a fusion head trained
on the branches' outputs for *training* clips learns to trust video alone, because
a frame CNN has memorised the training faces (training-clip video accuracy ~100%,
unseen subjects ~75%, and it is just as confident when it is wrong). Noise and
modality dropout did not cure it. Stacking does: every training clip gets branch
predictions from models that never saw its face subject (video) or its speaker
(audio) -- *out-of-fold* predictions -- and the fusion head learns how far to
trust each branch from those.

- **Video**: ``K`` frame CNN + LSTM models, one per subject-disjoint fold; at
  inference the branch is their average (a cross-validation ensemble, so no extra
  full-data model is trained). Their frame encoders are joined into one frame
  encoder whose embedding is the concatenation of the ``K`` embeddings
  (shape ``(K * E,)``), so the embedding cache and inference code stay unchanged.
- **Audio**: the full-data audio model is the branch; ``K`` speaker-disjoint
  fold models (each with its own reducer fitted on its fold's training part) only
  produce the out-of-fold predictions.
- **Head**: a linear opinion pool ``alpha * p_video + (1 - alpha) * p_audio`` of the
  branches that have input, ``alpha`` fitted by maximum likelihood on the out-of-fold
  predictions; plus a correction from the log-probabilities of the two branches,
  concatenated (14 values) -> (Dense + ReLU + Dropout) x 3 -> Dense, added to the log of
  the pool -> softmax (an untrained correction leaves the pool unchanged).

Functions here are pure model assembly and fold bookkeeping; the training
stages live in :mod:`emonet.train`.
"""

import re

import keras
import numpy as np
import scipy.optimize
from keras import layers, ops

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError

from emonet.nn.models import OUTPUT_NAME

#: Probability floor before the log: log-probabilities lie in [log(1e-4), 0] = [-9.2, 0].
PROBABILITY_FLOOR = 1e-4

#: Log-probability inputs of the fusion head.
HEAD_INPUTS = ("video_logp", "audio_logp")

#: Presence inputs of the fusion head: 1.0 when the clip has a face (video) / audio, else 0.0.
PRESENCE_INPUTS = ("has_video", "has_audio")

_SEQUENCE_SUFFIX = re.compile(r"_\d+$")


def person_of(subject):
    """The person behind a subject id: a trailing ``_<digits>`` sequence number is dropped.

    CK+ names sequences ``S005_001`` (subject 5, sequence 1); two sequences of one
    person must fall in the same fold.

    >>> person_of("ck:S005_001"), person_of("jaffe:KA"), person_of(None)
    ('ck:S005', 'jaffe:KA', None)
    """
    if not subject:
        return None
    return _SEQUENCE_SUFFIX.sub("", str(subject))


def group_folds(groups, n_folds, *, seed=0):
    """Assign clips to ``n_folds`` folds so that no group (person) spans two folds.

    Groups are placed largest first (ties in a seeded random order) into the fold
    holding the fewest clips so far, which keeps folds within one group's size of
    each other. Clips without a group (``None``) are their own group each.

    Parameters
    ----------
    groups : sequence of str or None, length n
    n_folds : int >= 2
    seed : int

    Returns
    -------
    np.ndarray [shape=(n,), dtype=int64]
        Fold index of each clip, in ``0 .. n_folds - 1``.

    Raises
    ------
    ConfigError
        Fewer distinct groups than folds.
    """
    if n_folds < 2:
        raise ConfigError(f"group_folds: n_folds must be >= 2; received {n_folds}")
    keys = [str(g) if g else f"\0clip{i}" for i, g in enumerate(groups)]
    names, inverse, counts = np.unique(np.array(keys, dtype=object), return_inverse=True, return_counts=True)
    if len(names) < n_folds:
        raise ConfigError(f"cross-fitting needs at least {n_folds} distinct subjects/speakers; "
                          f"the training split has {len(names)}")
    tiebreak = np.random.default_rng(seed).permutation(len(names))
    order = np.lexsort((tiebreak, -counts))
    fold_of_group = np.zeros(len(names), np.int64)
    sizes = np.zeros(n_folds, np.int64)
    for g in order:
        target = int(np.argmin(sizes))
        fold_of_group[g] = target
        sizes[target] += counts[g]
    return fold_of_group[inverse]


@keras.saving.register_keras_serializable(package="emonet")
class LogProbability(layers.Layer):
    """``log(max(p, floor))``: probabilities (B, C) -> log-probabilities (B, C) in [log floor, 0]."""

    def __init__(self, *, floor=PROBABILITY_FLOOR, **kwargs):
        super().__init__(**kwargs)
        self.floor = float(floor)

    def call(self, probabilities):
        return ops.log(ops.maximum(probabilities, self.floor))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "floor": self.floor}


@keras.saving.register_keras_serializable(package="emonet")
class FeatureSlice(layers.Layer):
    """Last-axis slice ``x[..., start:stop]``: (B, ..., D) -> (B, ..., stop - start)."""

    def __init__(self, *, start, stop, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = int(start), int(stop)

    def call(self, x):
        return x[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.stop - self.start,)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


def join_frame_encoders(encoders, *, name="frame_encoder"):
    """One frame encoder from ``K`` trained ones: crop (S, S, 3) -> concatenated embedding (K * E,).

    Parameters
    ----------
    encoders : list of keras.Model
        Same input shape and embedding width E each.
    """
    if len(encoders) == 1:
        return encoders[0]
    image = keras.Input(encoders[0].input_shape[1:], dtype="float32", name="face")
    parts = []
    for k, encoder in enumerate(encoders):
        encoder.name = f"frame_encoder_fold{k}"
        parts.append(encoder(image))
    return keras.Model(image, layers.Concatenate(name="fold_embeddings")(parts), name=name)


def build_video_ensemble(video_models, *, n_frames, embedding_dim, name="video_branch"):
    """Average of ``K`` fold video models, each reading its own slice of the joined embedding.

    Parameters
    ----------
    video_models : list of keras.Model
        Video-mode clip models on embeddings: ``[frame_embeddings (B, T, E), frame_mask (B, T)]``
        -> probabilities (B, 7).
    n_frames : int
        T.
    embedding_dim : int
        E, the width of one fold's embedding; the input is (B, T, K * E).

    Returns
    -------
    keras.Model
        Inputs ``frame_embeddings`` [shape=(B, T, K * E)], ``frame_mask`` [shape=(B, T)];
        output ``emotion`` [shape=(B, 7)], the mean of the fold models' probabilities.
    """
    k_models = len(video_models)
    embeddings = keras.Input((n_frames, k_models * embedding_dim), dtype="float32", name="frame_embeddings")
    mask = keras.Input((n_frames,), dtype="float32", name="frame_mask")
    outputs = []
    for k, model in enumerate(video_models):
        model.name = f"video_fold{k}"
        part = FeatureSlice(start=k * embedding_dim, stop=(k + 1) * embedding_dim, name=f"fold{k}_slice")(embeddings)
        outputs.append(model({"frame_embeddings": part, "frame_mask": mask}))
    mean = layers.Average(name=OUTPUT_NAME)(outputs) if k_models > 1 else \
        layers.Identity(name=OUTPUT_NAME)(outputs[0])
    return keras.Model({"frame_embeddings": embeddings, "frame_mask": mask}, mean, name=name)


def fit_pool_weight(video_probabilities, audio_probabilities, labels, *, sample_weight=None):
    """Video weight ``alpha`` of the pool ``alpha * p_video + (1 - alpha) * p_audio`` that fits ``labels`` best.

    Maximum likelihood (weighted mean log-probability of the true class) over ``alpha`` in
    [0, 1]; meant for *out-of-fold* branch predictions of the training clips that have both
    a face and audio, so the weight reflects how the branches do on faces and voices they
    never saw.

    Parameters
    ----------
    video_probabilities, audio_probabilities : array [shape=(n, C)]
        Rows sum to 1.
    labels : array of int [shape=(n,)]
    sample_weight : array [shape=(n,)], optional
        E.g. class weights, so that every class counts alike (as UAR does).

    Returns
    -------
    float
        ``alpha`` in [0, 1]; 1.0 (video alone) when ``n`` is 0.
    """
    if len(labels) == 0:
        return 1.0
    rows = np.arange(len(labels))
    p_video = np.asarray(video_probabilities, np.float64)[rows, labels]
    p_audio = np.asarray(audio_probabilities, np.float64)[rows, labels]
    weight = np.ones(len(labels)) if sample_weight is None else np.asarray(sample_weight, np.float64)

    def negative_log_likelihood(alpha):
        pooled = np.maximum(alpha * p_video + (1.0 - alpha) * p_audio, PROBABILITY_FLOOR)
        return -np.average(np.log(pooled), weights=weight)

    result = scipy.optimize.minimize_scalar(negative_log_likelihood, bounds=(0.0, 1.0), method="bounded",
                                            options={"xatol": 1e-4})
    return float(result.x)


@keras.saving.register_keras_serializable(package="emonet")
class HasInput(layers.Layer):
    """1.0 for rows with any non-zero entry, else 0.0: (B, ...) -> (B, 1).

    A frame mask of zeros means no face was found; an audio vector of zeros is how
    :func:`emonet.run.reduce_audio` writes a clip without (or with silent) audio.
    """

    def call(self, x):
        flat = ops.reshape(x, (ops.shape(x)[0], -1))
        return ops.cast(ops.any(ops.not_equal(flat, 0.0), axis=-1, keepdims=True), "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


@keras.saving.register_keras_serializable(package="emonet")
class BranchPool(layers.Layer):
    """Log of the linear opinion pool of the branches that have input: -> (B, C) log-probabilities.

    ``log(w_v * p_video + w_a * p_audio)`` with ``w_v = alpha * has_video / s``,
    ``w_a = (1 - alpha) * has_audio / s`` and ``s`` their sum before normalising: a clip
    without audio gets the video branch alone, a clip without a face the audio branch
    alone (with neither, both in the ratio ``alpha``). ``alpha`` is a fixed,
    non-trainable weight, set from out-of-fold predictions by :func:`fit_pool_weight`;
    1.0 (the default) is the video branch alone.

    Why a pool and not a product of experts: a product lets a confidently wrong branch
    veto the other (an audio probability at the 1e-4 floor costs 9.2 nats); measured on
    Val_AFEW, the product scored below the pool in both runs compared, and once below video
    alone (docs/DESIGN.md, section "Fusion").
    """

    def __init__(self, *, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_alpha = float(alpha)

    def build(self, input_shape):
        self.alpha = self.add_weight(name="alpha", shape=(), trainable=False,
                                     initializer=keras.initializers.Constant(self.initial_alpha))

    def call(self, inputs):
        video_logp, audio_logp, has_video, has_audio = inputs
        w_video, w_audio = self.alpha * has_video, (1.0 - self.alpha) * has_audio
        total = w_video + w_audio
        neither = ops.cast(ops.equal(total, 0.0), "float32")
        w_video = (1.0 - neither) * w_video / ops.maximum(total, 1e-12) + neither * self.alpha
        w_audio = (1.0 - neither) * w_audio / ops.maximum(total, 1e-12) + neither * (1.0 - self.alpha)
        pooled = w_video * ops.exp(video_logp) + w_audio * ops.exp(audio_logp)
        return ops.log(ops.maximum(pooled, PROBABILITY_FLOOR))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "alpha": self.initial_alpha}


def build_fusion_head(*, units=(256, 128, 64), dropout=0.5, alpha=1.0, n_classes=len(CLASSES),
                      name="fusion_head"):
    """The stacked fusion head: branch log-probabilities and presence flags -> class probabilities.

    ``softmax(log pool + correction)``: the pool is :class:`BranchPool` (weight
    ``alpha`` on the video branch); the correction is the design card's fusion MLP,
    concatenation (B, 14) -> (Dense + ReLU + Dropout) per entry of ``units`` -> Dense
    (B, n_classes). The last Dense starts at zero, so an untrained head returns the pool
    unchanged, and training moves away from it only as far as the out-of-fold
    predictions support (a residual over the pool). With the default ``alpha=1`` the
    untrained head is the video branch.

    Returns
    -------
    keras.Model
        Inputs ``video_logp``, ``audio_logp`` [shape=(B, 7)] and ``has_video``, ``has_audio``
        [shape=(B, 1)] -> ``emotion`` [shape=(B, n_classes)] probabilities.
    """
    inputs = {key: keras.Input((n_classes,), dtype="float32", name=key) for key in HEAD_INPUTS}
    inputs.update({key: keras.Input((1,), dtype="float32", name=key) for key in PRESENCE_INPUTS})
    pooled = BranchPool(alpha=alpha, name=f"{name}_pool")(
        [inputs["video_logp"], inputs["audio_logp"], inputs["has_video"], inputs["has_audio"]])
    x = layers.Concatenate(name=f"{name}_concat")([inputs[key] for key in HEAD_INPUTS])
    for i, n in enumerate(units, start=1):
        x = layers.Dense(n, activation="relu", name=f"{name}_dense{i}")(x)
        x = layers.Dropout(dropout, name=f"{name}_dropout{i}")(x)
    correction = layers.Dense(n_classes, kernel_initializer="zeros", bias_initializer="zeros",
                              name=f"{name}_correction")(x)
    logits = layers.Add(name=f"{name}_logits")([pooled, correction])
    outputs = layers.Softmax(name=OUTPUT_NAME)(logits)
    return keras.Model(inputs, outputs, name=name)


def set_pool_weight(head, alpha):
    """Set the video weight of a fusion head's :class:`BranchPool` (in place)."""
    pool = next(layer for layer in head.layers if isinstance(layer, BranchPool))
    pool.alpha.assign(float(alpha))


def pool_weight(head):
    """The video weight ``alpha`` of a fusion head's :class:`BranchPool`."""
    pool = next(layer for layer in head.layers if isinstance(layer, BranchPool))
    return float(keras.ops.convert_to_numpy(pool.alpha))


def build_stacked_fusion(video_branch, audio_branch, head, *, name="emonet"):
    """The inference model of a cross-fitted fusion run (branches and head trained separately).

    Returns
    -------
    keras.Model
        Inputs ``frame_embeddings`` (B, T, K * E), ``frame_mask`` (B, T), ``audio`` (B, d);
        output ``emotion`` (B, 7). Sub-models ``video_branch``, ``audio_branch``, ``fusion_head``.
    """
    video_branch.name, audio_branch.name = "video_branch", "audio_branch"
    embeddings = keras.Input(video_branch.inputs[0].shape[1:], dtype="float32", name="frame_embeddings")
    mask = keras.Input(video_branch.inputs[1].shape[1:], dtype="float32", name="frame_mask")
    audio = keras.Input(audio_branch.inputs[0].shape[1:], dtype="float32", name="audio")
    video_logp = LogProbability(name="video_logp")(video_branch({"frame_embeddings": embeddings, "frame_mask": mask}))
    audio_logp = LogProbability(name="audio_logp")(audio_branch(audio))
    outputs = head({"video_logp": video_logp, "audio_logp": audio_logp,
                    "has_video": HasInput(name="has_video")(mask), "has_audio": HasInput(name="has_audio")(audio)})
    return keras.Model({"frame_embeddings": embeddings, "frame_mask": mask, "audio": audio}, outputs, name=name)


def log_probabilities(probabilities):
    """NumPy twin of :class:`LogProbability`: (n, 7) -> (n, 7) float32."""
    return np.log(np.maximum(np.asarray(probabilities, np.float32), PROBABILITY_FLOOR))
