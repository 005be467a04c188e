"""EmoNet: audio-visual emotion recognition (features -> model -> predictions)."""

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError, EmonetError, MediaError, ModelError, StoreError

__all__ = ["CLASSES", "ConfigError", "EmonetError", "MediaError", "ModelError", "StoreError"]
__version__ = "0.1.0"
