"""EmoNet's custom Keras layers, registered for serialization as ``emonet>ClassName``.

Saved ``.keras`` files name these layers by that registered name, so the package
(``"emonet"``), the class names and the ``get_config`` keys must stay as they are for
older run folders to load (``tests/data/legacy/custom_layers.keras`` pins it).
Importing this module registers them; :func:`emonet.nn.io.load_model` does so.

- :class:`FrameMask`: numeric frame mask -> boolean mask for the LSTMs (video branch).
- :class:`LogProbability`, :class:`FeatureSlice`, :class:`HasInput`, :class:`BranchPool`:
  the pieces of the cross-fitted fusion model (:mod:`emonet.nn.fusion`).
- :class:`MaskedFrameMean`: per-frame probabilities -> clip probabilities (the ``frames`` mode).
- :class:`MaskedEmbeddingMean`, :class:`IsMoving`: the two video experts of the shipped
  model (:mod:`emonet.nn.experts`).
"""

import keras
from keras import layers, ops

#: Probability floor before the log: log-probabilities lie in [log(1e-4), 0] = [-9.2, 0].
PROBABILITY_FLOOR = 1e-4
#: Weight of the uniform prior :class:`MaskedFrameMean` adds (all of the output for a clip without frames).
EMPTY_CLIP_PRIOR = 1e-6


@keras.saving.register_keras_serializable(package="emonet")
class FrameMask(layers.Layer):
    """Turn a numeric frame mask into the boolean mask the LSTMs take.

    Parameters
    ----------
    threshold : float, default 0.5
        Entries strictly greater than ``threshold`` are real frames.

    Call arguments
    --------------
    mask : tensor [shape=(B, T)], float or bool
        1 (``True``) for a real frame, 0 (``False``) for padding.

    Returns
    -------
    tensor [shape=(B, T)], bool
    """

    def __init__(self, *, threshold=0.5, **kwargs):
        super().__init__(**kwargs)
        self.threshold = float(threshold)

    def call(self, mask):
        return ops.greater(ops.cast(mask, "float32"), self.threshold)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, mask):
        return keras.KerasTensor(mask.shape, dtype="bool")

    def get_config(self):
        config = super().get_config()
        config["threshold"] = self.threshold
        return config


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


@keras.saving.register_keras_serializable(package="emonet")
class HasInput(layers.Layer):
    """1.0 for rows with any non-zero entry, else 0.0: (B, ...) -> (B, 1).

    A frame mask of zeros means no face was found; an audio vector of zeros is how
    :func:`emonet.features.embedding.reduce_audio` writes a clip without (or with silent) audio.
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
    non-trainable weight, set from out-of-fold predictions by
    :func:`emonet.training.folds.fit_pool_weight`; 1.0 (the default) is the video branch alone.

    Why a pool and not a product of experts: a product lets a confidently wrong branch
    veto the other (an audio probability at the 1e-4 floor costs 9.2 nats); measured on
    Val_AFEW, the product scored below the pool in both runs compared, and once below video
    alone (docs/DESIGN.md, section "Fusion").

    Call arguments
    --------------
    inputs : list of 4 tensors
        ``video_logp``, ``audio_logp`` [shape=(B, C)] log-probabilities and
        ``has_video``, ``has_audio`` [shape=(B, 1)] presence flags (1.0 or 0.0).
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


@keras.saving.register_keras_serializable(package="emonet")
class MaskedFrameMean(layers.Layer):
    """Mean over the real frames of per-frame class probabilities (uniform when a clip has none).

    Call arguments
    --------------
    inputs : list of two tensors
        ``[probabilities [shape=(B, T, C)], mask [shape=(B, T)]]`` (mask 1 = real frame).

    Returns
    -------
    tensor [shape=(B, C)]
        Each row sums to 1.
    """

    def call(self, inputs):
        probabilities, mask = inputs
        mask = ops.expand_dims(ops.cast(mask, probabilities.dtype), -1)
        n_classes = ops.cast(ops.shape(probabilities)[-1], probabilities.dtype)
        total = ops.sum(probabilities * mask, axis=1) + EMPTY_CLIP_PRIOR / n_classes
        return total / ops.sum(total, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        shape = input_shape[0]
        return (shape[0], shape[2])


@keras.saving.register_keras_serializable(package="emonet")
class MaskedEmbeddingMean(layers.Layer):
    """Mean of the real frames' embeddings (zeros for a clip without frames).

    Call arguments
    --------------
    inputs : list of two tensors
        ``[embeddings [shape=(B, T, E)], mask [shape=(B, T)]]`` (mask 1 = real frame).

    Returns
    -------
    tensor [shape=(B, E)]
    """

    def call(self, inputs):
        embeddings, mask = inputs
        mask = ops.expand_dims(ops.cast(mask, embeddings.dtype), -1)
        return ops.sum(embeddings * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)

    def compute_output_shape(self, input_shape):
        shape = input_shape[0]
        return (shape[0], shape[2])


@keras.saving.register_keras_serializable(package="emonet")
class IsMoving(layers.Layer):
    """1.0 for a clip with at least two real frames (footage), 0.0 for a still image or no face.

    Call arguments
    --------------
    frame_mask : tensor [shape=(B, T)]
        1 = real frame. (Not named ``mask``: Keras reserves that argument for its own masking.)

    Returns
    -------
    tensor [shape=(B, 1)] float32
    """

    def call(self, frame_mask):
        frames = ops.sum(ops.cast(frame_mask, "float32"), axis=-1, keepdims=True)
        return ops.cast(ops.greater_equal(frames, 2.0), "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)
