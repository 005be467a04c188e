"""The names EmoNet's models give their modes, inputs, output and sub-models.

Input names are the keys of the ``tf.data`` dictionaries and of the saved models'
inputs; sub-model names are how a trained model is taken apart again
(``model.get_layer("video_encoder")``). Changing any of them breaks saved run folders.
"""

#: Clip-model modes (:func:`emonet.nn.models.build_emonet`): the full model and the two
#: single-branch ablations.
MODES = ("fusion", "video", "audio")

#: Run modes: a clip model, or the frame CNN alone (``"frames"``: per-frame probabilities
#: averaged over a clip's frames, :func:`emonet.nn.video.build_frame_average`).
RUN_MODES = MODES + ("frames",)

#: What the video branch reads: decoded face-crop frames, or per-frame
#: embeddings cached by a trained frame encoder.
VIDEO_INPUTS = ("frames", "embeddings")

#: Name of the classification output (key of the label in ``tf.data``).
OUTPUT_NAME = "emotion"

#: Names of the sub-models inside :func:`emonet.nn.models.build_emonet`'s model.
VIDEO_ENCODER_NAME = "video_encoder"
AUDIO_ENCODER_NAME = "audio_encoder"
HEAD_NAME = "head"

#: Name of the video input for each entry of :data:`VIDEO_INPUTS`:
#: frames [shape=(B, T, S, S, 3)] or frame embeddings [shape=(B, T, E)].
VIDEO_INPUT_NAME = {"frames": "frames", "embeddings": "frame_embeddings"}

#: Frame mask input [shape=(B, T)], 1 = real frame, 0 = padding.
MASK_NAME = "frame_mask"

#: Reduced audio input [shape=(B, d)].
AUDIO_NAME = "audio"
