"""Model inputs from the feature store: frame streams, frame sampling, sequence batches.

Frames are read lazily from the HDF5 store (never the whole file in memory).
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

import copy

import h5py
import numpy as np
import tensorflow as tf

from preprocessing.constants import CLASSES
from preprocessing.errors import StoreError

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


class SplitTable:
    """The clips of one split of a store: keys, labels and per-clip facts (small, in memory).

    Parameters
    ----------
    store : preprocessing.store.FeatureStore
    split : str
    labelled : bool
        Require a label on every clip (training and evaluation).

    Attributes
    ----------
    keys : list of str
    labels : np.ndarray [shape=(n,), dtype=int64], -1 where unknown
    has_audio : np.ndarray [shape=(n,), dtype=bool], False for absent or silent audio
    n_frames : np.ndarray [shape=(n,), dtype=int64]
    speakers, subjects : list of str
    """

    def __init__(self, store, split, *, labelled=True):
        rows = store.index(split=split)
        if not rows:
            raise StoreError(f"{store.path}: no clips in split {split!r}")
        self.split = split
        self.keys = [r["key"] for r in rows]
        self.labels = np.array([r["label_index"] for r in rows], np.int64)
        if labelled and (self.labels < 0).any():
            missing = self.keys[int(np.argmax(self.labels < 0))]
            raise StoreError(f"{store.path}: clip {missing!r} of split {split!r} has no label")
        self.has_audio = np.array([bool(r["has_audio"]) and not r["audio_silent"] for r in rows])
        self.n_frames = np.array([r["n_frames"] for r in rows], np.int64)
        self.speakers = [r["speaker"] for r in rows]
        self.subjects = [r["subject"] for r in rows]
        self.sources = [r["source"] for r in rows]

    def __len__(self):
        return len(self.keys)

    def subset(self, keep):
        """The same table restricted to the clips where ``keep`` (bool, shape (n,)) is true, in order."""
        keep = np.asarray(keep, bool)
        part = copy.copy(self)
        index = np.flatnonzero(keep)
        part.keys = [self.keys[i] for i in index]
        for name in ("speakers", "subjects", "sources"):
            setattr(part, name, [getattr(self, name)[i] for i in index])
        for name in ("labels", "has_audio", "n_frames"):
            setattr(part, name, getattr(self, name)[index])
        return part

    def class_counts(self):
        """Clips per class, shape (7,)."""
        return np.bincount(self.labels[self.labels >= 0], minlength=len(CLASSES))

    def class_weights(self):
        """``{class: n / (n_present * count)}`` for present classes (balanced weighting)."""
        counts = self.class_counts()
        present = counts > 0
        weights = np.zeros(len(CLASSES))
        weights[present] = counts.sum() / (present.sum() * counts[present])
        return {i: float(w) for i, w in enumerate(weights)}


def audio_matrix(store, keys):
    """Audio functionals of ``keys``, shape (n, D) float64 (small: read fully)."""
    return np.stack([store.clip(k)["audio_functionals"][()] for k in keys]).astype(np.float64)


def frame_dataset(store_path, table, *, frames_per_clip, image_size, batch_size, augment, seed):
    """A ``tf.data`` stream of single face frames for training the frame CNN (stage one).

    Each epoch draws ``frames_per_clip`` frames per clip (faces that were
    found are preferred over centre-crop fallbacks), reading only those frames
    from the HDF5 store.

    Returns
    -------
    tf.data.Dataset
        Batches ``(frames [shape=(B, image_size, image_size, 3)] float32, labels [shape=(B,)] int64)``.
    """
    keys, labels = list(table.keys), table.labels
    epoch_counter = iter(range(10**9))

    def generate():
        rng = np.random.default_rng([seed, next(epoch_counter)])
        order = rng.permutation(len(keys) * frames_per_clip) % len(keys)
        with h5py.File(store_path, "r") as f:
            clips = f["clips"]
            for i in order:
                group = clips[keys[i]]
                found = group["face_found"][()]
                if len(found) == 0:
                    continue
                candidates = np.flatnonzero(found) if found.any() else np.arange(len(found))
                j = int(rng.choice(candidates))
                yield group["faces"][j], labels[i]

    crop = _crop_size(store_path)
    signature = (tf.TensorSpec((crop, crop, 3), tf.uint8), tf.TensorSpec((), tf.int64))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    n_items = int((table.n_frames > 0).sum()) * frames_per_clip
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_items)).batch(batch_size)
    counter = tf.data.Dataset.counter()
    dataset = tf.data.Dataset.zip((dataset, counter))

    def to_model(batch, step):
        frames, y = batch
        x = prepare_faces(frames, image_size)
        if augment:
            x = augment_frames(x, tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)]))
        return x, y
    return dataset.map(to_model, num_parallel_calls=1).prefetch(2)


def sequence_dataset(store_path, table, *, n_frames, image_size, batch_size, augment=False, seed=0,
                     training=True, epoch=0):
    """A ``tf.data`` stream of face-crop sequences for training the video branch end to end.

    Per clip, ``n_frames`` frames are picked by :func:`sample_indices` and only
    those are read from the HDF5 store. In training, every pass over the
    dataset shuffles the clips and draws random segment offsets with
    ``numpy.random.default_rng([seed, epoch + pass])``, and (``augment``) one
    random :func:`augment_clip` transform per clip. Otherwise the frames are the
    segment centres, the clips keep ``table`` order, nothing is augmented and
    the prepared batches are cached in memory after the first pass (computed
    once: about ``len(table) * n_frames * image_size**2 * 12`` bytes).

    Frames go through :func:`prepare_faces` like every other path into the frame
    CNN. Clips shorter than ``n_frames`` are padded at the end with mid-grey
    frames (:data:`TARGET_MEAN`, the mean of a prepared face) marked 0 in
    ``frame_mask``; a clip without frames has an all-zero mask.

    Parameters
    ----------
    store_path : str or os.PathLike
        The HDF5 feature store (opened read-only by the generator).
    table : SplitTable
        The clips; every clip is yielded once per pass.
    n_frames : int
        T, frames per clip.
    image_size : int
        S, frame side fed to the CNN, px.
    batch_size : int
        B, clips per batch (the last batch may be smaller).
    augment : bool
        Random crop, flip and brightness/contrast, the same for all frames of a clip (training only).
    seed : int
        Seeds the frame offsets, the clip order and the augmentation.
    training : bool
        Random sampling, shuffled, augmented (True); or centred, ordered and cached (False).
    epoch : int
        Index of the first pass (a resumed run continues the random stream of its next epoch).

    Returns
    -------
    tf.data.Dataset
        Batches ``({"frames": [shape=(B, T, S, S, 3)] float32 in [0, 255],
        "frame_mask": [shape=(B, T)] float32 1/0}, labels [shape=(B,)] int64)``.
    """
    keys, labels = list(table.keys), table.labels
    crop = _crop_size(store_path)
    passes = iter(range(epoch, 10**9))

    def generate():
        rng = np.random.default_rng([seed, next(passes)]) if training else None
        order = rng.permutation(len(keys)) if training else np.arange(len(keys))
        with h5py.File(store_path, "r") as f:
            clips = f["clips"]
            for i in order:
                crops, mask = _read_sequence(clips[keys[i]]["faces"], n_frames, rng)
                clip_seed = rng.integers(0, 2**31 - 1, size=2) if training else np.zeros(2)
                yield crops, mask, labels[i], clip_seed.astype(np.int32)

    signature = (tf.TensorSpec((n_frames, crop, crop, 3), tf.uint8), tf.TensorSpec((n_frames,), tf.float32),
                 tf.TensorSpec((), tf.int64), tf.TensorSpec((2,), tf.int32))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(keys)))

    def to_model(crops, mask, label, clip_seed):
        frames = prepare_faces(crops, image_size)
        if training and augment:
            frames = augment_clip(frames, clip_seed)
        frames = tf.where(mask[:, None, None, None] > 0, frames, TARGET_MEAN)
        return {"frames": frames, "frame_mask": mask}, label

    dataset = dataset.map(to_model, num_parallel_calls=1).batch(batch_size)
    if not training:
        dataset = dataset.cache()
    return dataset.prefetch(2)


def _read_sequence(faces, n_frames, rng):
    """``n_frames`` crops of one clip's ``faces`` dataset (N, S, S, 3) uint8, reading only those frames.

    Returns
    -------
    crops : np.ndarray [shape=(n_frames, S, S, 3), dtype=uint8], zeros where padded
    mask : np.ndarray [shape=(n_frames,), dtype=float32]
    """
    index, mask = sample_indices(faces.shape[0], n_frames, rng=rng)
    crops = np.zeros((n_frames,) + faces.shape[1:], np.uint8)
    real = mask > 0
    if real.any():
        unique, inverse = np.unique(index[real], return_inverse=True)  # h5py reads increasing, distinct rows
        crops[real] = faces[unique][inverse]
    return crops, mask


def _crop_size(store_path):
    with h5py.File(store_path, "r") as f:
        for group in f["clips"].values():
            return int(group["faces"].shape[1])
    raise StoreError(f"{store_path}: the store holds no clips")


def clip_frames(group, *, max_frames=None):
    """All face crops of a clip (or ``max_frames`` spread uniformly), shape (T, S, S, 3) uint8."""
    faces = group["faces"]
    n = faces.shape[0]
    if max_frames is None or n <= max_frames:
        return faces[()]
    index, _ = sample_indices(n, max_frames)
    return faces[np.unique(index)]


def sequence_batch(embeddings, n_frames, *, rng=None):
    """Sample T frames from each clip's cached embeddings.

    Parameters
    ----------
    embeddings : list of np.ndarray [shape=(T_i, E)]
    n_frames : int
    rng : numpy.random.Generator, optional
        Random offsets (training); centred when ``None``.

    Returns
    -------
    x : np.ndarray [shape=(n, n_frames, E), dtype=float32]
    mask : np.ndarray [shape=(n, n_frames), dtype=float32]
    """
    dim = next((e.shape[1] for e in embeddings if e.ndim == 2), 1)
    x = np.zeros((len(embeddings), n_frames, dim), np.float32)
    mask = np.zeros((len(embeddings), n_frames), np.float32)
    for i, emb in enumerate(embeddings):
        index, m = sample_indices(len(emb), n_frames, rng=rng)
        if len(emb):
            x[i] = emb[index] * m[:, None]
        mask[i] = m
    return x, mask
