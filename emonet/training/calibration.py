"""How sure a branch may say it is: a temperature on its logits, fitted out of fold.

A network trained to near-zero loss on the speakers it heard says 93% where it is right 74% of the
time on speakers it never heard (the shipped voice's recipe out of fold over 52 speakers,
``voice_refit_cv.json``; docs/DESIGN.md, "Calibrated voice"). Dividing its logits by a temperature ``T > 1`` keeps every decision (the
order of the classes is unchanged) and makes the probabilities mean what they say, which the
user reads and the fusion pools.

- :func:`fit_temperature`: the ``T`` that maximises the likelihood of out-of-fold predictions;
- :func:`tempered`: probabilities as the tempered network gives them;
- :func:`temper_output`: a Keras classifier's output layer rescaled in place, so the saved model
  gives the tempered probabilities itself.
"""

import numpy as np
import scipy.optimize

from emonet.nn.names import OUTPUT_NAME

#: Temperatures :func:`fit_temperature` searches (log-uniformly).
TEMPERATURE_BOUNDS = (0.25, 10.0)
#: Probabilities are floored here before their log (a float32 softmax can round to 0).
FLOOR = 1e-30


def tempered(probabilities, temperature):
    """``softmax(log(probabilities) / temperature)`` row by row: (n, C) probabilities -> (n, C) probabilities."""
    logits = np.log(np.maximum(np.asarray(probabilities, np.float64), FLOOR)) / float(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def fit_temperature(probabilities, labels):
    """The temperature that maximises the mean log-probability of ``labels`` under :func:`tempered`.

    Parameters
    ----------
    probabilities : array [shape=(n, C) or (K, n, C)]
        Out-of-fold predictions (each from a model that never saw the clip's speaker); rows sum to 1.
        With K readings of each clip (e.g. the clip and its test-time speed copies), the prediction is
        the mean of the K tempered ones, as ``emonet predict`` averages them.
    labels : array of int [shape=(n,)]

    Returns
    -------
    float
        In :data:`TEMPERATURE_BOUNDS`; 1.0 when ``n`` is 0.
    """
    labels = np.asarray(labels, int)
    if len(labels) == 0:
        return 1.0
    readings = np.asarray(probabilities, np.float64)
    readings = readings[None] if readings.ndim == 2 else readings
    rows = np.arange(len(labels))

    def negative_log_likelihood(log_t):
        mean = np.mean([tempered(p, np.exp(log_t)) for p in readings], axis=0)
        return -np.mean(np.log(np.maximum(mean[rows, labels], FLOOR)))

    low, high = np.log(TEMPERATURE_BOUNDS)
    result = scipy.optimize.minimize_scalar(negative_log_likelihood, bounds=(low, high), method="bounded",
                                            options={"xatol": 1e-4})
    return float(np.exp(result.x))


def temper_output(model, temperature):
    """Divide the logits of ``model``'s softmax output layer (:data:`OUTPUT_NAME`) by ``temperature``, in place.

    The layer's kernel and bias are scaled by ``1 / temperature``: its probabilities become
    :func:`tempered` of the old ones (up to float32 rounding). Returns ``model``.
    """
    layer = model.get_layer(OUTPUT_NAME)
    layer.set_weights([w / np.float32(temperature) for w in layer.get_weights()])
    return model
