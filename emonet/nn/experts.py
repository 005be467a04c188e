"""The video branch of the shipped model: two linear experts on the frame CNN's embeddings.

- **Face expert** (the frame CNN's own softmax, trained on 28k FER+ faces in the wild):
  applied to every frame, probabilities averaged over the clip's real frames. A still
  image gets exactly the frame CNN's answer.
- **Clip expert** (a softmax on the clip's *mean* frame embedding, fitted on clips of
  posed faces, e.g. the composite corpus): sees the expression over the whole clip.

Footage (two real frames or more) gets the linear pool ``alpha * p_face + (1 - alpha) * p_clip``;
a still image (one frame) gets the face expert alone, since the clip expert was fitted on
footage and the face expert on still faces -- optionally with a *photo prior*, a bias added to
its logits for stills only (``still_bias``: the class prior of photos in the wild, see
:func:`emonet.training.base_model.photo_prior_correction`). Both experts read the same cached per-frame
embeddings (:func:`emonet.features.embedding.embed_faces`), so the branch fits the run
format (inputs ``frame_embeddings``, ``frame_mask``) and :func:`emonet.nn.fusion.build_stacked_fusion`
joins it with an audio branch.
"""

import keras
from keras import layers

from preprocessing.constants import CLASSES

from emonet.nn.layers import BranchPool, IsMoving, HasInput, LogProbability, MaskedEmbeddingMean, MaskedFrameMean
from emonet.nn.names import MASK_NAME, OUTPUT_NAME, VIDEO_INPUT_NAME


def build_video_experts(face_head, clip_head, *, n_frames, alpha, still_bias=None, name="video_experts"):
    """The two-expert video branch: per-frame embeddings -> class probabilities.

    Parameters
    ----------
    face_head : (np.ndarray [shape=(E, C)], np.ndarray [shape=(C,)])
        Kernel and bias of the frame CNN's softmax layer.
    clip_head : (np.ndarray [shape=(E, C)], np.ndarray [shape=(C,)])
        Kernel and bias of the clip expert's softmax on the mean embedding.
    n_frames : int
        T, frames per clip.
    alpha : float
        Weight of the face expert on footage, in [0, 1].
    still_bias : np.ndarray [shape=(C,)], optional
        Added to the face expert's logits for still images (one frame) only; None = no change.

    Returns
    -------
    keras.Model
        Inputs ``frame_embeddings`` [shape=(B, T, E)], ``frame_mask`` [shape=(B, T)] ->
        ``emotion`` [shape=(B, C)] probabilities.
    """
    embedding_dim, n_classes = face_head[0].shape
    if clip_head[0].shape != face_head[0].shape:
        raise ValueError(f"build_video_experts: face head {face_head[0].shape} and clip head "
                         f"{clip_head[0].shape} differ")
    embeddings = keras.Input((n_frames, embedding_dim), name=VIDEO_INPUT_NAME["embeddings"])
    mask = keras.Input((n_frames,), name=MASK_NAME)
    per_frame = layers.Dense(n_classes, activation="softmax", name="face_expert")(embeddings)
    face = MaskedFrameMean(name="face_expert_mean")([per_frame, mask])
    mean_embedding = MaskedEmbeddingMean(name="mean_embedding")([embeddings, mask])
    clip = layers.Dense(n_classes, activation="softmax", name="clip_expert")(mean_embedding)
    pooled = BranchPool(alpha=alpha, name="experts_pool")([
        LogProbability(name="face_logp")(face), LogProbability(name="clip_logp")(clip),
        HasInput(name="has_face")(mask), IsMoving(name="is_moving")(mask)])
    if still_bias is not None:  # stills: the photo expert (face expert + still_bias) instead of the footage pool
        photo = layers.Dense(n_classes, activation="softmax", name="photo_expert")(embeddings)
        photo = MaskedFrameMean(name="photo_expert_mean")([photo, mask])
        moving = IsMoving(name="is_footage")(mask)
        still = layers.Subtract(name="is_still")([HasInput(name="has_photo")(mask), moving])
        pooled = BranchPool(alpha=0.5, name="still_or_footage")([  # 0.5: one of the two, never both
            pooled, LogProbability(name="photo_logp")(photo), moving, still])
    outputs = layers.Softmax(name=OUTPUT_NAME)(pooled)
    model = keras.Model({VIDEO_INPUT_NAME["embeddings"]: embeddings, MASK_NAME: mask}, outputs, name=name)
    model.get_layer("face_expert").set_weights(list(face_head))
    model.get_layer("clip_expert").set_weights(list(clip_head))
    if still_bias is not None:
        model.get_layer("photo_expert").set_weights([face_head[0], face_head[1] + still_bias])
    return model


def softmax_weights(classifier):
    """(kernel (E, C), bias (C,)) of the last softmax layer of ``classifier``, e.g. a frame classifier."""
    dense = [layer for layer in classifier.layers if isinstance(layer, layers.Dense)]
    if not dense or dense[-1].units != len(CLASSES):
        raise ValueError(f"softmax_weights: {classifier.name} has no {len(CLASSES)}-class Dense layer")
    return tuple(dense[-1].get_weights())


def face_expert_weights(model):
    """(kernel (E, C), bias (C,)) of the face expert inside ``model`` (a fused or video model built on
    :func:`build_video_experts`, e.g. emonet-base's), or None when it has none. The face expert is the frame
    CNN's own softmax, so these weights and the frame encoder together make the frame classifier."""
    for layer in model.layers:
        if layer.name == "face_expert":
            return tuple(layer.get_weights())
        if isinstance(layer, keras.Model):
            found = face_expert_weights(layer)
            if found is not None:
                return found
    return None
