"""Classical baselines: fitted on train only, seven-class probabilities, above chance when they should be."""

import json

import numpy as np
import pytest
from sklearn.svm import LinearSVC

from emonet.evaluation.baselines import MODELS, fit_baselines, full_probabilities, proba_source, run_baselines
from emonet.evaluation.metrics import ablation_table
from preprocessing.errors import ConfigError


def blobs(n_per_class, seed, classes=range(7), d=20):
    """Gaussian clusters around fixed class centres (same centres for every seed)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(scale=3.0, size=(7, d))
    x = np.concatenate([centres[c] + rng.normal(size=(n_per_class, d)) for c in classes])
    return x, np.repeat(list(classes), n_per_class)


@pytest.fixture(scope="module")
def separable_rows():
    train_x, train_y = blobs(30, 0)
    test_x, test_y = blobs(10, 1)
    return run_baselines(train_x, train_y, test_x, test_y, feature_set="toy", seed=0)


def test_separable_data_beats_chance_and_majority_is_chance(separable_rows):
    rows = {row["model"]: row for row in separable_rows}
    assert list(rows) == list(MODELS) == ["majority class", "k-NN", "MLP", "linear SVM"]
    assert rows["majority class"]["uar"] == pytest.approx(1 / 7)
    assert rows["majority class"]["accuracy"] == pytest.approx(1 / 7)
    assert rows["majority class"]["auc_ovo"] == pytest.approx(0.5)
    for name in ("k-NN", "MLP", "linear SVM"):
        assert rows[name]["uar"] > 0.8 and rows[name]["auc_ovo"] > 0.9, name
    assert rows["k-NN"]["name"] == "k-NN (toy)" and rows["k-NN"]["feature_set"] == "toy"
    assert rows["linear SVM"]["proba_source"] == "softmax(decision_function)"
    assert rows["MLP"]["proba_source"] == "predict_proba"
    assert all(row["n"] == 70 and row["n_train"] == 210 and row["report"]["n"] == 70 for row in separable_rows)


def test_rows_are_json_and_table_ready(separable_rows):
    assert json.loads(json.dumps(separable_rows)) == separable_rows
    table = ablation_table(separable_rows).splitlines()
    assert [line.split(" | ")[0] for line in table[2:]] == [f"| {m} (toy)" for m in MODELS]


def test_same_seed_same_numbers(separable_rows):
    train_x, train_y = blobs(30, 0)
    test_x, test_y = blobs(10, 1)
    again = run_baselines(train_x, train_y, test_x, test_y, feature_set="toy", seed=0)
    assert [row["report"] for row in again] == [row["report"] for row in separable_rows]


def test_scaler_is_fitted_on_training_rows_only(separable_rows):
    train_x, train_y = blobs(30, 0)
    test_x, test_y = blobs(10, 1)
    models, _ = fit_baselines(train_x, train_y)
    for name, model in models.items():
        np.testing.assert_allclose(model.named_steps["scale"].mean_, train_x.mean(axis=0), err_msg=name)
        np.testing.assert_allclose(model.named_steps["scale"].scale_, train_x.std(axis=0), err_msg=name)
    # A scaler refitted on the test rows would cancel a constant shift of them; ours must not.
    shifted = {row["model"]: row for row in run_baselines(train_x, train_y, test_x + 50.0, test_y, feature_set="toy")}
    for row in separable_rows[1:]:
        assert shifted[row["model"]]["uar"] < row["uar"] - 0.3, row["model"]


def test_class_missing_from_training_still_gives_seven_columns():
    train_x, train_y = blobs(20, 0, classes=[0, 2, 4])
    test_x, test_y = blobs(5, 1, classes=[0, 2, 4, 6])
    models, _ = fit_baselines(train_x, train_y)
    for name, model in models.items():
        proba = full_probabilities(model, test_x)
        assert proba.shape == (20, 7), name
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, err_msg=name)
        assert not proba[:, [1, 3, 5, 6]].any(), name
    rows = run_baselines(train_x, train_y, test_x, test_y, feature_set="toy")
    for row in rows:
        matrix = np.array(row["report"]["confusion_matrix"])
        assert matrix.shape == (7, 7) and matrix[:, 6].sum() == 0  # nobody predicts an unseen class
        assert row["report"]["per_class"]["Surprise"]["recall"] == 0.0
    assert rows[1]["uar"] == pytest.approx(0.75)  # k-NN: three seen classes right, Surprise impossible


def test_two_training_classes_use_the_single_svm_margin():
    x, y = blobs(10, 0, classes=[1, 3])
    svm = LinearSVC().fit(x, y)
    assert proba_source(svm) == "softmax(decision_function)"
    proba = full_probabilities(svm, x)
    assert proba.shape == (20, 7) and np.allclose(proba.sum(axis=1), 1)
    assert not proba[:, [0, 2, 4, 5, 6]].any()
    assert np.array_equal(proba.argmax(axis=1), svm.predict(x))


def test_tiny_training_split_switches_rules_and_says_so():
    train_x, train_y = blobs(2, 0, classes=[0, 1])
    test_x, test_y = blobs(3, 1, classes=[0, 1])
    rows = {row["model"]: row for row in run_baselines(train_x, train_y, test_x, test_y, feature_set="toy")}
    assert rows["k-NN"]["notes"] == ["k lowered to 4: only 4 training clips"]
    assert rows["MLP"]["notes"][0].startswith("early stopping off: 4 training clips")


def bad(**changes):
    train_x, train_y = blobs(3, 0, classes=[0, 1], d=4)
    args = {"train_X": train_x, "train_y": train_y, "test_X": train_x, "test_y": train_y, "feature_set": "toy"}
    args.update(changes)
    return args


@pytest.mark.parametrize("args,match", [
    (bad(test_X=np.zeros((6, 5))), r"test_X must have the 4 features of train_X; received 5"),
    (bad(train_y=np.zeros(5, int)), r"train_y must be 1-D with one id per row of train_X \(6\); received shape \(5,\)"),
    (bad(train_X=np.zeros(6)), r"train_X must be a non-empty 2-D array \(clips, features\); received shape \(6,\)"),
    (bad(train_X=np.full((6, 4), np.nan)), r"train_X must be finite; received 24 NaN/inf values"),
    (bad(test_y=np.zeros(6)), r"test_y must hold integer class ids; received dtype float64"),
    (bad(test_y=np.full(6, 7)), r"test_y ids must be in \[0, 6\]; received min 7, max 7"),
    (bad(train_y=np.zeros(6, int)), r"train_y must hold at least 2 distinct classes.*only 'Angry'"),
    (bad(feature_set=""), r"feature_set must be a non-empty name"),
    (bad(seed=-1), r"seed must be a non-negative integer; received -1"),
    (bad(seed=1.5), r"seed must be a non-negative integer; received 1.5"),
])
def test_bad_inputs_are_refused(args, match):
    with pytest.raises(ConfigError, match=match):
        run_baselines(**args)
