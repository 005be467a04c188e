"""A temperature on a classifier's logits: probabilities that say how sure it is, decisions unchanged.

Dividing the logits by ``T > 1`` flattens the probabilities and keeps the order of the classes, so
every decision stays the same. :mod:`emonet.training.calibration` fits ``T``; this module applies it:

- :func:`tempered`: probabilities as the tempered classifier gives them (NumPy, any run mode);
- :func:`temper_output`: a Keras classifier's softmax Dense layer rescaled in place, so the saved
  model gives the tempered probabilities itself (how emonet-base's voice ships).
"""

import numpy as np

from emonet.nn.names import OUTPUT_NAME

#: Probabilities are floored here before their log (a float32 softmax can round to 0).
FLOOR = 1e-30


def tempered(probabilities, temperature):
    """``softmax(log(probabilities) / temperature)`` row by row: (n, C) probabilities -> (n, C) probabilities."""
    logits = np.log(np.maximum(np.asarray(probabilities, np.float64), FLOOR)) / float(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def temper_output(model, temperature):
    """Divide the logits of ``model``'s softmax output layer (:data:`OUTPUT_NAME`, a Dense) by ``temperature``,
    in place.

    The layer's kernel and bias are scaled by ``1 / temperature``: its probabilities become
    :func:`tempered` of the old ones (up to float32 rounding). Returns ``model``.
    """
    layer = model.get_layer(OUTPUT_NAME)
    layer.set_weights([w / np.float32(temperature) for w in layer.get_weights()])
    return model
