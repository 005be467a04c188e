"""Face detection, tracking and cropping for decoded clips.

Two offline detectors are available by name; neither downloads anything:

- ``"haar"``: OpenCV's frontal-face Haar cascade (the XML ships inside the
  ``opencv-python-headless`` 4.x wheel; 5.0 removed ``CascadeClassifier``),
  with the ``alt2`` cascade as a second try. Milliseconds per frame, no
  TensorFlow in the worker processes.
- ``"mtcnn"``: MTCNN from the ``mtcnn`` wheel (MIT, weights inside), more
  robust to pose and blur but ~45-60 ms per 320 px frame (0.24 s at
  512x512) and TensorFlow in every worker; imported only when first used.

The default is ``"haar"``, chosen from ``experiments/bench_faces.py``
(record: ``experiments/results/faces.json``): detection on every 5th frame of
each clip, longest side <= 320 px, one process on this 2-core CPU machine.

================  ======  ============  =============  ============  =============
folder            frames  haar found    haar ms/call   mtcnn found   mtcnn ms/call
================  ======  ============  =============  ============  =============
crema_d (6)           67  100.0 %       21.8           100.0 %       56.1
mead (7)             234  100.0 %       25.2           100.0 %       56.4
mead_video_only      514  100.0 %       26.9            99.6 %       57.6
selfrecorded (3)      43  100.0 %       23.1           100.0 %       57.0
composite (42)       772  100.0 %        8.4           100.0 %       46.0
================  ======  ============  =============  ============  =============

(ms are medians of single detect() calls.) Every box of both detectors was
plausible (inside the frame, shorter side > 10 % of the frame's, aspect
0.5-2) and the two agree (median IoU 0.70-0.81; Haar's box has ~1.24x the
area of MTCNN's, centred ~2 % of its height higher). With equal detection rates the tie goes to
speed: Haar is 2.2-5.5x faster and keeps TensorFlow out of the extraction
worker processes. With a full search on every 5th frame, ``crop_faces`` cost
~0.8 s per 100 frames of CREMA-D (320x240), almost all of it the 20 detections;
the guided re-detection below cuts that 5-7x (faces.json "tracking": tracked
face on 100 % of the frames where per-frame Haar finds one, box IoU with it
0.93-0.95 median against 0.98 before; the shipped model's predictions on the
36 real clips unchanged, real_clips_emonet-base-guided.json). Weakness: these
clips are frontal with large faces; on small, turned or dark faces (AFEW
films) MTCNN may find more, so ``detector="mtcnn"`` stays available.

The detector runs on every ``detect_every``-th frame (5 times a second at
25 fps), after the first find as a guided re-detection around the previous box
(:meth:`HaarDetector.detect_near`: the region downscaled so the face is ~48 px,
about a tenth of a full search; the full search runs again when it misses).
Boxes are interpolated between detections (not across a cut), held for up to
``max_gap`` frames beyond the first and last one, and smoothed with a moving
average; frames too far from any detection get a centre crop and
``found = False`` (:mod:`preprocessing.tracking`).

Examples
--------
>>> crops = crop_faces(frames, crop_size=64)          # doctest: +SKIP
>>> crops.crops.shape, crops.found.mean()             # doctest: +SKIP
((75, 64, 64, 3), 1.0)
"""

import dataclasses
import functools

import numpy as np

from .defaults import DEFAULT_DETECTOR, DETECTORS
from .errors import ConfigError
from .tracking import box_iou, check_frames, track_faces  # noqa: F401 - box_iou re-exported

#: Smallest face searched for, as a fraction of the image's shorter side.
MIN_FACE_FRACTION = 0.12

# Guided re-detection (HaarDetector.detect_near), chosen on the real clips and 110 composite
# clips (experiments/bench_faces.py, record faces.json "tracking"): about 10x cheaper than a
# full detection, box IoU ~0.9 with it on the same frame.

#: The region searched is the previous box grown by this fraction of its side on every side.
GUIDE_PAD = 0.5
#: The region is downscaled (never upscaled) so that the previous face is this many pixels wide.
GUIDE_FACE_SIDE = 48
#: Faces between these multiples of the previous box's side are searched.
GUIDE_SCALES = (0.8, 1.25)
#: Haar boxes found on the downscaled region come out this much wider than on the full
#: frame (measured 1.04-1.06 at GUIDE_FACE_SIDE = 48); they are shrunk by it about their centre.
GUIDE_SIZE_BIAS = 1.05


def _check_image(image, who):
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ConfigError(f"{who}.detect: image must be uint8 of shape (H, W, 3); received {dtype} {shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ConfigError(f"{who}.detect: image height and width must be >= 1; received shape {image.shape}")


class FaceDetector:
    """Base of the detectors: checks the image, then asks the subclass for its best box.

    Subclasses set ``name`` and implement ``_best_box(image) -> (x, y, w, h) or None``.
    """

    name = None

    def detect(self, image):
        """Best face box ``(x0, y0, x1, y1)`` float32 in pixels of an RGB image, or None.

        Parameters
        ----------
        image : np.ndarray [shape=(H, W, 3), dtype=uint8]
        """
        _check_image(image, self.name)
        box = self._best_box(image)
        if box is None:
            return None
        x, y, w, h = box
        return np.array([max(0, x), max(0, y), x + w, y + h], np.float32)

    def _best_box(self, image):
        raise NotImplementedError


class HaarDetector(FaceDetector):
    """OpenCV Haar cascades: frontal-face default, then alt2 if nothing was found; the largest face."""

    name = "haar"
    _CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml")

    def __init__(self):
        self._cascades = None

    def _load(self):
        import cv2
        cascades = []
        for file_name in self._CASCADES:
            cascade = cv2.CascadeClassifier(cv2.data.haarcascades + file_name)
            if cascade.empty():
                raise ConfigError(f"haar detector: cascade {file_name} missing from the OpenCV wheel")
            cascades.append(cascade)
        return cascades

    def _best_box(self, image):
        import cv2
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        side = int(MIN_FACE_FRACTION * min(grey.shape))
        return self._largest_face(grey, side)

    def _largest_face(self, grey, min_side, max_side=None):
        """The largest face ``(x, y, w, h)`` in px of ``grey`` found by the first cascade that finds any, or None."""
        if self._cascades is None:
            self._cascades = self._load()
        sizes = {"minSize": (min_side, min_side)}
        if max_side is not None:
            sizes["maxSize"] = (max_side, max_side)
        for cascade in self._cascades:
            boxes = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, **sizes)
            if len(boxes):
                return max(boxes, key=lambda b: b[2] * b[3])
        return None

    def detect_near(self, image, box):
        """Face box ``(x0, y0, x1, y1)`` float32 in pixels near a previous ``box``, or None: the cheap re-detection.

        Searches only the region around ``box`` (:data:`GUIDE_PAD`), downscaled so the previous
        face is :data:`GUIDE_FACE_SIDE` px wide, for faces of :data:`GUIDE_SCALES` times its
        size. None means the face left that region (a cut, a fast move): call :meth:`detect`.

        Parameters
        ----------
        image : np.ndarray [shape=(H, W, 3), dtype=uint8]
        box : array-like of 4 floats, (x0, y0, x1, y1) in pixels of ``image``
        """
        import cv2
        _check_image(image, self.name)
        x0, y0, x1, y1 = (float(v) for v in box)
        side = max(x1 - x0, y1 - y0)
        if not side > 1:
            return None
        height, width = image.shape[:2]
        left, top = max(0, int(x0 - GUIDE_PAD * side)), max(0, int(y0 - GUIDE_PAD * side))
        right = min(width, int(np.ceil(x1 + GUIDE_PAD * side)))
        bottom = min(height, int(np.ceil(y1 + GUIDE_PAD * side)))
        scale = min(1.0, GUIDE_FACE_SIDE / side)
        if min(right - left, bottom - top) * scale < GUIDE_SCALES[0] * GUIDE_FACE_SIDE:
            return None
        grey = cv2.cvtColor(image[top:bottom, left:right], cv2.COLOR_RGB2GRAY)
        if scale < 1:
            grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(grey)
        low, high = int(GUIDE_SCALES[0] * side * scale), int(np.ceil(GUIDE_SCALES[1] * side * scale))
        found = self._largest_face(grey, low, high)
        if found is None:
            return None
        x, y, w, h = (float(v) for v in found)
        shrink = GUIDE_SIZE_BIAS if scale < 1 else 1.0
        cx, cy, half_w, half_h = x + w / 2, y + h / 2, w / 2 / shrink, h / 2 / shrink
        return np.array([left + (cx - half_w) / scale, top + (cy - half_h) / scale,
                         left + (cx + half_w) / scale, top + (cy + half_h) / scale], np.float32)


class MtcnnDetector(FaceDetector):
    """MTCNN from the ``mtcnn`` wheel (TensorFlow); the most confident face."""

    name = "mtcnn"

    def __init__(self, *, min_confidence=0.9):
        self.min_confidence = min_confidence
        self._model = None

    def _best_box(self, image):
        if self._model is None:
            from mtcnn import MTCNN
            self._model = MTCNN()
        faces = [f for f in self._model.detect_faces(image) if f.get("confidence", 0) >= self.min_confidence]
        if not faces:
            return None
        return max(faces, key=lambda f: f["confidence"])["box"]


def make_detector(name):
    """A face detector by name (see :data:`DETECTORS`); an object passes through unchanged."""
    if not isinstance(name, str):
        if not hasattr(name, "detect"):
            raise ConfigError(f"detector: must be a name or have a detect() method; received {type(name).__name__}")
        return name
    if name == "haar":
        return HaarDetector()
    if name == "mtcnn":
        return MtcnnDetector()
    raise ConfigError(f"detector: must be one of {', '.join(DETECTORS)}; received {name!r}")


@functools.lru_cache(maxsize=None)
def process_detector(name):
    """This process's face detector called ``name``, made once per process (models load once, not once per clip)."""
    return make_detector(name)


@dataclasses.dataclass
class FaceCrops:
    """Face crops of a clip.

    Attributes
    ----------
    crops : np.ndarray [shape=(T, S, S, 3), dtype=uint8]
    found : np.ndarray [shape=(T,), dtype=bool]
        False where no face was tracked and the crop is the centre of the frame.
    boxes : np.ndarray [shape=(T, 4), dtype=float32]
        Tracked face box (x0, y0, x1, y1) in frame pixels; NaN where not found.
    """

    crops: np.ndarray
    found: np.ndarray
    boxes: np.ndarray


def square_crop(frame, box, *, crop_size, margin):
    """Square crop around ``box`` (side = max(w, h) * (1 + 2 * margin)), edge-padded, resized.

    Returns
    -------
    np.ndarray [shape=(crop_size, crop_size, 3), dtype=uint8]
    """
    import cv2
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(2.0, max(x1 - x0, y1 - y0) * (1 + 2 * margin))
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    size = int(round(side))
    pad = max(0, -left, -top, left + size - w, top + size - h)
    if pad:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        left, top = left + pad, top + pad
    patch = frame[top:top + size, left:left + size]
    return cv2.resize(patch, (crop_size, crop_size), interpolation=cv2.INTER_AREA)


def centre_box(height, width):
    """The largest centred square (x0, y0, x1, y1) of a frame."""
    side = min(height, width)
    x0, y0 = (width - side) / 2, (height - side) / 2
    return np.array([x0, y0, x0 + side, y0 + side], np.float32)


def crop_faces(frames, *, detector=None, crop_size=64, margin=0.1, detect_every=5, max_gap=25):
    """Track the face through a clip and crop it from every frame.

    Parameters
    ----------
    frames : np.ndarray [shape=(T, H, W, 3), dtype=uint8]
    detector : str, detector object or None
        A name from :data:`DETECTORS`, an object with ``detect(image)`` (reuse one
        across clips: models load once per object), or None for
        :data:`DEFAULT_DETECTOR`.
    crop_size : int
        Output side in pixels.
    margin : float
        Border added on each side, as a fraction of the face box size: the crop
        is the square of side ``max(w, h) * (1 + 2 * margin)`` centred on the
        face box; parts outside the frame are filled by repeating the edge
        pixels (``cv2.BORDER_REPLICATE``), so the face stays centred.
    detect_every, max_gap : int
        See :func:`track_faces`.

    Returns
    -------
    FaceCrops
        Frames without a tracked face get the centre square of the frame, ``found = False``.
    """
    frames = check_frames(frames)
    if crop_size < 8:
        raise ConfigError(f"crop_faces: crop_size must be >= 8; received {crop_size}")
    if not margin >= 0:
        raise ConfigError(f"crop_faces: margin must be >= 0; received {margin}")
    detector = make_detector(DEFAULT_DETECTOR if detector is None else detector)
    boxes, found = track_faces(frames, detector=detector, detect_every=detect_every,
                               max_gap=max_gap)
    crops = np.zeros((len(frames), crop_size, crop_size, 3), np.uint8)
    fallback = centre_box(*frames.shape[1:3]) if len(frames) else None
    for i, frame in enumerate(frames):
        crops[i] = square_crop(frame, boxes[i] if found[i] else fallback, crop_size=crop_size,
                               margin=margin if found[i] else 0.0)
    return FaceCrops(crops=crops, found=found, boxes=boxes)
