"""The resumable epoch loop: checkpoints, early stopping on UAR, resume after an interruption."""

import csv
import json

import keras
import numpy as np
import pytest

from emonet.training.loop import EpochLoop, learning_rate, make_optimizer, uar


def test_uar_is_the_mean_of_per_class_recall():
    y_true = np.array([0] * 9 + [1])
    y_pred = np.zeros(10, int)
    assert uar(y_true, y_pred) == 0.5 and np.mean(y_true == y_pred) == 0.9


@pytest.mark.parametrize("schedule,epoch,expected", [("cosine", 0, 1.0), ("cosine", 10, 0.02), ("constant", 7, 1.0)])
def test_learning_rate(schedule, epoch, expected):
    assert learning_rate(schedule, 1.0, epoch, 10, 1.0) == pytest.approx(expected)


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    model.compile(optimizer=make_optimizer("sgd", 0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_interrupted_loop_resumes_where_it_stopped(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype("float32")
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)

    def fit_epoch(model, epoch):
        if epoch == 2 and not resumed:
            raise KeyboardInterrupt
        return {k: v[-1] for k, v in model.fit(x, y, epochs=1, verbose=0).history.items()}

    def score(model):
        return uar(y, model.predict(x, verbose=0).argmax(axis=1), n_classes=3)

    resumed = False
    loop = EpochLoop(tmp_path, stage="toy", epochs=5, patience=0, schedule="cosine", base_lr=0.1, log=lambda m: None)
    with pytest.raises(KeyboardInterrupt):
        loop.run(_model(), fit_epoch, score)
    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 2
    resumed = True
    messages = []
    loop = EpochLoop(tmp_path, stage="toy", epochs=5, patience=0, schedule="cosine", base_lr=0.1, log=messages.append)
    model = loop.resume_model(_model())
    assert "resuming after epoch 2" in messages[0]
    best = loop.run(model, fit_epoch, score)
    with open(tmp_path / "log.csv") as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == [1, 2, 3, 4, 5]
    assert loop.done and score(best) == pytest.approx(loop.state["best_uar"])


def test_early_stopping_on_stalled_uar(tmp_path):
    loop = EpochLoop(tmp_path, stage="toy", epochs=50, patience=3, schedule="constant", base_lr=0.01,
                     log=lambda m: None)
    loop.run(_model(), lambda model, epoch: {"loss": 1.0}, lambda model: 0.5)
    assert loop.state["epoch"] == 4 and loop.state["best_epoch"] == 1


def test_a_refining_stage_keeps_its_start_model_unless_an_epoch_beats_it(tmp_path):
    start = _model()
    weights = [w.copy() for w in start.get_weights()]
    scores = iter([0.6, 0.5, 0.55])  # start model, epoch 1, epoch 2

    def worsen(model, epoch):
        model.set_weights([w + 1.0 for w in model.get_weights()])
        return {"loss": 1.0}

    loop = EpochLoop(tmp_path / "kept", stage="toy", epochs=2, patience=0, schedule="constant", base_lr=0.1,
                     log=lambda m: None)
    loop.start_from(start, lambda model: next(scores))
    best = loop.run(start, worsen, lambda model: next(scores))
    assert loop.state["best_epoch"] == 0 and loop.state["best_uar"] == 0.6 and loop.state["epoch"] == 2
    for got, expected in zip(best.get_weights(), weights):
        np.testing.assert_array_equal(got, expected)

    loop = EpochLoop(tmp_path / "beaten", stage="toy", epochs=2, patience=0, schedule="constant", base_lr=0.1,
                     log=lambda m: None)
    scores = iter([0.4, 0.5, 0.45])
    loop.start_from(_model(), lambda model: next(scores))
    loop.start_from(_model(), lambda model: pytest.fail("scored twice"))  # recorded already (resume)
    loop.run(_model(), worsen, lambda model: next(scores))
    assert loop.state["best_epoch"] == 1 and loop.state["best_uar"] == 0.5


def test_resume_restores_the_optimizer_state(tmp_path):
    """Adam's moments and step count survive a checkpoint, so a resumed run does not restart momentum."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 3, size=32)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    model.compile(optimizer=make_optimizer("adam", 0.01, weight_decay=1e-4), loss="sparse_categorical_crossentropy")
    loop = EpochLoop(tmp_path, stage="toy", epochs=2, patience=0, schedule="constant", base_lr=0.01,
                     log=lambda m: None)
    loop.run(model, lambda m, e: {k: v[-1] for k, v in m.fit(x, y, epochs=1, verbose=0).history.items()},
             lambda m: 0.5)
    loop.state["epoch"] = 1  # as if interrupted after the last checkpoint
    resumed = loop.resume_model(None)
    assert int(resumed.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) > 0
    saved = [v.numpy() for v in model.optimizer.variables]
    restored = [v.numpy() for v in resumed.optimizer.variables]
    assert len(saved) == len(restored) and all(np.array_equal(a, b) for a, b in zip(saved, restored))
    assert any(np.any(a != 0) for a in restored[2:])   # the moments are not fresh zeros
