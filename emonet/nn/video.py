"""The two forms of a trained video model, and the conversion between them.

The end-to-end video model reads frames (``build_emonet(mode="video", video_input="frames")``);
inference reads per-frame embeddings cached by the frame encoder. :func:`split_video_model`
turns the first form into the second (frame encoder + embeddings-input clip model) and
:func:`join_video_model` turns it back; both forms give the same probabilities.
"""

import keras
from keras import layers

from preprocessing.errors import ConfigError, ModelError

from emonet.nn.models import build_emonet, model_inputs
from emonet.nn.names import HEAD_NAME, OUTPUT_NAME, VIDEO_ENCODER_NAME


def split_video_model(model):
    """A frames-input video model -> its frame encoder + the same model on embeddings.

    The end-to-end video model (``build_emonet(mode="video", video_input="frames")``)
    is ``TimeDistributed(frame_encoder)`` followed by the LSTMs, the head and the
    output layer. Inference (:class:`emonet.inference.trained_run.TrainedRun`) reads per-frame
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


def build_frame_average(frame_classifier, *, n_frames, name="frame_average"):
    """A clip model from a trained frame classifier: per-frame probabilities averaged over the clip.

    The run mode ``"frames"`` (the frame CNN alone): its ``model.keras`` reads the per-frame
    embeddings of :func:`emonet.features.embedding.embed_faces` like every clip model, applies
    the classifier's output layer to each frame and averages over the real frames, so a still
    image (one frame) gets exactly the frame classifier's probabilities.

    Parameters
    ----------
    frame_classifier : keras.Model
        From :func:`emonet.nn.resnet.build_frame_classifier` (its output layer is copied).
    n_frames : int
        T, frames per clip.

    Returns
    -------
    keras.Model
        Inputs ``frame_embeddings`` [shape=(B, T, E)] and ``frame_mask`` [shape=(B, T)] ->
        ``emotion`` [shape=(B, C)].
    """
    from emonet.nn.layers import MaskedFrameMean
    from emonet.nn.names import MASK_NAME, VIDEO_INPUT_NAME

    output = frame_classifier.get_layer(OUTPUT_NAME)
    embedding_dim = int(frame_classifier.get_layer(OUTPUT_NAME).input.shape[-1])
    embeddings = keras.Input((n_frames, embedding_dim), name=VIDEO_INPUT_NAME["embeddings"])
    mask = keras.Input((n_frames,), name=MASK_NAME)
    per_frame = layers.Dense(output.units, activation="softmax", name=f"{name}_frames")(embeddings)
    outputs = MaskedFrameMean(name=OUTPUT_NAME)([per_frame, mask])
    model = keras.Model({VIDEO_INPUT_NAME["embeddings"]: embeddings, MASK_NAME: mask}, outputs, name=name)
    model.get_layer(f"{name}_frames").set_weights(output.get_weights())
    return model
