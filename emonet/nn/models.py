"""EmoNet's classifier: video and audio branches, head, and the full model in its three modes.

Everything is built with the Keras 3 functional API and returned as named
sub-models, so a trained model can be taken apart again
(``model.get_layer("video_encoder")``) and the two-stage schedule can reuse
the frame encoder:

1. :func:`emonet.nn.resnet.build_resnet20` -> :func:`emonet.nn.resnet.build_frame_classifier`:
   train the frame CNN on single face crops.
2. Cache per-frame embeddings (``frame_encoder.predict``) in the feature store.
3. :func:`build_emonet` with ``video_input="embeddings"``: train the LSTMs and
   the fusion head on the cached sequences, or with ``video_input="frames"``
   and the trained ``frame_encoder`` to fine-tune end to end.

:func:`emonet.nn.video.split_video_model` and :func:`emonet.nn.video.join_video_model`
convert a video model between the frames-input form (trained end to end) and the frame
encoder + embeddings-input form (what inference reads); both forms give the same
probabilities.

Pipeline order of the full model (``mode="fusion"``, ``video_input="frames"``)::

    frames     (B, T, H, W, 3) float32 in [0, 255] ─┐
    frame_mask (B, T) 1 = real frame, 0 = padding ──┴► video_encoder ─► (B, 128) ─┐
    audio      (B, 512) reduced audio functionals ────► audio_encoder ─► (B, 128) ─┴► concat
        ─► head: (Dense + ReLU + Dropout 0.5) x 3 ─► emotion: Dense softmax (B, 7)

Input names are the keys of the ``tf.data`` dictionaries (:func:`model_inputs`,
:mod:`emonet.nn.names`); the output layer is named ``"emotion"``. Models load back only
through :func:`emonet.nn.io.load_model` (Keras safe mode, ``.keras`` files only).
"""

import keras
from keras import layers

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError

from emonet.nn.checks import check_choice, check_int, check_rate, check_units
from emonet.nn.layers import FrameMask
from emonet.nn.names import (AUDIO_ENCODER_NAME, AUDIO_NAME, HEAD_NAME, MASK_NAME, MODES, OUTPUT_NAME,
                             VIDEO_ENCODER_NAME, VIDEO_INPUT_NAME, VIDEO_INPUTS)
from emonet.nn.resnet import build_resnet20


def modes_needing(mode):
    """(needs_video, needs_audio) for a model mode."""
    return mode in ("fusion", "video", "frames"), mode in ("fusion", "audio")


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
    check_choice("model_inputs", "mode", mode, MODES)
    check_choice("model_inputs", "video_input", video_input, VIDEO_INPUTS)
    names = ()
    if mode in ("fusion", "video"):
        names += (VIDEO_INPUT_NAME[video_input], MASK_NAME)
    if mode in ("fusion", "audio"):
        names += (AUDIO_NAME,)
    return names


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
        :func:`emonet.nn.resnet.build_resnet20`. Its input must be (image_size, image_size, 3) and
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
    check_choice(func, "input_kind", input_kind, VIDEO_INPUTS)
    check_int(func, "n_frames", n_frames, 1)
    check_int(func, "image_size", image_size, 8)
    check_int(func, "embedding_dim", embedding_dim, 1)
    check_int(func, "lstm_units", lstm_units, 1)
    check_int(func, "n_lstm", n_lstm, 1)
    dropout = check_rate(func, "dropout", dropout)

    mask_input = keras.Input((n_frames,), dtype="float32", name=MASK_NAME)
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
            (n_frames, image_size, image_size, 3), dtype="float32", name=VIDEO_INPUT_NAME["frames"]
        )
        x = layers.TimeDistributed(frame_encoder, name=f"{name}_frames")(video_input)
    else:
        if frame_encoder is not None:
            raise ConfigError(
                f"{func}: frame_encoder is only used with input_kind='frames'; "
                f"received: input_kind={input_kind!r} and a frame_encoder"
            )
        video_input = keras.Input(
            (n_frames, embedding_dim), dtype="float32", name=VIDEO_INPUT_NAME["embeddings"]
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
    check_int(func, "input_dim", input_dim, 1)
    units = check_units(func, "units", units)
    dropout = check_rate(func, "dropout", dropout)
    inputs = keras.Input((input_dim,), dtype="float32", name=AUDIO_NAME)
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
        One Dense + ReLU + Dropout block per entry; empty: the softmax reads the branch embeddings.
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
    check_choice(func, "mode", mode, MODES)
    check_choice(func, "video_input", video_input, VIDEO_INPUTS)
    check_int(func, "n_frames", n_frames, 1)
    check_int(func, "image_size", image_size, 8)
    check_int(func, "embedding_dim", embedding_dim, 1)
    check_int(func, "audio_dim", audio_dim, 1)
    check_int(func, "n_classes", n_classes, 2)
    head_units = check_units(func, "head_units", head_units, allow_empty=True)
    head_dropout = check_rate(func, "head_dropout", head_dropout)
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
                            name=VIDEO_INPUT_NAME[video_input])
        mask = keras.Input((n_frames,), dtype="float32", name=MASK_NAME)
        inputs += [video, mask]
        embeddings.append(video_encoder([video, mask]))
    if mode in ("fusion", "audio"):
        audio_encoder = build_audio_encoder(input_dim=audio_dim, units=audio_units)
        audio = keras.Input((audio_dim,), dtype="float32", name=AUDIO_NAME)
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
