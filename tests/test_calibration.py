"""A branch's temperature: fitted on out-of-fold predictions, written into the Keras model itself, and a run's
``train.calibrate`` temperature, fitted on its validation split and applied wherever the run is read."""

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


def test_train_calibrate_fits_a_temperature_on_the_val_split_that_every_reader_applies(audio_run, tmp_path):
    """``train.calibrate: true``: calibration.json after training; evaluate and predict read tempered
    probabilities, decisions unchanged; an interrupted run keeps its record; a broken record is refused."""
    import json

    import yaml

    from emonet.cli import main
    from emonet.evaluation.evaluate import validation_readings
    from emonet.experiment.rundir import RunDir
    from emonet.inference.trained_run import TrainedRun
    from emonet.training.calibration import fit_run_temperature
    from preprocessing.errors import ModelError
    from stripes_corpus import run_config

    trained, root = audio_run
    config = run_config(tmp_path, root, "audio", "tones", model_overrides={"audio_units": [24], "head_units": []},
                        train_overrides={"calibrate": True, "epochs": 20})
    cfg = yaml.safe_load(config.read_text())
    cfg["data"]["store"] = str(trained.parent.parent / "tones.h5")  # the fixture's extracted store
    config.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(config)]) == 0
    run = RunDir(tmp_path / "runs" / "tones-seed0")

    record = json.loads(run.calibration_path.read_text())
    labels, readings, split = validation_readings(run)
    assert (record["split"], record["n"], record["readings"]) == (split, len(labels), 1)
    assert TEMPERATURE_BOUNDS[0] <= record["temperature"] <= TEMPERATURE_BOUNDS[1]
    assert record["temperature"] == pytest.approx(fit_temperature(np.stack(readings), labels), rel=1e-6)
    assert record["log_loss_after"] <= record["log_loss_before"] + 1e-9

    metrics = json.loads(run.metrics_path.read_text())
    assert metrics["temperature"] == record["temperature"]
    assert metrics["report"]["log_loss"] == pytest.approx(record["log_loss_after"], abs=1e-3)
    model = TrainedRun(run)
    assert model.temperature == record["temperature"]
    proba = np.asarray([[float(v) for v in line.split(",")[4:]]
                        for line in (run.path / "predictions.csv").read_text().splitlines()[1:]])
    np.testing.assert_allclose(proba, tempered(readings[0], record["temperature"]), atol=1e-4)
    np.testing.assert_array_equal(proba.argmax(1), readings[0].argmax(1))

    before = run.calibration_path.stat().st_mtime_ns
    assert fit_run_temperature(run) == record  # resumed: the record stands, nothing is fitted again
    assert run.calibration_path.stat().st_mtime_ns == before

    run.calibration_path.write_text('{"temperature": -2}')
    with pytest.raises(ModelError, match="calibration.json.*positive"):
        TrainedRun(run)
    run.calibration_path.write_text("{not json")
    with pytest.raises(ModelError, match="calibration.json: not valid JSON"):
        TrainedRun(run)


def test_train_calibrate_must_be_true_or_false(tmp_path):
    from emonet.experiment.config import load_config
    from preprocessing.errors import ConfigError
    config = tmp_path / "c.yaml"
    config.write_text("data: {root: clips}\ntrain: {calibrate: 'yes'}\n")
    with pytest.raises(ConfigError, match="train.calibrate must be one of True, False"):
        load_config(config)
