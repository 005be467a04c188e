"""The clips of a split, in memory: keys, labels, per-clip facts, audio functionals, face crops.

Small tables read from the feature store index (:class:`SplitTable`), the audio
functionals of some clips (:func:`audio_matrix`) and the face crops of one clip
(:func:`clip_frames`, for prediction and the embedding cache).

Examples
--------
>>> with FeatureStore("features.h5") as store:       # doctest: +SKIP
...     table = SplitTable(store, "train")
...     X = audio_matrix(store, table.keys)          # (n, D) float64
"""

import copy

import numpy as np

from emonet.features.frames import sample_indices
from preprocessing.constants import CLASSES
from preprocessing.errors import StoreError

__all__ = ["SplitTable", "audio_matrix", "audio_speed_matrix", "clip_frames", "speed_copies"]


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
    soft_labels : np.ndarray [shape=(n, 7), dtype=float32] or None
        Rater votes per clip (CLASSES order, rows sum to 1) when any clip of the split has
        them (FER+), else None; a clip without one gets the one-hot of its label (zeros
        if unlabelled).
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
        self.soft_labels = None
        if any(r.get("soft_label") is not None for r in rows):
            self.soft_labels = np.zeros((len(rows), len(CLASSES)), np.float32)
            for i, r in enumerate(rows):
                if r.get("soft_label") is not None:
                    self.soft_labels[i] = r["soft_label"]
                elif self.labels[i] >= 0:
                    self.soft_labels[i, self.labels[i]] = 1.0

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
        if self.soft_labels is not None:
            part.soft_labels = self.soft_labels[index]
        return part

    def labelled_part(self, *, keep_soft=False):
        """The clips with a label (and, with ``keep_soft``, those with only a label distribution).

        FER+ faces without a clear majority among the raters have a distribution but no label:
        they can train a soft-label loss, but nothing can be scored against them.

        Returns
        -------
        table : SplitTable
        left_out : int
            Clips dropped.
        """
        keep = self.labels >= 0
        if keep_soft and self.soft_labels is not None:
            keep |= self.soft_labels.sum(axis=1) > 0
        return self.subset(keep), int((~keep).sum())

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


def audio_speed_matrix(store, keys, has_audio):
    """Audio functionals of speed-perturbed copies of ``keys`` (extraction ``audio_speeds``).

    Parameters
    ----------
    store : preprocessing.store.FeatureStore
        Built with ``audio_speeds`` (K factors).
    keys : list of str
        n clips.
    has_audio : np.ndarray [shape=(n,), dtype=bool]
        Clips without (or with silent) audio get zero rows, like their ``audio_functionals``.

    Returns
    -------
    np.ndarray [shape=(K, n, D), dtype=float64]
        ``[k, i]``: clip ``keys[i]`` played at speed ``audio_speeds[k]``.

    Raises
    ------
    StoreError
        The store was built without ``audio_speeds``, or a clip with audio lacks its copies.
    """
    speeds = store.params.get("audio_speeds") or []
    if not speeds:
        raise StoreError(f"{store.path}: the store holds no speed-perturbed audio (extract.audio_speeds was empty "
                         f"when it was built); give the run a store built with extract.audio_speeds")
    out = np.zeros((len(speeds), len(keys), len(store.audio_feature_names)), np.float64)
    for i, (key, copies) in enumerate(zip(keys, speed_copies(store, keys, has_audio))):
        if has_audio[i] and copies is None:
            raise StoreError(f"{store.path}: clip {key!r} has no audio_speed_functionals")
        if copies is not None:
            out[:, i] = copies
    return out


def speed_copies(store, keys, has_audio):
    """Per clip of ``keys``, its ``audio_speed_functionals`` (K, D) float32, or None: a clip without (or with
    silent) audio, or one the store holds no copies of (prediction stores copies only where they are heard)."""
    out = []
    for key, audible in zip(keys, has_audio):
        group = store.clip(key) if audible else None
        out.append(group["audio_speed_functionals"][()] if group is not None and "audio_speed_functionals" in group
                   else None)
    return out


def clip_frames(group, *, max_frames=None):
    """All face crops of a clip (or ``max_frames`` spread uniformly), shape (T, S, S, 3) uint8."""
    faces = group["faces"]
    n = faces.shape[0]
    if max_frames is None or n <= max_frames:
        return faces[()]
    index, _ = sample_indices(n, max_frames)
    return faces[np.unique(index)]
