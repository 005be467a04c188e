"""EmoNet's networks: ResNet-20 frame encoder, video and audio branches, fusion head.

Everything is built with the Keras 3 functional API and returned as named
sub-models, so a trained model can be taken apart again
(``model.get_layer("video_encoder")``) and the two-stage schedule can reuse
the frame encoder:

1. :func:`build_resnet20` -> :func:`build_frame_classifier`: train the frame CNN
   on single face crops.
2. Cache per-frame embeddings (``frame_encoder.predict``) in the feature store.
3. :func:`build_emonet` with ``video_input="embeddings"``: train the LSTMs and
   the fusion head on the cached sequences, or with ``video_input="frames"``
   and the trained ``frame_encoder`` to fine-tune end to end.

:func:`split_video_model` and :func:`join_video_model` convert a video model
between the frames-input form (trained end to end) and the frame encoder +
embeddings-input form (what inference reads); both forms give the same
probabilities.

Pipeline order of the full model (``mode="fusion"``, ``video_input="frames"``)::

    frames     (B, T, H, W, 3) float32 in [0, 255] ─┐
    frame_mask (B, T) 1 = real frame, 0 = padding ──┴► video_encoder ─► (B, 128) ─┐
    audio      (B, 512) reduced audio functionals ────► audio_encoder ─► (B, 128) ─┴► concat
        ─► head: (Dense + ReLU + Dropout 0.5) x 3 ─► emotion: Dense softmax (B, 7)

Input names are the keys of the ``tf.data`` dictionaries (:func:`model_inputs`);
the output layer is named ``"emotion"``. Models load back only through
:func:`load_model` (Keras safe mode, ``.keras`` files only).
"""


import keras
from keras import layers, ops

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError, ModelError

#: Model modes: the full model and the two single-branch ablations.
MODES = ("fusion", "video", "audio")

#: What the video branch reads: decoded face-crop frames, or per-frame
#: embeddings cached by a trained frame encoder.
VIDEO_INPUTS = ("frames", "embeddings")

#: Name of the classification output (key of the label in ``tf.data``).
OUTPUT_NAME = "emotion"

#: Names of the sub-models inside :func:`build_emonet`'s model.
VIDEO_ENCODER_NAME = "video_encoder"
AUDIO_ENCODER_NAME = "audio_encoder"
HEAD_NAME = "head"

_VIDEO_INPUT_NAME = {"frames": "frames", "embeddings": "frame_embeddings"}
_MASK_NAME = "frame_mask"
_AUDIO_NAME = "audio"


def modes_needing(mode):
    """(needs_video, needs_audio) for a model mode."""
    return mode in ("fusion", "video"), mode in ("fusion", "audio")


# --------------------------------------------------------------------------- checks
def _check_int(func, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{func}: {name} must be an integer >= {minimum}; received: {value!r}")
    return value


def _check_rate(func, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{func}: {name} must be a number in [0, 1); received: {value!r}")
    return float(value)


def _check_units(func, name, value):
    if (
        isinstance(value, (str, bytes))
        or not hasattr(value, "__len__")
        or len(value) == 0
        or any(isinstance(u, bool) or not isinstance(u, int) or u < 1 for u in value)
    ):
        raise ConfigError(
            f"{func}: {name} must be a non-empty sequence of positive integers; received: {value!r}"
        )
    return tuple(value)


def _check_choice(func, name, value, choices):
    if value not in choices:
        raise ConfigError(f"{func}: {name} must be one of {', '.join(choices)}; received: {value!r}")
    return value


def model_inputs(mode, video_input="frames"):
    """Names of the inputs :func:`build_emonet` creates for a mode, in model order.

    Parameters
    ----------
    mode : {"fusion", "video", "audio"}
    video_input : {"frames", "embeddings"}
        Ignored (but still checked) for ``mode="audio"``.

    Returns
    -------
    tuple of str
        Keys the ``tf.data`` input dictionary must hold.

    Examples
    --------
    >>> model_inputs("fusion", "embeddings")
    ('frame_embeddings', 'frame_mask', 'audio')
    >>> model_inputs("audio", "frames")
    ('audio',)
    """
    _check_choice("model_inputs", "mode", mode, MODES)
    _check_choice("model_inputs", "video_input", video_input, VIDEO_INPUTS)
    names = ()
    if mode in ("fusion", "video"):
        names += (_VIDEO_INPUT_NAME[video_input], _MASK_NAME)
    if mode in ("fusion", "audio"):
        names += (_AUDIO_NAME,)
    return names


# --------------------------------------------------------------------------- custom layer
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


# --------------------------------------------------------------------------- ResNet
def _basic_block(x, filters, *, stride, name):
    """Post-activation basic block (He et al. 2016, CIFAR variant).

    conv3x3(stride) - BN - ReLU - conv3x3 - BN, plus the shortcut (identity, or a
    1x1 conv with ``stride`` + BN when the shape changes), then ReLU.
    """
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(
            filters, 1, strides=stride, use_bias=False, kernel_initializer="he_normal",
            name=f"{name}_proj_conv",
        )(x)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=f"{name}_conv1",
    )(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = layers.Conv2D(
        filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
        name=f"{name}_conv2",
    )(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def build_resnet(*, stack_sizes, filters, image_size=64, embedding_dim=None, name="resnet"):
    """Generic CIFAR-style ResNet of basic blocks, from pixels to an embedding.

    Stem conv3x3 + BN + ReLU with ``filters[0]`` channels; then one stage per
    entry of ``stack_sizes``; stage ``i`` has ``stack_sizes[i]`` basic blocks of
    ``filters[i]`` channels and (for ``i > 0``) stride 2 in its first block with a
    1x1 projection shortcut; global average pooling last. Conv2D layers:
    ``1 + 2 * sum(stack_sizes)`` 3x3 convs plus one 1x1 per stage whose shape
    changes.

    Parameters
    ----------
    stack_sizes : sequence of int
        Basic blocks per stage, e.g. ``(3, 3, 3)`` for ResNet-20.
    filters : sequence of int
        Channels per stage, same length as ``stack_sizes``.
    image_size : int, default 64
        Height and width of the square input, in pixels (>= 8).
    embedding_dim : int or None, default None
        Size of the output. ``None`` or ``filters[-1]``: the pooled features as
        they are; any other value adds a linear ``Dense`` projection
        (``{name}_projection``).
    name : str
        Model name; every layer name starts with it.

    Returns
    -------
    keras.Model
        Input ``"frame"`` [shape=(B, image_size, image_size, 3)], float32 RGB in
        [0, 255] (rescaled to [0, 1] inside); output [shape=(B, embedding_dim)].
    """
    func = "build_resnet"
    stack_sizes = _check_units(func, "stack_sizes", stack_sizes)
    filters = _check_units(func, "filters", filters)
    if len(filters) != len(stack_sizes):
        raise ConfigError(
            f"{func}: filters must have one entry per stage ({len(stack_sizes)}); "
            f"received: {filters!r}"
        )
    _check_int(func, "image_size", image_size, 8)
    if embedding_dim is not None:
        _check_int(func, "embedding_dim", embedding_dim, 1)

    inputs = keras.Input((image_size, image_size, 3), dtype="float32", name="frame")
    x = layers.Rescaling(1.0 / 255.0, name=f"{name}_rescale")(inputs)
    x = layers.Conv2D(
        filters[0], 3, padding="same", use_bias=False, kernel_initializer="he_normal",
        name=f"{name}_stem_conv",
    )(x)
    x = layers.BatchNormalization(name=f"{name}_stem_bn")(x)
    x = layers.Activation("relu", name=f"{name}_stem_relu")(x)
    for stage, (blocks, width) in enumerate(zip(stack_sizes, filters), start=1):
        for block in range(1, blocks + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = _basic_block(x, width, stride=stride, name=f"{name}_stage{stage}_block{block}")
    x = layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    if embedding_dim is not None and embedding_dim != filters[-1]:
        x = layers.Dense(embedding_dim, name=f"{name}_projection")(x)
    return keras.Model(inputs, x, name=name)


def build_resnet20(*, image_size=64, width=16, embedding_dim=64, name="frame_encoder"):
    """ResNet-20 for face crops: 3 stages x 3 basic blocks, ``width``/2x/4x filters.

    A thin variant of :func:`build_resnet` with ``stack_sizes=(3, 3, 3)`` and
    ``filters=(width, 2 * width, 4 * width)``: 19 conv3x3 + 2 projection 1x1
    Conv2D layers; 273,392 parameters at ``width=16`` (271,824 trainable, 1,568
    BN moving statistics).

    Parameters
    ----------
    image_size : int, default 64
        Side of the square face crop in pixels (>= 8).
    width : int, default 16
        Filters of the first stage.
    embedding_dim : int, default 64
        Output size; equal to ``4 * width`` means no projection layer.
    name : str, default "frame_encoder"

    Returns
    -------
    keras.Model
        ``(B, image_size, image_size, 3)`` float32 in [0, 255] ->
        ``(B, embedding_dim)``.

    Examples
    --------
    >>> encoder = build_resnet20(image_size=64)
    >>> encoder.output_shape
    (None, 64)
    """
    _check_int("build_resnet20", "width", width, 1)
    _check_int("build_resnet20", "image_size", image_size, 8)
    _check_int("build_resnet20", "embedding_dim", embedding_dim, 1)
    return build_resnet(
        stack_sizes=(3, 3, 3), filters=(width, 2 * width, 4 * width),
        image_size=image_size, embedding_dim=embedding_dim, name=name,
    )


def build_frame_classifier(frame_encoder, *, n_classes=len(CLASSES), dropout=0.3,
                           name="frame_classifier"):
    """Stage one of the two-stage schedule: the frame encoder with a softmax on top.

    The returned model *shares* ``frame_encoder`` (same weights), so after
    training it the same ``frame_encoder`` object can be cached from and passed
    to :func:`build_video_encoder` / :func:`build_emonet`.

    Parameters
    ----------
    frame_encoder : keras.Model
        E.g. from :func:`build_resnet20`; input (H, W, 3), output (E,).
    n_classes : int, default 7
    dropout : float, default 0.3
        Dropout rate on the embedding, in [0, 1).
    name : str, default "frame_classifier"

    Returns
    -------
    keras.Model
        Input ``"frame"`` [shape=(B, H, W, 3)] -> ``"emotion"`` [shape=(B, n_classes)],
        probabilities.
    """
    func = "build_frame_classifier"
    if not isinstance(frame_encoder, keras.Model):
        raise ConfigError(
            f"{func}: frame_encoder must be a keras.Model; received: {type(frame_encoder).__name__}"
        )
    _check_int(func, "n_classes", n_classes, 2)
    dropout = _check_rate(func, "dropout", dropout)
    inputs = keras.Input(frame_encoder.input_shape[1:], dtype="float32", name="frame")
    x = frame_encoder(inputs)
    x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name=name)


# --------------------------------------------------------------------------- branches
def build_video_encoder(*, input_kind="frames", frame_encoder=None, n_frames=16, image_size=64,
                        embedding_dim=64, lstm_units=128, n_lstm=3, dropout=0.2,
                        name=VIDEO_ENCODER_NAME):
    """Video branch: per-frame embeddings -> stacked masked LSTMs -> video embedding.

    Clips shorter than ``n_frames`` are padded at the end and marked 0 in
    ``frame_mask``; every LSTM receives that mask explicitly, so padded steps
    neither update the state nor reach the output (in inference; in training,
    BatchNormalization inside the frame encoder still sees padded frames in its
    batch statistics).

    Parameters
    ----------
    input_kind : {"frames", "embeddings"}, default "frames"
        ``"frames"``: input ``"frames"`` [shape=(B, n_frames, image_size,
        image_size, 3)], float32 in [0, 255], run through
        ``TimeDistributed(frame_encoder)``. ``"embeddings"``: input
        ``"frame_embeddings"`` [shape=(B, n_frames, embedding_dim)] cached from a
        frame encoder.
    frame_encoder : keras.Model or None
        Used with ``"frames"`` only; ``None`` builds a fresh
        :func:`build_resnet20`. Its input must be (image_size, image_size, 3) and
        its output (embedding_dim,).
    n_frames : int, default 16
        Frames per clip T (>= 1).
    image_size : int, default 64
    embedding_dim : int, default 64
        Per-frame embedding size E.
    lstm_units : int, default 128
        Units of every LSTM = size of the video embedding.
    n_lstm : int, default 3
        Stacked LSTMs; all but the last return sequences.
    dropout : float, default 0.2
        Dropout rate before each LSTM, in [0, 1).
    name : str, default "video_encoder"

    Returns
    -------
    keras.Model
        Inputs ``[frames or frame_embeddings, frame_mask [shape=(B, n_frames)]]``,
        output [shape=(B, lstm_units)].
    """
    func = "build_video_encoder"
    _check_choice(func, "input_kind", input_kind, VIDEO_INPUTS)
    _check_int(func, "n_frames", n_frames, 1)
    _check_int(func, "image_size", image_size, 8)
    _check_int(func, "embedding_dim", embedding_dim, 1)
    _check_int(func, "lstm_units", lstm_units, 1)
    _check_int(func, "n_lstm", n_lstm, 1)
    dropout = _check_rate(func, "dropout", dropout)

    mask_input = keras.Input((n_frames,), dtype="float32", name=_MASK_NAME)
    if input_kind == "frames":
        if frame_encoder is None:
            frame_encoder = build_resnet20(image_size=image_size, embedding_dim=embedding_dim)
        elif not isinstance(frame_encoder, keras.Model):
            raise ConfigError(
                f"{func}: frame_encoder must be a keras.Model or None; "
                f"received: {type(frame_encoder).__name__}"
            )
        expected_in, expected_out = (image_size, image_size, 3), (embedding_dim,)
        if tuple(frame_encoder.input_shape[1:]) != expected_in:
            raise ConfigError(
                f"{func}: frame_encoder input must be {expected_in} (image_size={image_size}); "
                f"received: {tuple(frame_encoder.input_shape[1:])}"
            )
        if tuple(frame_encoder.output_shape[1:]) != expected_out:
            raise ConfigError(
                f"{func}: frame_encoder output must be {expected_out} "
                f"(embedding_dim={embedding_dim}); received: {tuple(frame_encoder.output_shape[1:])}"
            )
        video_input = keras.Input(
            (n_frames, image_size, image_size, 3), dtype="float32", name=_VIDEO_INPUT_NAME["frames"]
        )
        x = layers.TimeDistributed(frame_encoder, name=f"{name}_frames")(video_input)
    else:
        if frame_encoder is not None:
            raise ConfigError(
                f"{func}: frame_encoder is only used with input_kind='frames'; "
                f"received: input_kind={input_kind!r} and a frame_encoder"
            )
        video_input = keras.Input(
            (n_frames, embedding_dim), dtype="float32", name=_VIDEO_INPUT_NAME["embeddings"]
        )
        x = video_input

    mask = FrameMask(name=f"{name}_mask")(mask_input)
    for i in range(1, n_lstm + 1):
        x = layers.Dropout(dropout, name=f"{name}_dropout{i}")(x)
        x = layers.LSTM(lstm_units, return_sequences=i < n_lstm, name=f"{name}_lstm{i}")(x, mask=mask)
    return keras.Model([video_input, mask_input], x, name=name)


def build_audio_encoder(*, input_dim=512, units=(256, 128, 128), dropout=0.3,
                        name=AUDIO_ENCODER_NAME):
    """Audio branch: reduced audio functionals -> (Dense + ReLU + Dropout) per entry of ``units``.

    Parameters
    ----------
    input_dim : int, default 512
        Size of the reduced audio vector (output of the audio reducer).
    units : sequence of int, default (256, 128, 128)
        Units of each Dense layer; the last is the audio embedding size.
    dropout : float, default 0.3
        Dropout rate after each Dense, in [0, 1).
    name : str, default "audio_encoder"

    Returns
    -------
    keras.Model
        Input ``"audio"`` [shape=(B, input_dim)] -> [shape=(B, units[-1])].
    """
    func = "build_audio_encoder"
    _check_int(func, "input_dim", input_dim, 1)
    units = _check_units(func, "units", units)
    dropout = _check_rate(func, "dropout", dropout)
    inputs = keras.Input((input_dim,), dtype="float32", name=_AUDIO_NAME)
    x = inputs
    for i, n in enumerate(units, start=1):
        x = layers.Dense(n, activation="relu", name=f"{name}_dense{i}")(x)
        x = layers.Dropout(dropout, name=f"{name}_dropout{i}")(x)
    return keras.Model(inputs, x, name=name)


def _build_head(input_dim, *, units, dropout, name):
    """(Dense + ReLU + Dropout) per entry of ``units``: (B, input_dim) -> (B, units[-1])."""
    inputs = keras.Input((input_dim,), dtype="float32", name=f"{name}_input")
    x = inputs
    for i, n in enumerate(units, start=1):
        x = layers.Dense(n, activation="relu", name=f"{name}_dense{i}")(x)
        x = layers.Dropout(dropout, name=f"{name}_dropout{i}")(x)
    return keras.Model(inputs, x, name=name)


# --------------------------------------------------------------------------- full model
def build_emonet(*, mode="fusion", video_input="frames", n_frames=16, image_size=64,
                 embedding_dim=64, audio_dim=512, frame_encoder=None, lstm_units=128,
                 audio_units=(256, 128, 128), head_units=(256, 128, 64), head_dropout=0.5,
                 n_classes=len(CLASSES), name="emonet"):
    """The EmoNet classifier in one of its three modes.

    The three modes share the head architecture; they differ only in which
    branches (and hence inputs) exist, so the audio-only / video-only / fusion
    ablation compares like with like.

    Parameters
    ----------
    mode : {"fusion", "video", "audio"}, default "fusion"
    video_input : {"frames", "embeddings"}, default "frames"
        What the video branch reads (see :func:`build_video_encoder`); checked
        but unused when ``mode="audio"``.
    n_frames : int, default 16
        Frames per clip T.
    image_size : int, default 64
        Face-crop side in pixels (``video_input="frames"``).
    embedding_dim : int, default 64
        Per-frame embedding size E.
    audio_dim : int, default 512
        Size of the reduced audio vector.
    frame_encoder : keras.Model or None
        A (trained) frame encoder for ``video_input="frames"``; ``None`` builds
        a fresh ResNet-20.
    lstm_units : int, default 128
        Video embedding size.
    audio_units : sequence of int, default (256, 128, 128)
        Audio branch layer sizes.
    head_units : sequence of int, default (256, 128, 64)
        One Dense + ReLU + Dropout block per entry.
    head_dropout : float, default 0.5
    n_classes : int, default 7
    name : str, default "emonet"

    Returns
    -------
    keras.Model
        Inputs, in :func:`model_inputs` order and named for ``tf.data``
        dictionaries: ``"frames"`` [shape=(B, T, H, W, 3)] float32 in [0, 255] or
        ``"frame_embeddings"`` [shape=(B, T, E)], ``"frame_mask"``
        [shape=(B, T)] 1/0, ``"audio"`` [shape=(B, audio_dim)] -- only those the
        mode needs. Output ``"emotion"`` [shape=(B, n_classes)], probabilities
        in :data:`preprocessing.constants.CLASSES` order. Sub-models
        ``"video_encoder"``, ``"audio_encoder"`` (as the mode needs) and
        ``"head"``.

    Examples
    --------
    >>> model = build_emonet(mode="video", video_input="embeddings", n_frames=16)
    >>> [t.name for t in model.inputs]
    ['frame_embeddings', 'frame_mask']
    """
    func = "build_emonet"
    _check_choice(func, "mode", mode, MODES)
    _check_choice(func, "video_input", video_input, VIDEO_INPUTS)
    _check_int(func, "n_frames", n_frames, 1)
    _check_int(func, "image_size", image_size, 8)
    _check_int(func, "embedding_dim", embedding_dim, 1)
    _check_int(func, "audio_dim", audio_dim, 1)
    _check_int(func, "n_classes", n_classes, 2)
    head_units = _check_units(func, "head_units", head_units)
    head_dropout = _check_rate(func, "head_dropout", head_dropout)
    if frame_encoder is not None and (mode == "audio" or video_input != "frames"):
        raise ConfigError(
            f"{func}: frame_encoder is only used with video_input='frames' and a video branch; "
            f"received: mode={mode!r}, video_input={video_input!r}"
        )

    inputs, embeddings = [], []
    if mode in ("fusion", "video"):
        video_encoder = build_video_encoder(
            input_kind=video_input, frame_encoder=frame_encoder, n_frames=n_frames,
            image_size=image_size, embedding_dim=embedding_dim, lstm_units=lstm_units,
        )
        video = keras.Input(video_encoder.inputs[0].shape[1:], dtype="float32",
                            name=_VIDEO_INPUT_NAME[video_input])
        mask = keras.Input((n_frames,), dtype="float32", name=_MASK_NAME)
        inputs += [video, mask]
        embeddings.append(video_encoder([video, mask]))
    if mode in ("fusion", "audio"):
        audio_encoder = build_audio_encoder(input_dim=audio_dim, units=audio_units)
        audio = keras.Input((audio_dim,), dtype="float32", name=_AUDIO_NAME)
        inputs.append(audio)
        embeddings.append(audio_encoder(audio))

    if len(embeddings) > 1:
        x = layers.Concatenate(name=f"{name}_concat")(embeddings)
    else:
        x = embeddings[0]
    head = _build_head(x.shape[-1], units=head_units, dropout=head_dropout, name=HEAD_NAME)
    x = head(x)
    outputs = layers.Dense(n_classes, activation="softmax", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name=name)


# --------------------------------------------------------------------------- the two forms of the video model
def split_video_model(model):
    """A frames-input video model -> its frame encoder + the same model on embeddings.

    The end-to-end video model (``build_emonet(mode="video", video_input="frames")``)
    is ``TimeDistributed(frame_encoder)`` followed by the LSTMs, the head and the
    output layer. Inference (``emonet.run.TrainedRun``) reads per-frame
    embeddings instead, so this returns the frame encoder on its own and an
    ``video_input="embeddings"`` model with the LSTM, head and output weights
    copied: ``clip_model([frame_encoder(frames) per frame, frame_mask])`` equals
    ``model([frames, frame_mask])`` (padded steps are masked in both).

    Parameters
    ----------
    model : keras.Model
        A video-mode model with ``video_input="frames"``.

    Returns
    -------
    frame_encoder : keras.Model
        A copy (own weights): (B, S, S, 3) float32 in [0, 255] -> (B, E).
    clip_model : keras.Model
        Inputs ``"frame_embeddings"`` (B, T, E) and ``"frame_mask"`` (B, T) -> ``"emotion"`` (B, n_classes).
    """
    settings = _video_model_settings(model, "frames", "split_video_model")
    wrapped = model.get_layer(VIDEO_ENCODER_NAME).get_layer(f"{VIDEO_ENCODER_NAME}_frames").layer
    frame_encoder = keras.models.clone_model(wrapped)
    frame_encoder.set_weights(wrapped.get_weights())
    settings.pop("image_size")
    clip_model = build_emonet(mode="video", video_input="embeddings", **settings)
    _copy_clip_weights(model, clip_model)
    return frame_encoder, clip_model


def join_video_model(frame_encoder, clip_model):
    """A frame encoder + an embeddings-input video model -> the frames-input video model (the inverse
    of :func:`split_video_model`, e.g. to fine-tune a two-stage model end to end).

    Parameters
    ----------
    frame_encoder : keras.Model
        (B, S, S, 3) -> (B, E); used (shared, not copied) inside the returned model.
    clip_model : keras.Model
        A video-mode model with ``video_input="embeddings"`` and embedding size E.

    Returns
    -------
    keras.Model
        Inputs ``"frames"`` (B, T, S, S, 3) float32 in [0, 255] and ``"frame_mask"`` (B, T) ->
        ``"emotion"`` (B, n_classes), with the LSTM, head and output weights of ``clip_model``.
    """
    settings = _video_model_settings(clip_model, "embeddings", "join_video_model")
    settings["image_size"] = int(frame_encoder.input_shape[1])
    model = build_emonet(mode="video", video_input="frames", frame_encoder=frame_encoder, **settings)
    _copy_clip_weights(clip_model, model)
    return model


def _video_model_settings(model, video_input, func):
    """The :func:`build_emonet` arguments that rebuild video-mode ``model`` (read from its layers)."""
    names = tuple(t.name for t in model.inputs)
    if names != model_inputs("video", video_input):
        raise ConfigError(f"{func}: expected a video model with inputs {model_inputs('video', video_input)}; "
                          f"received inputs {names}")
    video_shape = tuple(model.inputs[0].shape[1:])
    head = model.get_layer(HEAD_NAME)
    dropouts = [layer.rate for layer in head.layers if isinstance(layer, layers.Dropout)]
    settings = {
        "n_frames": int(video_shape[0]),
        "embedding_dim": int(video_shape[-1]) if video_input == "embeddings" else
        int(model.get_layer(VIDEO_ENCODER_NAME).get_layer(f"{VIDEO_ENCODER_NAME}_frames").layer.output_shape[-1]),
        "lstm_units": int(model.get_layer(VIDEO_ENCODER_NAME).output.shape[-1]),
        "head_units": tuple(layer.units for layer in head.layers if isinstance(layer, layers.Dense)),
        "head_dropout": float(dropouts[0]) if dropouts else 0.0,
        "n_classes": int(model.get_layer(OUTPUT_NAME).units),
        "name": model.name,
    }
    if video_input == "frames":
        settings["image_size"] = int(video_shape[1])
    return settings


def _copy_clip_weights(source, target):
    """Copy the LSTM layers of the video encoder, the head and the output layer by name."""
    src_video, dst_video = source.get_layer(VIDEO_ENCODER_NAME), target.get_layer(VIDEO_ENCODER_NAME)
    lstms = [layer.name for layer in dst_video.layers if isinstance(layer, layers.LSTM)]
    if lstms != [layer.name for layer in src_video.layers if isinstance(layer, layers.LSTM)]:
        raise ModelError(f"video models differ in their LSTM layers: {lstms}")
    for name in lstms:
        dst_video.get_layer(name).set_weights(src_video.get_layer(name).get_weights())
    for name in (HEAD_NAME, OUTPUT_NAME):
        target.get_layer(name).set_weights(source.get_layer(name).get_weights())
