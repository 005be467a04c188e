"""EmoNet: audio-visual emotion recognition (features -> model -> predictions).

``emonet.predict(clips)`` and ``emonet.load_model(path=None)`` (:mod:`emonet.inference.api`)
and ``emonet.predict_timeline(path, window=2, hop=1)`` (:mod:`emonet.inference.timeline`)
are imported on first use, so ``import emonet`` stays cheap (no TensorFlow).
"""

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError, EmonetError, MediaError, ModelError, StoreError

__all__ = ["CLASSES", "ConfigError", "EmonetError", "MediaError", "ModelError", "StoreError",
           "load_model", "predict", "predict_timeline"]
__version__ = "0.1.0"

#: Names served lazily from emonet.inference.api.
LAZY_API = ("predict", "load_model", "Predictions", "EmotionModel")
#: Names served lazily from emonet.inference.timeline.
LAZY_TIMELINE = ("predict_timeline", "Timeline")


def __getattr__(name):
    if name in LAZY_API:
        from emonet.inference import api
        return getattr(api, name)
    if name in LAZY_TIMELINE:
        from emonet.inference import timeline
        return getattr(timeline, name)
    raise AttributeError(f"module 'emonet' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(LAZY_API) + list(LAZY_TIMELINE))
