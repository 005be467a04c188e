"""Saving and loading EmoNet's Keras models: ``.keras`` archives only, Keras safe mode, atomic saves."""

from pathlib import Path

import keras

from preprocessing.errors import ModelError, one_line
from preprocessing.files import atomic_path

# Importing this module registers every custom layer a saved model may hold (``emonet>ClassName``).
from emonet.nn import layers  # noqa: F401


def save_model_atomically(model, path):
    """Save a Keras model to ``path`` (``.keras``) through a temporary file (never half-written)."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    return Path(path)


def load_model(path, *, compile=True):
    """Load a ``.keras`` model saved from this module, in Keras safe mode.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.keras`` archive (``model.save("model.keras")``).
    compile : bool, default True
        Restore the optimizer, loss and metrics saved with the model.

    Returns
    -------
    keras.Model

    Raises
    ------
    ModelError
        The path is not a ``.keras`` file, does not exist, or Keras refuses it
        (corrupt archive, unsafe lambda, unknown layer).
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelError(f"load_model: model file must end in .keras; received: '{path}'")
    if not path.is_file():
        raise ModelError(f"load_model: model file does not exist: '{path}'")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=compile)
    except Exception as err:  # noqa: BLE001 -- any Keras/zip/h5 failure means "cannot load"
        raise ModelError(
            f"load_model: cannot load '{path}': {type(err).__name__}: {one_line(err)}"
        ) from err
