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

Functions here are pure model assembly (the layers they use live in
:mod:`emonet.nn.layers`); the fold assignment and the fit of ``alpha`` are in
:mod:`emonet.training.folds`, the training stages in :mod:`emonet.training.crossfit`.
"""

import keras
import numpy as np
from keras import layers

from preprocessing.constants import CLASSES

from emonet.nn.layers import PROBABILITY_FLOOR, BranchPool, FeatureSlice, HasInput, LogProbability
from emonet.nn.names import OUTPUT_NAME

#: Log-probability inputs of the fusion head.
HEAD_INPUTS = ("video_logp", "audio_logp")

#: Presence inputs of the fusion head: 1.0 when the clip has a face (video) / audio, else 0.0.
PRESENCE_INPUTS = ("has_video", "has_audio")


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


def build_fusion_head(*, units=(256, 128, 64), dropout=0.5, alpha=1.0, n_classes=len(CLASSES),
                      name="fusion_head"):
    """The stacked fusion head: branch log-probabilities and presence flags -> class probabilities.

    ``softmax(log pool + correction)``: the pool is :class:`emonet.nn.layers.BranchPool` (weight
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
    """Set the video weight of a fusion head's :class:`emonet.nn.layers.BranchPool` (in place)."""
    pool = next(layer for layer in head.layers if isinstance(layer, BranchPool))
    pool.alpha.assign(float(alpha))


def pool_weight(head):
    """The video weight ``alpha`` of a fusion head's :class:`emonet.nn.layers.BranchPool`."""
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
    """NumPy twin of :class:`emonet.nn.layers.LogProbability`: (n, 7) -> (n, 7) float32."""
    return np.log(np.maximum(np.asarray(probabilities, np.float32), PROBABILITY_FLOOR))
