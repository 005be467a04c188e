"""Model inputs streamed from the feature store: ``tf.data`` frame and sequence datasets.

Frames are read lazily from the HDF5 store (never the whole file in memory), only
the frames a batch needs, and go through :func:`emonet.features.frames.prepare_faces`
like every other path into the frame CNN. :func:`sequence_batch` builds the same
kind of sequence batch from cached per-frame embeddings (numpy, no store access).

Examples
--------
>>> dataset = sequence_dataset("features.h5", table, n_frames=16, image_size=112,
...                            batch_size=8, training=False)   # doctest: +SKIP
>>> inputs, labels = next(iter(dataset))                       # doctest: +SKIP
>>> inputs["frames"].shape, inputs["frame_mask"].shape         # doctest: +SKIP
(TensorShape([8, 16, 112, 112, 3]), TensorShape([8, 16]))
"""

import h5py
import numpy as np
import tensorflow as tf

from emonet.features.frames import (TARGET_MEAN, augment_clip, augment_footage, augment_frames, prepare_faces,
                                    sample_indices)
from preprocessing.errors import StoreError

__all__ = ["frame_dataset", "sequence_dataset", "sequence_batch"]


def frame_dataset(store_path, table, *, frames_per_clip, image_size, batch_size, augment, seed, soft_labels=False,
                  augment_policy="basic", first_fraction=0.0):
    """A ``tf.data`` stream of single face frames for training the frame CNN (stage one).

    Each epoch draws ``frames_per_clip`` frames per clip (faces that were
    found are preferred over centre-crop fallbacks), reading only those frames
    from the HDF5 store. A split of still images (one frame per clip) is read
    into memory once and reshuffled every epoch instead.

    Parameters
    ----------
    soft_labels : bool
        Yield each clip's label distribution (``table.soft_labels``, e.g. FER+ votes; one-hot
        where a clip has none) instead of its class index.
    augment_policy : {"basic", "footage"}
        :func:`~emonet.features.frames.augment_frames` or the stronger
        :func:`~emonet.features.frames.augment_footage` (when ``augment``).
    first_fraction : float in [0, 1)
        Draw a clip's frames from this fraction of its stored frames onward only (0.5: the
        second half), for posed clips that start from a neutral face.

    Returns
    -------
    tf.data.Dataset
        Batches ``(frames [shape=(B, image_size, image_size, 3)] float32, labels)``: labels
        [shape=(B,)] int64, or [shape=(B, 7)] float32 with ``soft_labels``.
    """
    keys = list(table.keys)
    soft = soft_labels and table.soft_labels is not None
    labels = table.soft_labels if soft else table.labels
    augmenter = augment_footage if augment_policy == "footage" else augment_frames

    def to_model(batch, step):
        frames, y = batch
        x = prepare_faces(frames, image_size)
        if augment:
            x = augmenter(x, tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)]))
        return x, y

    if len(keys) and (table.n_frames == 1).all():  # still images (FER+): all in memory, shuffled every epoch
        dataset = _still_image_dataset(store_path, keys, labels, frames_per_clip=frames_per_clip, seed=seed)
        dataset = tf.data.Dataset.zip((dataset.batch(batch_size), tf.data.Dataset.counter()))
        return dataset.map(to_model, num_parallel_calls=1).prefetch(2)
    epoch_counter = iter(range(10**9))

    def generate():
        rng = np.random.default_rng([seed, next(epoch_counter)])
        order = rng.permutation(len(keys) * frames_per_clip) % len(keys)
        with h5py.File(store_path, "r") as f:
            clips = f["clips"]
            for i in order:
                group = clips[keys[i]]
                found = group["face_found"][()][int(first_fraction * len(group["face_found"])):]
                if len(found) == 0:
                    continue
                offset = len(group["face_found"]) - len(found)
                candidates = offset + (np.flatnonzero(found) if found.any() else np.arange(len(found)))
                j = int(rng.choice(candidates))
                yield group["faces"][j], labels[i]

    crop = _crop_size(store_path)
    label_spec = tf.TensorSpec((labels.shape[1],), tf.float32) if soft else tf.TensorSpec((), tf.int64)
    signature = (tf.TensorSpec((crop, crop, 3), tf.uint8), label_spec)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    n_items = int((table.n_frames > 0).sum()) * frames_per_clip
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_items)).batch(batch_size)
    counter = tf.data.Dataset.counter()
    dataset = tf.data.Dataset.zip((dataset, counter))
    return dataset.map(to_model, num_parallel_calls=1).prefetch(2)


def mix_frame_datasets(main, extra, *, share, seed, n_classes, soft_labels):
    """One pass of ``main``'s batches with batches of ``extra`` (repeated) drawn in between.

    The two streams come from :func:`frame_dataset` on two stores (e.g. FER+ faces in the
    wild and posed lab faces): each batch is from one store, ``extra``'s with probability
    ``share``, so a pass is about ``len(main) / (1 - share)`` batches.

    Parameters
    ----------
    main, extra : tf.data.Dataset
        Batches ``(frames [shape=(B, S, S, 3)] float32, labels)``; ``extra``'s labels are
        class indices [shape=(B,)] int64.
    share : float in (0, 1)
    seed : int
    n_classes : int
    soft_labels : bool
        ``main`` yields label distributions [shape=(B, n_classes)]: ``extra``'s indices
        become one-hot rows.

    Returns
    -------
    tf.data.Dataset
        Batches like ``main``'s.
    """
    if soft_labels:
        extra = extra.map(lambda x, y: (x, tf.one_hot(y, n_classes, dtype=tf.float32)))
    return tf.data.Dataset.sample_from_datasets([main, extra.repeat()], weights=[1.0 - share, share], seed=seed,
                                                stop_on_empty_dataset=True)


def _still_image_dataset(store_path, keys, labels, *, frames_per_clip, seed):
    """The one frame of every clip, read once into memory: (crop uint8, label) pairs reshuffled every pass.

    For corpora of still images (28k FER+ faces of 48x48x3 bytes: 195 MB), reading the
    frame of each item from the HDF5 store again every epoch costs more than the training.
    """
    with h5py.File(store_path, "r") as f:
        clips = f["clips"]
        frames = np.stack([clips[key]["faces"][0] for key in keys])
    dataset = tf.data.Dataset.from_tensor_slices((frames, labels)).repeat(frames_per_clip)
    return dataset.shuffle(len(keys) * frames_per_clip, seed=seed, reshuffle_each_iteration=True)


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
