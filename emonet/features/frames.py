"""Face frames for the frame CNN: preparation, augmentation and frame sampling.

Every path into the frame CNN -- training, the embedding cache, prediction --
goes through :func:`prepare_faces`, so the model always sees the same kind of
input: grey faces (luminance copied to three channels) with normalised contrast.
Grey input is deliberate: training corpora of posed faces are often greyscale
(JAFFE, CK+), the clips users classify are colour; removing colour removes that
shift, and contrast normalisation removes most lighting differences.

Examples
--------
>>> idx, mask = sample_indices(100, 16)          # centred: evaluation
>>> idx.shape, mask.sum()
((16,), 16.0)
"""

import numpy as np
import tensorflow as tf

__all__ = ["TARGET_MEAN", "TARGET_STD", "prepare_faces", "augment_frames", "augment_clip", "sample_indices"]

#: Contrast normalisation target: mean and standard deviation of grey levels.
TARGET_MEAN, TARGET_STD = 128.0, 48.0


def prepare_faces(crops, image_size):
    """Face crops -> frames the frame CNN reads.

    Parameters
    ----------
    crops : array-like [shape=(N, S, S, 3), dtype=uint8 or float]
    image_size : int
        Output side in pixels.

    Returns
    -------
    tf.Tensor [shape=(N, image_size, image_size, 3), dtype=float32]
        Grey levels in [0, 255] with per-image mean 128 and std 48 (clipped).
    """
    x = tf.convert_to_tensor(crops)
    x = tf.cast(x, tf.float32)
    x = tf.image.resize(x, (image_size, image_size), method="area", antialias=True)
    grey = tf.image.rgb_to_grayscale(x)
    mean, var = tf.nn.moments(grey, axes=[1, 2, 3], keepdims=True)
    grey = (grey - mean) / tf.sqrt(var + 1.0) * TARGET_STD + TARGET_MEAN
    return tf.image.grayscale_to_rgb(tf.clip_by_value(grey, 0.0, 255.0))


def augment_frames(frames, seed):
    """Random crop (85-100% of the side, resized back), horizontal flip, brightness/contrast.

    Every frame gets its own random transform (stage one: independent frames).

    Parameters
    ----------
    frames : tf.Tensor [shape=(N, H, W, 3), dtype=float32] in [0, 255]
    seed : tf.Tensor [shape=(2,), dtype=int32]
        Stateless seed (one per batch).

    Returns
    -------
    tf.Tensor, same shape, in [0, 255].
    """
    return _apply_augmentation(frames, _augmentation_params(tf.shape(frames)[0], seed))


def augment_clip(frames, seed):
    """The transforms of :func:`augment_frames`, one random draw applied to every frame of a clip.

    A clip keeps its temporal coherence: the same crop box, flip, gain and
    brightness shift for all its frames, so the LSTMs see motion, not jitter.

    Parameters
    ----------
    frames : tf.Tensor [shape=(T, H, W, 3), dtype=float32] in [0, 255]
        The frames of one clip.
    seed : tf.Tensor [shape=(2,), dtype=int32]
        Stateless seed (one per clip).

    Returns
    -------
    tf.Tensor, same shape, in [0, 255].
    """
    params = _augmentation_params(1, seed)
    n = tf.shape(frames)[0]
    return _apply_augmentation(frames, {k: tf.repeat(v, n, axis=0) for k, v in params.items()})


def _augmentation_params(n, seed):
    """``n`` random draws of the augmentation: crop scale (n,) and offset (n, 2) as fractions of the
    side, flip (n, 1, 1, 1) bool, gain (n, 1, 1, 1) and brightness shift (n, 1, 1, 1) in grey levels."""
    seeds = tf.random.experimental.stateless_split(seed, 5)
    scale = tf.random.stateless_uniform([n], seeds[0], 0.85, 1.0)
    return {
        "scale": scale,
        "offset": tf.random.stateless_uniform([n, 2], seeds[1], 0.0, 1.0) * (1.0 - scale[:, None]),
        "flip": tf.random.stateless_uniform([n, 1, 1, 1], seeds[2]) < 0.5,
        "gain": tf.random.stateless_uniform([n, 1, 1, 1], seeds[3], 0.75, 1.25),
        "shift": tf.random.stateless_uniform([n, 1, 1, 1], seeds[4], -25.0, 25.0),
    }


def _apply_augmentation(frames, params):
    """Apply per-frame augmentation parameters (leading dimension N) to frames (N, H, W, 3) in [0, 255]."""
    n, h, w = tf.shape(frames)[0], tf.shape(frames)[1], tf.shape(frames)[2]
    scale, offset = params["scale"], params["offset"]
    boxes = tf.stack([offset[:, 0], offset[:, 1], offset[:, 0] + scale, offset[:, 1] + scale], axis=1)
    frames = tf.image.crop_and_resize(frames, boxes, tf.range(n), tf.stack([h, w]))
    frames = tf.where(params["flip"], tf.reverse(frames, axis=[2]), frames)
    return tf.clip_by_value((frames - TARGET_MEAN) * params["gain"] + TARGET_MEAN + params["shift"], 0.0, 255.0)


def sample_indices(n_available, n_frames, *, rng=None):
    """Pick ``n_frames`` frame positions spread over a clip (segment sampling).

    The clip is cut into ``n_frames`` equal segments and one frame is taken
    from each: at a random offset when ``rng`` is given (training), at the
    segment centre otherwise (evaluation). Shorter clips use every frame and
    are padded at the end.

    Parameters
    ----------
    n_available : int
        Frames the clip has.
    n_frames : int
        T, frames wanted.
    rng : numpy.random.Generator, optional

    Returns
    -------
    index : np.ndarray [shape=(T,), dtype=int64]
        Frame positions (0 where padded).
    mask : np.ndarray [shape=(T,), dtype=float32]
        1 for real frames, 0 for padding.
    """
    index = np.zeros(n_frames, np.int64)
    mask = np.zeros(n_frames, np.float32)
    if n_available <= 0:
        return index, mask
    if n_available <= n_frames:
        index[:n_available] = np.arange(n_available)
        mask[:n_available] = 1
        return index, mask
    edges = np.linspace(0, n_available, n_frames + 1)
    if rng is None:
        picked = (edges[:-1] + edges[1:]) / 2
    else:
        picked = edges[:-1] + rng.uniform(0, 1, n_frames) * (edges[1:] - edges[:-1])
    index[:] = np.minimum(np.floor(picked).astype(np.int64), n_available - 1)
    mask[:] = 1
    return index, mask
