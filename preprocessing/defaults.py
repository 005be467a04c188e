"""Names and default settings that the command line shows, importable without NumPy.

``emonet --help`` lists the face detectors and the extraction defaults; reading them
from :mod:`preprocessing.faces` or :mod:`preprocessing.extraction` would import
NumPy, SciPy and librosa first (about a second). The values live here, once: those
modules import them from this one, which imports nothing.
"""

#: Face detector names accepted by :func:`preprocessing.faces.make_detector`.
DETECTORS = ("haar", "mtcnn")

#: Chosen from the measurements in experiments/results/faces.json (see :mod:`preprocessing.faces`).
DEFAULT_DETECTOR = "haar"

# Defaults of preprocessing.extraction.ExtractParams (its docstring describes each one).

#: Longest side in pixels of the frames faces are detected on.
ANALYSIS_SIDE = 320

#: Side in pixels of the stored square face crops.
CROP_SIZE = 64

#: Border around the detected face, as a fraction of its size per side (10%: records
#: mead_video_only_margin0{25,10}.json, crema_d_margin0{25,10}.json).
MARGIN = 0.1

#: Run the detector on every n-th frame (5 = five times per second at 25 fps).
DETECT_EVERY = 5

#: Cap on stored frames per clip (150 = 6 s at 25 fps); longer clips are sampled uniformly.
MAX_FRAMES = 150
