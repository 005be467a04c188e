"""How sure a branch may say it is: a temperature on its logits, fitted out of fold.

A network trained to near-zero loss on the speakers it heard says 93% where it is right 74% of the
time on speakers it never heard (the shipped voice's recipe out of fold over 52 speakers,
``voice_refit_cv.json``; docs/DESIGN.md, "Calibrated voice"). Dividing its logits by a temperature ``T > 1`` keeps every decision (the
order of the classes is unchanged) and makes the probabilities mean what they say, which the
user reads and the fusion pools.

- :func:`fit_temperature`: the ``T`` that maximises the likelihood of out-of-fold predictions;
- :func:`fit_run_temperature`: ``train.calibrate``, a run's temperature fitted on its validation split
  (``calibration.json``), which :class:`~emonet.inference.trained_run.TrainedRun` then applies;
- :func:`emonet.nn.temperature.tempered` and :func:`~emonet.nn.temperature.temper_output` apply one.
"""

import numpy as np
import scipy.optimize

from emonet.evaluation.evaluate import validation_readings
from emonet.nn.temperature import FLOOR, temper_output, tempered

__all__ = ["TEMPERATURE_BOUNDS", "fit_temperature", "fit_run_temperature", "temper_output", "tempered"]

#: Temperatures :func:`fit_temperature` searches (log-uniformly).
TEMPERATURE_BOUNDS = (0.25, 10.0)


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
    low, high = np.log(TEMPERATURE_BOUNDS)
    result = scipy.optimize.minimize_scalar(lambda log_t: _log_loss(readings, labels, np.exp(log_t)),
                                            bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def fit_run_temperature(run):
    """``train.calibrate``: fit the temperature of a trained run on its validation split and write
    ``calibration.json`` (atomically; the one file that makes the run calibrated).

    The validation split is the one that chose the run's epochs: the decisions and the scores it gives
    do not move (a temperature keeps the order of the classes), but the calibration figures the run's
    own evaluation then reports are in-sample for ``T``; ``emonet evaluate`` on other data measures it.
    A run that has ``calibration.json`` is left as it is (an interrupted run resumes).

    Parameters
    ----------
    run : emonet.experiment.rundir.RunDir
        A trained run (``model.keras`` written).

    Returns
    -------
    dict
        The content of ``calibration.json``: ``temperature`` (float), ``split``, ``n`` (clips), ``readings``
        (1 + speed copies per clip), ``log_loss_before`` and ``log_loss_after`` (nats, on that split).
    """
    if run.temperature() is not None:  # ModelError for a broken record
        return run.read_json(run.calibration_path)
    labels, readings, split = validation_readings(run)
    temperature = fit_temperature(np.stack(readings), labels)
    record = {"temperature": temperature, "split": split, "n": int(len(labels)), "readings": len(readings),
              "log_loss_before": _log_loss(readings, labels, 1.0),
              "log_loss_after": _log_loss(readings, labels, temperature)}
    run.write_json(run.calibration_path, record)
    return record


def _log_loss(readings, labels, temperature):
    """Mean negative log-probability (nats) of ``labels`` (n,) under the mean of the K tempered readings
    (K, n, C) (what :func:`fit_temperature` minimises); None when ``n`` is 0."""
    if len(labels) == 0:
        return None
    mean = np.mean([tempered(reading, temperature) for reading in readings], axis=0)
    return float(-np.mean(np.log(np.maximum(mean[np.arange(len(labels)), labels], FLOOR))))
