"""Frame embeddings and reduced audio: what the clip models read, and the run's per-frame embedding cache."""

from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from preprocessing.constants import EARLIER_WIDTHS
from preprocessing.files import atomic_path

from emonet.features.frames import prepare_faces


#: Frames encoded per predict call (bounded memory for long clips).
ENCODE_BATCH = 256


def embed_faces(encoder, crops, image_size):
    """Face crops (T, S, S, 3) uint8 -> per-frame embeddings (T, E) float32, ENCODE_BATCH frames at a time."""
    if len(crops) == 0:
        return np.zeros((0, encoder.output_shape[-1]), np.float32)
    parts = [encoder.predict_on_batch(prepare_faces(crops[i:i + ENCODE_BATCH], image_size))
             for i in range(0, len(crops), ENCODE_BATCH)]
    return np.concatenate([np.asarray(p) for p in parts]).astype(np.float32)


def write_embedding_cache(path, store_path, embeddings):
    """Write a run's per-frame embedding cache (read back by :meth:`TrainedRun.store_embeddings`).

    Parameters
    ----------
    path : pathlib.Path
        ``embeddings.h5`` of a run; written to a temporary file, then renamed (never half-written).
    store_path : str or os.PathLike
        The feature store the frames came from (recorded, so a cache is only used for its store).
    embeddings : dict
        ``{clip key: (T_i, E) float32}``.
    """
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs["store_path"] = str(Path(store_path).resolve())
        group = f.create_group("clips")
        for key, emb in embeddings.items():
            group.create_dataset(key, data=emb)


class ReducedAudio(NamedTuple):
    """The reduced audio vectors a clip model trains on (a pair ``(train, val)`` when indexed).

    Attributes
    ----------
    train : np.ndarray [shape=(n_train, d), dtype=float32]
    val : np.ndarray [shape=(n_val, d), dtype=float32]
    train_speeds : np.ndarray [shape=(K, n_train, d), dtype=float32] or None
        The training clips played at the K extraction ``audio_speeds`` (None without them);
        each epoch draws, per clip, the clip itself or one of these copies.
    """

    train: np.ndarray
    val: np.ndarray
    train_speeds: np.ndarray | None = None


def reduce_audio(reducer, functionals, has_audio):
    """Audio functionals (n, D) -> reduced (n, d) float32; rows without audio are zeros (the training mean).

    A reducer fitted on an earlier width of the functionals (``n_features_in_`` in
    :data:`~preprocessing.constants.EARLIER_WIDTHS`: 1,475, 1,795 or 1,825) reads that prefix of
    today's 3,361: later blocks were appended, so the prefix is the same vector. A reducer of a
    later block (``first_feature`` > 0, e.g. the voice encoder's statistics) reads its columns. Rows
    of an older store are fine when none of them has audio (photos, silent clips); otherwise the
    reducer names the mismatch.
    """
    functionals = np.asarray(functionals, np.float64)
    has_audio = np.asarray(has_audio, bool)
    expected = getattr(reducer, "n_features_in_", None)
    if functionals.ndim == 2 and expected is not None:
        first, end = getattr(reducer, "first_feature", 0), audio_width_read(reducer)
        if end <= functionals.shape[1] and (first or expected in EARLIER_WIDTHS):  # its block, or an older prefix
            functionals = functionals[:, first:end]
        elif functionals.shape[1] < end and not has_audio.any():
            functionals = np.zeros((len(functionals), expected))  # an older store's photos or silent clips: no audio
    reduced = reducer.transform(functionals).astype(np.float32)
    reduced[~has_audio] = 0.0
    return reduced


def audio_width_read(reducer):
    """How many values of the audio vector a reducer needs a store to hold: its block's end (int)."""
    return getattr(reducer, "first_feature", 0) + reducer.n_features_in_


def read_embedding_cache(path, store_path, keys):
    """The cached embeddings ``{key: (T_i, E) float32}`` of those ``keys`` the cache at ``path`` holds.

    Empty when there is no cache or it was computed from another store than ``store_path``.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    with h5py.File(path, "r") as f:
        if f.attrs.get("store_path") != str(Path(store_path).resolve()):
            return {}
        return {k: f["clips"][k][()] for k in keys if k in f["clips"]}
