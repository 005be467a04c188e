"""Following one face through a clip: detections on some frames, boxes for all of them.

:func:`track_faces` runs the detector on every ``detect_every``-th frame and fills the
frames in between; :mod:`preprocessing.faces` crops along the boxes.

What keeps it cheap: once a face is found, the next detections are *guided*
(``detector.detect_near(frame, previous_box)``, :meth:`preprocessing.faces.HaarDetector.detect_near`):
only the region around the previous box, downscaled so the face is ~48 px, at scales
near the previous one, about a tenth of the cost of a full-frame search. When the guided
search finds nothing (the face moved away, a cut, an occlusion), the full detector runs on
that frame: the re-detection. Detectors without ``detect_near`` (MTCNN, test doubles,
caches) always run in full.

Between detections the box is interpolated linearly and smoothed with a moving average,
except across a *jump*: two consecutive detections whose boxes barely overlap (IoU below
:data:`JUMP_IOU`: a cut, or another face taking over). The frames between them take the
nearer detection's box, and neither interpolation nor smoothing mixes the two faces.

Examples
--------
>>> boxes, found = track_faces(frames, detector=make_detector("haar"))   # doctest: +SKIP
>>> boxes.shape, found.mean()                                             # doctest: +SKIP
((75, 4), 1.0)
"""

import numpy as np

from .errors import ConfigError

#: Consecutive detections whose boxes overlap less than this (intersection over union) are a jump.
JUMP_IOU = 0.1


def check_frames(frames):
    """``frames`` as a uint8 array of shape (T, H, W, 3) with H, W >= 1, or :class:`ConfigError`."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ConfigError(f"frames: must be uint8 of shape (T, H, W, 3); received {frames.dtype} {frames.shape}")
    if frames.shape[1] < 1 or frames.shape[2] < 1:
        raise ConfigError(f"frames: height and width must be >= 1; received shape {frames.shape}")
    return frames


def box_iou(a, b):
    """Intersection over union of two boxes (x0, y0, x1, y1) in pixels; 0 for empty boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def detect_keyframes(frames, probes, *, detector, max_gap, guided=True):
    """Detections on the frames ``probes`` (increasing indices): ``{index: box float32 (4,)}`` where found.

    A frame within ``max_gap`` frames of the last detection is searched near it first
    (``detector.detect_near``, when the detector has it and ``guided``); the full
    ``detector.detect`` runs when that finds nothing, or without a recent detection.
    """
    near = getattr(detector, "detect_near", None) if guided else None
    hits, last = {}, None
    for i in probes:
        box = None
        if near is not None and last is not None and i - last <= max_gap:
            box = near(frames[i], hits[last])
        if box is None:
            box = detector.detect(frames[i])
        if box is not None:
            hits[i] = np.asarray(box, np.float32)
            last = i
    return hits


def track_faces(frames, *, detector, detect_every=5, max_gap=25, smooth=5, guided=True):
    """Detect on every ``detect_every``-th frame (and the last) and fill the frames in between.

    Parameters
    ----------
    frames : np.ndarray [shape=(T, H, W, 3), dtype=uint8]
    detector : object with ``detect(image) -> box or None`` (and optionally ``detect_near(image, box)``)
    detect_every : int
        Detection stride in frames.
    max_gap : int
        Frames a box is held before the first / after the last detection.
    smooth : int
        Moving-average window in frames over the tracked box coordinates.
    guided : bool
        Use ``detector.detect_near`` after a detection (see the module docstring); False:
        every detection searches the whole frame.

    Returns
    -------
    boxes : np.ndarray [shape=(T, 4), dtype=float32]
        (x0, y0, x1, y1) in pixels, NaN where not found.
    found : np.ndarray [shape=(T,), dtype=bool]
    """
    frames = check_frames(frames)
    if detect_every < 1 or max_gap < 0 or smooth < 1:
        raise ConfigError(f"track_faces: detect_every >= 1, max_gap >= 0, smooth >= 1; received "
                          f"{detect_every}, {max_gap}, {smooth}")
    n = len(frames)
    boxes = np.full((n, 4), np.nan, np.float32)
    if n == 0:
        return boxes, np.zeros(0, bool)
    probes = list(range(0, n, detect_every))
    if probes[-1] != n - 1:
        probes.append(n - 1)
    hits = detect_keyframes(frames, probes, detector=detector, max_gap=max_gap, guided=guided)
    if not hits:
        return boxes, np.zeros(n, bool)
    at = np.array(sorted(hits))
    values = np.stack([hits[i] for i in at])
    positions = np.arange(n)
    nearest = np.min(np.abs(positions[:, None] - at[None, :]), axis=1)
    inside = (positions >= at[0]) & (positions <= at[-1])
    found = np.where(inside, nearest <= max(max_gap, detect_every), nearest <= max_gap)
    # Segments of detections without a jump; each owns the frames up to halfway to its neighbours.
    jumps = [k + 1 for k in range(len(at) - 1) if box_iou(values[k], values[k + 1]) < JUMP_IOU]
    starts, ends = [0] + jumps, jumps + [len(at)]
    for first, last in zip(starts, ends):
        lo = 0 if first == 0 else (at[first - 1] + at[first]) // 2 + 1
        hi = n if last == len(at) else (at[last - 1] + at[last]) // 2 + 1
        span = slice(lo, hi)
        for c in range(4):
            boxes[span, c] = np.interp(positions[span], at[first:last], values[first:last, c])
        if smooth > 1 and found[span].sum() > 1:
            boxes[span] = _smoothed(boxes[span], found[span], smooth)
    boxes[~found] = np.nan
    return boxes, found


def _smoothed(boxes, found, window):
    """Moving average over ``window`` frames of the found rows of ``boxes`` (T, 4); other rows NaN."""
    kernel, first = np.ones(window), (window - 1) // 2
    # the centred part of the full convolution: mode="same" for T >= window, and still T values when T < window
    count = np.convolve(found.astype(float), kernel)[first:first + len(boxes)]
    out = np.full_like(boxes, np.nan)
    for c in range(4):
        total = np.convolve(np.where(found, boxes[:, c], 0.0), kernel)[first:first + len(boxes)]
        out[:, c] = np.where(found, total / np.maximum(count, 1), np.nan)
    return out
