"""Still images as clips of one frame: decoding, and the face crop of a photo or of a face-crop corpus.

An image (:data:`~preprocessing.constants.IMAGE_SUFFIXES`) goes through
extraction, prediction and evaluation as a clip of one frame at
``frame_index`` 0, without audio (the silent audio vector, one MFCC row of
zeros). What its face crop is depends on the record:

- a user's photo: the face is detected as in a video frame (the image scaled
  to ``analysis_side``, then :func:`preprocessing.faces.crop_faces`); no face
  gives the centre crop and ``face_found`` False;
- a corpus of face crops (FER+, FER2013: ``ClipRecord.face_crop``): the whole
  image is the crop, resized to ``crop_size``; ``face_found`` True and the box
  is the whole image.

Images are decoded with OpenCV (``cv2.imdecode``), not ffmpeg: one call per
image instead of an ffmpeg process (whose start-up alone costs tens of
milliseconds; FER+ holds 32,137 images), and it reads grey, 16-bit and alpha
images alike, returned here as 8-bit RGB; JPEG EXIF orientation is applied.

Examples
--------
>>> arrays, attrs, notes = extract_still("photo.jpg", ExtractParams())   # doctest: +SKIP
>>> arrays["faces"].shape, attrs["n_frames"]                             # doctest: +SKIP
((1, 64, 64, 3), 1)
"""

from pathlib import Path

import numpy as np

from . import audio, faces, media
from .constants import FPS, IMAGE_SUFFIXES
from .errors import MediaError
from .probe import check_readable


def is_image(path):
    """True when ``path`` has a still-image suffix (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path):
    """Decode an image file into RGB.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    np.ndarray [shape=(H, W, 3), dtype=uint8]
        RGB; a grey image is repeated on the three channels.

    Raises
    ------
    MediaError
        The file is missing, empty, unreadable or not an image OpenCV can decode.
    """
    import cv2
    path = check_readable(path)
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise MediaError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise MediaError(f"{path}: not a readable image (OpenCV cannot decode it)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def resize(image, width, height):
    """``image`` resized to ``width`` x ``height`` (area averaging to shrink, bilinear to enlarge)."""
    import cv2
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrink = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def extract_still(image, params, *, face_crop=False, detector=None):
    """Everything the store keeps for a still image, as :func:`preprocessing.extraction.extract_clip` returns it.

    Parameters
    ----------
    image : np.ndarray [shape=(H, W, 3), dtype=uint8]
        RGB image (:func:`read_image`).
    params : preprocessing.extraction.ExtractParams
    face_crop : bool
        The image is the face crop: resize it, no detection.
    detector : object, optional
        A face detector to reuse (default: ``params.detector``).

    Returns
    -------
    arrays : dict of str to np.ndarray
        faces (1,S,S,3) uint8, face_found (1,), face_boxes (1,4) float32 (x0, y0, x1, y1
        in pixels of the analysis image: the image scaled to ``analysis_side``, or the
        image itself for a face crop), frame_index [0], optionally frames (1,S,S,3),
        audio_functionals (D,) zeros, mfcc (1, n_mfcc) zeros.
    attrs : dict
        As for a clip: duration 1/25 s, has_video True, has_audio False, audio_silent
        True, n_frames 1, source_fps 0, width and height of the image, rotation 0.
    notes : list of str
        "no face found" for a photo without a detected face; nothing else.
    """
    height, width = image.shape[:2]
    size = params.crop_size
    notes = []
    if face_crop:
        analysis = image
        crops = resize(image, size, size)[None]
        found = np.ones(1, bool)
        boxes = np.array([[0, 0, width, height]], np.float32)
    else:
        analysis = resize(image, *media.output_size(width, height, params.analysis_side))
        track = faces.crop_faces(analysis[None], detector=detector or params.detector, crop_size=size,
                                 margin=params.margin, detect_every=params.detect_every)
        crops, found, boxes = track.crops, track.found, track.boxes
        if not found.any():
            notes.append("no face found in the image: stored the centre crop")
    arrays = {"faces": crops, "face_found": found, "face_boxes": boxes.astype(np.float32),
              "frame_index": np.zeros(1, np.int32)}
    if params.keep_frames:
        arrays["frames"] = resize(analysis, size, size)[None]
    arrays["audio_functionals"] = audio.silent_functionals(n_mfcc=params.n_mfcc)
    arrays["mfcc"] = np.zeros((1, params.n_mfcc), np.float32)
    attrs = {
        "duration": 1.0 / FPS, "has_video": True, "has_audio": False, "audio_silent": True,
        "face_rate": float(found.mean()), "n_frames": 1, "source_fps": 0.0, "width": int(width),
        "height": int(height), "rotation": 0,
    }
    return arrays, attrs, notes
