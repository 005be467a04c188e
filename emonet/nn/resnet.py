"""The frame CNN: a CIFAR-style ResNet from face-crop pixels to a per-frame embedding.

Stage one of the two-stage schedule trains :func:`build_resnet20` inside
:func:`build_frame_classifier` on single face crops; the trained frame encoder then
caches per-frame embeddings and feeds the video branch
(:func:`emonet.nn.models.build_video_encoder`).
"""

import keras
from keras import layers

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError

from emonet.nn.checks import check_int, check_rate, check_units
from emonet.nn.names import OUTPUT_NAME


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
    stack_sizes = check_units(func, "stack_sizes", stack_sizes)
    filters = check_units(func, "filters", filters)
    if len(filters) != len(stack_sizes):
        raise ConfigError(
            f"{func}: filters must have one entry per stage ({len(stack_sizes)}); "
            f"received: {filters!r}"
        )
    check_int(func, "image_size", image_size, 8)
    if embedding_dim is not None:
        check_int(func, "embedding_dim", embedding_dim, 1)

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
    check_int("build_resnet20", "width", width, 1)
    check_int("build_resnet20", "image_size", image_size, 8)
    check_int("build_resnet20", "embedding_dim", embedding_dim, 1)
    return build_resnet(
        stack_sizes=(3, 3, 3), filters=(width, 2 * width, 4 * width),
        image_size=image_size, embedding_dim=embedding_dim, name=name,
    )


def build_frame_classifier(frame_encoder, *, n_classes=len(CLASSES), dropout=0.3,
                           name="frame_classifier"):
    """Stage one of the two-stage schedule: the frame encoder with a softmax on top.

    The returned model *shares* ``frame_encoder`` (same weights), so after
    training it the same ``frame_encoder`` object can be cached from and passed
    to :func:`emonet.nn.models.build_video_encoder` / :func:`emonet.nn.models.build_emonet`.

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
    check_int(func, "n_classes", n_classes, 2)
    dropout = check_rate(func, "dropout", dropout)
    inputs = keras.Input(frame_encoder.input_shape[1:], dtype="float32", name="frame")
    x = frame_encoder(inputs)
    x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name=name)
