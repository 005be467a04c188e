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

__all__ = ["TARGET_MEAN", "TARGET_STD", "STILL_VIEW_SIDE", "prepare_faces", "still_views", "augment_frames",
           "augment_clip", "sample_indices"]

#: Contrast normalisation target: mean and standard deviation of grey levels.
TARGET_MEAN, TARGET_STD = 128.0, 48.0

#: Side of the crops of :func:`still_views`, as a share of the face crop's side (inside the 85-100 %
#: of training's random crops).
STILL_VIEW_SIDE = 11 / 12


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


def still_views(crop, n_views):
    """The views of a still face the frame CNN reads and averages (test-time augmentation).

    Parameters
    ----------
    crop : np.ndarray [shape=(S, S, 3), dtype=uint8]
        The face crop.
    n_views : {1, 10}
        1: the crop itself; 10: five crops of :data:`STILL_VIEW_SIDE` of the side (centre, then
        the top-left, top-right, bottom-left and bottom-right corners), then their mirror images
        in that order. :func:`prepare_faces` resizes them to the CNN's side like any crop.

    Returns
    -------
    np.ndarray [shape=(n_views, s, s, 3), dtype=uint8]
        ``s = S`` for one view, else ``round(S * STILL_VIEW_SIDE)``.
    """
    crop = np.asarray(crop)
    if n_views == 1:
        return crop[None]
    if n_views != 10:
        raise ValueError(f"still_views: n_views must be 1 or 10; received {n_views!r}")
    side = crop.shape[0]
    size = int(round(side * STILL_VIEW_SIDE))
    far, middle = side - size, (side - size) // 2
    corners = ((middle, middle), (0, 0), (0, far), (far, 0), (far, far))
    crops = np.stack([crop[top:top + size, left:left + size] for top, left in corners])
    return np.ascontiguousarray(np.concatenate([crops, crops[:, :, ::-1]]))


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


#: Augmentation policies of stage one (``train.augment_policy``).
AUGMENT_POLICIES = ("basic", "footage")


def augment_footage(frames, seed):
    """Stronger per-frame augmentation for faces in the wild (``train.augment_policy: footage``).

    On top of :func:`augment_frames` (crop 85-100%, flip, gain and brightness): a rotation of up to
    +-12 degrees and a zoom of 0.9-1.15 about a shifted centre (edges replicated, as a face crop
    of real footage that is not centred), a Gaussian blur of sigma 0.5-1.5 px on 30% of the frames
    (soft focus, compressed video), and one erased rectangle (2-15% of the area, filled with a
    random grey) on 40% (hands, microphones, glasses).

    Parameters
    ----------
    frames : tf.Tensor [shape=(N, H, W, 3), dtype=float32] in [0, 255]
    seed : tf.Tensor [shape=(2,), dtype=int32]
        Stateless seed (one per batch).

    Returns
    -------
    tf.Tensor, same shape, in [0, 255].
    """
    seeds = tf.random.experimental.stateless_split(seed, 4)
    frames = augment_frames(frames, seeds[0])
    frames = _random_affine(frames, seeds[1])
    frames = _random_blur(frames, seeds[2])
    return _random_erasing(frames, seeds[3])


def _random_affine(frames, seed):
    """Rotation (+-12 deg), zoom (0.9-1.15) and shift (+-6% of the side) about the frame centre."""
    n = tf.shape(frames)[0]
    h, w = tf.cast(tf.shape(frames)[1], tf.float32), tf.cast(tf.shape(frames)[2], tf.float32)
    seeds = tf.random.experimental.stateless_split(seed, 3)
    angle = tf.random.stateless_uniform([n], seeds[0], -12.0, 12.0) * (3.141592653589793 / 180.0)
    zoom = tf.random.stateless_uniform([n], seeds[1], 0.9, 1.15)
    shift = tf.random.stateless_uniform([n, 2], seeds[2], -0.06, 0.06) * tf.stack([w, h])
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    cx, cy = (w - 1) / 2, (h - 1) / 2
    # output pixel (x, y) samples input ((x - cx) * cos - (y - cy) * sin + cx + dx, ...): a rotation about the centre
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = cx - a0 * cx - a1 * cy + shift[:, 0]
    b2 = cy - b0 * cx - b1 * cy + shift[:, 1]
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=frames, transforms=transforms, output_shape=tf.shape(frames)[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="NEAREST")


def _random_blur(frames, seed, probability=0.3):
    """Separable Gaussian blur (sigma 0.5-1.5 px, one sigma per batch) on a random ``probability`` of frames."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    sigma = tf.random.stateless_uniform([], seeds[0], 0.5, 1.5)
    taps = tf.range(-3.0, 4.0)
    kernel = tf.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / tf.reduce_sum(kernel)
    channels = tf.shape(frames)[-1]
    kx = tf.tile(tf.reshape(kernel, [1, 7, 1, 1]), [1, 1, channels, 1])
    ky = tf.tile(tf.reshape(kernel, [7, 1, 1, 1]), [1, 1, channels, 1])
    padded = tf.pad(frames, [[0, 0], [3, 3], [3, 3], [0, 0]], mode="SYMMETRIC")
    blurred = tf.nn.depthwise_conv2d(padded, kx, [1, 1, 1, 1], "VALID")
    blurred = tf.nn.depthwise_conv2d(blurred, ky, [1, 1, 1, 1], "VALID")
    chosen = tf.random.stateless_uniform([tf.shape(frames)[0], 1, 1, 1], seeds[1]) < probability
    return tf.where(chosen, blurred, frames)


def _random_erasing(frames, seed, probability=0.4):
    """One rectangle (2-15% of the area, aspect 0.5-2) filled with a random grey, on ``probability`` of frames."""
    n, h, w = tf.shape(frames)[0], tf.shape(frames)[1], tf.shape(frames)[2]
    seeds = tf.random.experimental.stateless_split(seed, 6)
    area = tf.random.stateless_uniform([n], seeds[0], 0.02, 0.15)
    aspect = tf.exp(tf.random.stateless_uniform([n], seeds[1], -0.693, 0.693))
    eh, ew = tf.sqrt(area / aspect), tf.sqrt(area * aspect)                 # fractions of the side
    top = tf.random.stateless_uniform([n], seeds[2]) * tf.maximum(1.0 - eh, 0.0)
    left = tf.random.stateless_uniform([n], seeds[3]) * tf.maximum(1.0 - ew, 0.0)
    rows = (tf.cast(tf.range(h), tf.float32) + 0.5) / tf.cast(h, tf.float32)
    cols = (tf.cast(tf.range(w), tf.float32) + 0.5) / tf.cast(w, tf.float32)
    inside_rows = (rows[None, :] >= top[:, None]) & (rows[None, :] < (top + eh)[:, None])      # (n, H)
    inside_cols = (cols[None, :] >= left[:, None]) & (cols[None, :] < (left + ew)[:, None])    # (n, W)
    chosen = tf.random.stateless_uniform([n], seeds[4]) < probability
    box = inside_rows[:, :, None] & inside_cols[:, None, :] & chosen[:, None, None]             # (n, H, W)
    grey = tf.random.stateless_uniform([n, 1, 1, 1], seeds[5], 0.0, 255.0)
    return tf.where(box[..., None], grey, frames)


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
