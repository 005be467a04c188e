"""The resumable epoch loop: checkpoints, early stopping on UAR, LR schedules, resume after an interruption."""

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import collected_messages
from emonet.evaluation.metrics import uar
from emonet.nn.io import load_model
from emonet.training.loop import EpochLoop, cosine_learning_rate, make_optimizer


def test_uar_is_the_mean_of_per_class_recall():
    y_true = np.array([0] * 9 + [1])
    y_pred = np.zeros(10, int)
    assert uar(y_true, y_pred) == 0.5 and np.mean(y_true == y_pred) == 0.9


@pytest.mark.parametrize("epoch,expected", [(0, 1.0), (10, 0.02), (5, 0.51)])
def test_cosine_learning_rate_decays_to_two_percent(epoch, expected):
    assert cosine_learning_rate(epoch, base=1.0, epochs=10) == pytest.approx(expected)


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    model.compile(optimizer=make_optimizer("sgd", 0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _loop(folder, **settings):
    settings = {"stage": "toy", "epochs": 5, "patience": 0, "schedule": "cosine", "base_lr": 0.1, **settings}
    return EpochLoop(folder, **settings)


def _log_rows(folder):
    with open(folder / "log.csv") as handle:
        return list(csv.DictReader(handle))


def _toy_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype("float32")
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)
    return x, y


def test_interrupted_loop_resumes_where_it_stopped(tmp_path):
    x, y = _toy_data()

    def fit_epoch(model, epoch):
        if epoch == 2 and not resumed:
            raise KeyboardInterrupt
        return {k: v[-1] for k, v in model.fit(x, y, epochs=1, verbose=0).history.items()}

    def score(model):
        return uar(y, model.predict(x, verbose=0).argmax(axis=1), n_classes=3)

    resumed = False
    loop = _loop(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        loop.run(_model(), fit_epoch, score)
    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 2
    resumed = True
    loop = _loop(tmp_path)
    with collected_messages() as messages:
        model = loop.resume_model(_model())
    assert "resuming after epoch 2" in messages[0]
    best = loop.run(model, fit_epoch, score)
    rows = _log_rows(tmp_path)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert list(rows[0]) == ["epoch", "lr", "loss", "accuracy", "val_uar", "seconds"]
    assert [float(r["lr"]) for r in rows] == pytest.approx([cosine_learning_rate(e, base=0.1, epochs=5)
                                                            for e in range(5)], rel=1e-5)
    assert loop.done and score(best) == pytest.approx(loop.state["best_uar"])
    assert list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))


def test_a_plain_fit_stage_resumes_after_a_kill_with_the_same_stream(tmp_path):
    """One ``model.fit`` for all epochs; killed in epoch 3 (during validation), resumed from last.keras."""
    x, y = _toy_data()
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    calls = []

    def score(model):
        calls.append(1)
        if len(calls) == 3 and not resumed:
            raise KeyboardInterrupt
        return uar(y, model.predict(x, verbose=0).argmax(axis=1), n_classes=3)

    resumed = False
    with pytest.raises(KeyboardInterrupt):
        _loop(tmp_path / "killed").fit(_model(), data, score)
    assert json.loads((tmp_path / "killed" / "state.json").read_text())["epoch"] == 2
    resumed = True
    loop = _loop(tmp_path / "killed")
    loop.fit(loop.resume_model(_model()), data, score)
    whole = _loop(tmp_path / "whole")
    whole.fit(_model(), data, score)
    killed_rows, whole_rows = _log_rows(tmp_path / "killed"), _log_rows(tmp_path / "whole")
    assert [int(r["epoch"]) for r in killed_rows] == [1, 2, 3, 4, 5]
    assert [r["lr"] for r in killed_rows] == [r["lr"] for r in whole_rows]
    assert [float(r["loss"]) for r in killed_rows] == pytest.approx([float(r["loss"]) for r in whole_rows])
    assert loop.done and loop.state["best_epoch"] == whole.state["best_epoch"]


def test_a_plain_fit_stage_draws_one_pass_of_its_generator_per_epoch(tmp_path):
    """As the stage-one frame stream does: pass k of the generator is epoch k, seeded by it."""
    passes = []

    def generate():
        rng = np.random.default_rng([0, len(passes)])
        passes.append(len(passes))
        for _ in range(20):
            x = rng.normal(size=4).astype("float32")
            yield x, int(x[0] > 0)

    signature = (tf.TensorSpec((4,), tf.float32), tf.TensorSpec((), tf.int64))
    data = tf.data.Dataset.from_generator(generate, output_signature=signature).batch(8)
    loop = _loop(tmp_path, epochs=3)
    loop.fit(_model(), data, lambda model: 0.5, shuffle=False)
    assert passes == [0, 1, 2] and len(_log_rows(tmp_path)) == 3


def test_early_stopping_on_stalled_uar(tmp_path):
    loop = _loop(tmp_path, epochs=50, patience=3, schedule="constant", base_lr=0.01)
    loop.run(_model(), lambda model, epoch: {"loss": 1.0}, lambda model: 0.5)
    assert loop.state["epoch"] == 4 and loop.state["best_epoch"] == 1


@pytest.mark.parametrize("keep", ["best", "last"])
def test_a_stage_returns_its_best_or_its_last_epoch(tmp_path, keep):
    x, y = _toy_data()
    scores = iter([0.9, 0.2, 0.3, 0.1, 0.4])  # epoch 1 is the best, epoch 5 the last

    def fit_epoch(model, epoch):
        return {k: v[-1] for k, v in model.fit(x, y, epochs=1, verbose=0).history.items()}

    loop = _loop(tmp_path / keep, keep=keep)
    kept = loop.run(_model(), fit_epoch, lambda model: next(scores))
    expected = load_model((tmp_path / keep / ("best.keras" if keep == "best" else "last.keras")), compile=False)
    other = load_model((tmp_path / keep / ("last.keras" if keep == "best" else "best.keras")), compile=False)
    assert loop.state["best_epoch"] == 1 and loop.state["epoch"] == 5
    assert all(np.array_equal(a, b) for a, b in zip(kept.get_weights(), expected.get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(kept.get_weights(), other.get_weights()))
    again = _loop(tmp_path / keep, keep=keep).kept_model()  # a finished stage reloads the same model
    assert all(np.array_equal(a, b) for a, b in zip(again.get_weights(), expected.get_weights()))


def test_plateau_halves_the_rate_and_a_resumed_run_stops_as_the_whole_one(tmp_path):
    """patience 6: halve after every 2 stale epochs, stop after 6; the counters survive an interruption."""
    uars = [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.9]

    def fit_epoch(model, epoch):
        if epoch == 3 and not resumed:
            raise KeyboardInterrupt
        return {"loss": 1.0}

    resumed = True
    whole = _loop(tmp_path / "whole", epochs=9, patience=6, schedule="plateau")
    whole.run(_model(), fit_epoch, lambda model: uars[whole.state["epoch"]])
    resumed = False
    killed = _loop(tmp_path / "killed", epochs=9, patience=6, schedule="plateau")
    with pytest.raises(KeyboardInterrupt):
        killed.run(_model(), fit_epoch, lambda model: uars[killed.state["epoch"]])
    resumed = True
    killed = _loop(tmp_path / "killed", epochs=9, patience=6, schedule="plateau")
    killed.run(killed.resume_model(_model()), fit_epoch, lambda model: uars[killed.state["epoch"]])
    for folder, loop in ((tmp_path / "whole", whole), (tmp_path / "killed", killed)):
        rows = _log_rows(folder)
        assert [float(r["lr"]) for r in rows] == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
        assert loop.state["epoch"] == 8 and loop.state["best_epoch"] == 2 and loop.done


def test_a_refining_stage_keeps_its_start_model_unless_an_epoch_beats_it(tmp_path):
    start = _model()
    weights = [w.copy() for w in start.get_weights()]
    scores = iter([0.6, 0.5, 0.55])  # start model, epoch 1, epoch 2

    def worsen(model, epoch):
        model.set_weights([w + 1.0 for w in model.get_weights()])
        return {"loss": 1.0}

    loop = _loop(tmp_path / "kept", epochs=2, schedule="constant")
    loop.start_from(start, lambda model: next(scores))
    best = loop.run(start, worsen, lambda model: next(scores))
    assert loop.state["best_epoch"] == 0 and loop.state["best_uar"] == 0.6 and loop.state["epoch"] == 2
    for got, expected in zip(best.get_weights(), weights):
        np.testing.assert_array_equal(got, expected)

    loop = _loop(tmp_path / "beaten", epochs=2, schedule="constant")
    scores = iter([0.4, 0.5, 0.45])
    loop.start_from(_model(), lambda model: next(scores))
    loop.start_from(_model(), lambda model: pytest.fail("scored twice"))  # recorded already (resume)
    loop.run(_model(), worsen, lambda model: next(scores))
    assert loop.state["best_epoch"] == 1 and loop.state["best_uar"] == 0.5


def test_early_stopping_counts_from_the_start_model(tmp_path):
    """A refining stage whose epochs never beat its start model stops after ``patience`` epochs."""
    loop = _loop(tmp_path, epochs=20, patience=2, schedule="constant")
    loop.start_from(_model(), lambda model: 0.7)
    loop.run(_model(), lambda model, epoch: {"loss": 1.0}, lambda model: 0.6)
    assert loop.state["epoch"] == 2 and loop.state["best_epoch"] == 0 and loop.done


def test_resume_restores_the_optimizer_state(tmp_path):
    """Adam's moments and step count survive a checkpoint, so a resumed run does not restart momentum."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 3, size=32)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    model.compile(optimizer=make_optimizer("adam", 0.01, weight_decay=1e-4), loss="sparse_categorical_crossentropy")
    loop = _loop(tmp_path, epochs=2, schedule="constant", base_lr=0.01)
    loop.run(model, lambda m, e: {k: v[-1] for k, v in m.fit(x, y, epochs=1, verbose=0).history.items()},
             lambda m: 0.5)
    loop.state["epoch"] = 1  # as if interrupted after the last checkpoint
    resumed = loop.resume_model(None)
    assert int(resumed.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) > 0
    saved = [v.numpy() for v in model.optimizer.variables]
    restored = [v.numpy() for v in resumed.optimizer.variables]
    assert len(saved) == len(restored) and all(np.array_equal(a, b) for a, b in zip(saved, restored))
    assert any(np.any(a != 0) for a in restored[2:])   # the moments are not fresh zeros
