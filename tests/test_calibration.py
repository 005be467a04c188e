"""A branch's temperature: fitted on out-of-fold predictions, and written into the Keras model itself."""

import numpy as np
import pytest

from emonet.training.calibration import TEMPERATURE_BOUNDS, fit_temperature, temper_output, tempered


def overconfident_predictions(true_temperature, n=4000, classes=7, seed=0):
    """Probabilities of a model ``true_temperature`` times too sure of itself, and labels drawn from the truth."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, size=(n, classes))
    logits[np.arange(n), rng.integers(0, classes, n)] += 2.0
    truth = np.exp(logits - logits.max(1, keepdims=True))
    truth /= truth.sum(1, keepdims=True)
    labels = np.array([rng.choice(classes, p=row) for row in truth])
    said = np.exp(true_temperature * (logits - logits.max(1, keepdims=True)))
    return said / said.sum(1, keepdims=True), labels


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 3.0])
def test_fit_temperature_recovers_how_overconfident_a_model_is(true_temperature):
    probabilities, labels = overconfident_predictions(true_temperature)
    fitted = fit_temperature(probabilities, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.1)
    # two identical readings of each clip (a clip and a copy heard alike): their mean is the same prediction
    assert fit_temperature(np.stack([probabilities, probabilities]), labels) == pytest.approx(fitted, rel=1e-3)
    rows = np.arange(len(labels))
    assert (np.mean(np.log(tempered(probabilities, fitted)[rows, labels]))
            >= np.mean(np.log(probabilities[rows, labels])) - 1e-9)


def test_tempering_keeps_every_decision_and_an_empty_set_keeps_the_model():
    probabilities, labels = overconfident_predictions(3.0, n=200)
    softer = tempered(probabilities, 3.0)
    np.testing.assert_array_equal(softer.argmax(1), probabilities.argmax(1))
    np.testing.assert_allclose(softer.sum(1), 1.0)
    assert softer.max(1).mean() < probabilities.max(1).mean()
    np.testing.assert_allclose(tempered(probabilities, 1.0), probabilities, atol=1e-12)
    assert fit_temperature(np.zeros((0, 7)), np.zeros(0, int)) == 1.0
    assert TEMPERATURE_BOUNDS[0] <= fit_temperature(probabilities, labels) <= TEMPERATURE_BOUNDS[1]


def test_temper_output_makes_the_saved_model_give_the_tempered_probabilities(tmp_path):
    from emonet.nn.io import load_model, save_model_atomically
    from emonet.nn.models import build_emonet
    model = build_emonet(mode="audio", audio_dim=12, audio_units=[16], head_units=[])
    weights = [np.random.default_rng(1).normal(0, 2.0, w.shape).astype(np.float32) for w in model.get_weights()]
    model.set_weights(weights)
    x = np.random.default_rng(2).normal(size=(32, 12)).astype(np.float32)
    before = np.asarray(model.predict(x, verbose=0))
    temper_output(model, 2.5)
    save_model_atomically(model, tmp_path / "model.keras")
    after = np.asarray(load_model(tmp_path / "model.keras", compile=False).predict(x, verbose=0))
    np.testing.assert_allclose(after, tempered(before, 2.5), atol=1e-5)
    np.testing.assert_array_equal(after.argmax(1), before.argmax(1))
