"""EmoNet: audio-visual emotion recognition (features -> model -> predictions).

``emonet.predict(clips)`` and ``emonet.load_model(path=None)`` (:mod:`emonet.inference.api`)
are imported on first use, so ``import emonet`` stays cheap (no TensorFlow).
"""

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError, EmonetError, MediaError, ModelError, StoreError

__all__ = ["CLASSES", "ConfigError", "EmonetError", "MediaError", "ModelError", "StoreError",
           "load_model", "predict"]
__version__ = "0.1.0"

#: Names served lazily from emonet.inference.api.
LAZY_API = ("predict", "load_model", "Predictions", "EmotionModel")


def __getattr__(name):
    if name in LAZY_API:
        from emonet.inference import api
        return getattr(api, name)
    raise AttributeError(f"module 'emonet' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(LAZY_API))
