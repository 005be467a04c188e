"""Cross-fitting bookkeeping: who belongs to which fold, and the fusion pool's weight.

Cross-fitted training (:mod:`emonet.training.crossfit`) gives every training clip
branch predictions from models that never saw its face subject or speaker. This module
holds the two numerical pieces that need no model:

- :func:`person_of` and :func:`group_folds`: assign clips to folds so that no person
  spans two folds;
- :func:`fit_pool_weight`: the video weight ``alpha`` of the fusion head's linear
  opinion pool (:class:`emonet.nn.layers.BranchPool`), fitted by maximum likelihood on
  the out-of-fold predictions.
"""

import re

import numpy as np
import scipy.optimize

from preprocessing.errors import ConfigError

from emonet.nn.layers import PROBABILITY_FLOOR

_SEQUENCE_SUFFIX = re.compile(r"_\d+$")


def person_of(subject):
    """The person behind a subject id: a trailing ``_<digits>`` sequence number is dropped.

    CK+ names sequences ``S005_001`` (subject 5, sequence 1); two sequences of one
    person must fall in the same fold.

    >>> person_of("ck:S005_001"), person_of("jaffe:KA"), person_of(None)
    ('ck:S005', 'jaffe:KA', None)
    """
    if not subject:
        return None
    return _SEQUENCE_SUFFIX.sub("", str(subject))


def group_folds(groups, n_folds, *, seed=0):
    """Assign clips to ``n_folds`` folds so that no group (person) spans two folds.

    Groups are placed largest first (ties in a seeded random order) into the fold
    holding the fewest clips so far, which keeps folds within one group's size of
    each other. Clips without a group (``None``) are their own group each.

    Parameters
    ----------
    groups : sequence of str or None, length n
    n_folds : int >= 2
    seed : int

    Returns
    -------
    np.ndarray [shape=(n,), dtype=int64]
        Fold index of each clip, in ``0 .. n_folds - 1``.

    Raises
    ------
    ConfigError
        Fewer distinct groups than folds.
    """
    if n_folds < 2:
        raise ConfigError(f"group_folds: n_folds must be >= 2; received {n_folds}")
    keys = [str(g) if g else f"\0clip{i}" for i, g in enumerate(groups)]
    names, inverse, counts = np.unique(np.array(keys, dtype=object), return_inverse=True, return_counts=True)
    if len(names) < n_folds:
        raise ConfigError(f"cross-fitting needs at least {n_folds} distinct subjects/speakers; "
                          f"the training split has {len(names)}")
    tiebreak = np.random.default_rng(seed).permutation(len(names))
    order = np.lexsort((tiebreak, -counts))
    fold_of_group = np.zeros(len(names), np.int64)
    sizes = np.zeros(n_folds, np.int64)
    for g in order:
        target = int(np.argmin(sizes))
        fold_of_group[g] = target
        sizes[target] += counts[g]
    return fold_of_group[inverse]


def fit_pool_weight(video_probabilities, audio_probabilities, labels, *, sample_weight=None):
    """Video weight ``alpha`` of the pool ``alpha * p_video + (1 - alpha) * p_audio`` that fits ``labels`` best.

    Maximum likelihood (weighted mean log-probability of the true class) over ``alpha`` in
    [0, 1]; meant for *out-of-fold* branch predictions of the training clips that have both
    a face and audio, so the weight reflects how the branches do on faces and voices they
    never saw. Pooled probabilities are floored at
    :data:`emonet.nn.layers.PROBABILITY_FLOOR`, as in the head.

    Parameters
    ----------
    video_probabilities, audio_probabilities : array [shape=(n, C)]
        Rows sum to 1.
    labels : array of int [shape=(n,)]
    sample_weight : array [shape=(n,)], optional
        E.g. class weights, so that every class counts alike (as UAR does).

    Returns
    -------
    float
        ``alpha`` in [0, 1]; 1.0 (video alone) when ``n`` is 0.
    """
    if len(labels) == 0:
        return 1.0
    rows = np.arange(len(labels))
    p_video = np.asarray(video_probabilities, np.float64)[rows, labels]
    p_audio = np.asarray(audio_probabilities, np.float64)[rows, labels]
    weight = np.ones(len(labels)) if sample_weight is None else np.asarray(sample_weight, np.float64)

    def negative_log_likelihood(alpha):
        pooled = np.maximum(alpha * p_video + (1.0 - alpha) * p_audio, PROBABILITY_FLOOR)
        return -np.average(np.log(pooled), weights=weight)

    result = scipy.optimize.minimize_scalar(negative_log_likelihood, bounds=(0.0, 1.0), method="bounded",
                                            options={"xatol": 1e-4})
    return float(result.x)
