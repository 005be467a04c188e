"""Classical baselines: fitted on train only, seven-class probabilities, well above chance when they should be."""

import numpy as np
import pytest

from emonet.baselines import full_probabilities, run_baselines
from preprocessing.errors import ConfigError


def blobs(n_per_class, seed, classes=range(7), d=20):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(scale=3.0, size=(7, d))
    x = np.concatenate([centres[c] + rng.normal(size=(n_per_class, d)) for c in classes])
    y = np.repeat(list(classes), n_per_class)
    return x, y


def test_separable_data_beats_chance_and_majority_is_chance():
    train_x, train_y = blobs(30, 0)
    test_x, test_y = blobs(10, 1)
    rows = {r["model"]: r for r in run_baselines(train_x, train_y, test_x, test_y, feature_set="toy")}
    assert set(rows) == {"majority class", "k-NN", "MLP", "linear SVM"}
    assert rows["majority class"]["uar"] == pytest.approx(1 / 7)
    for name in ("k-NN", "MLP", "linear SVM"):
        assert rows[name]["uar"] > 0.8, name
    assert rows["k-NN"]["name"] == "k-NN (toy)"


def test_class_missing_from_training_still_gives_seven_columns():
    train_x, train_y = blobs(20, 0, classes=[0, 2, 4])
    test_x, test_y = blobs(5, 1, classes=[0, 2, 4, 6])
    rows = run_baselines(train_x, train_y, test_x, test_y, feature_set="toy")
    for row in rows:
        cm = np.array(row["report"]["confusion_matrix"])
        assert cm.shape == (7, 7) and cm[:, 6].sum() == 0  # nobody predicts an unseen class


def test_probabilities_cover_all_classes():
    from sklearn.svm import LinearSVC
    x, y = blobs(10, 0, classes=[1, 3])
    proba = full_probabilities(LinearSVC().fit(x, y), x)
    assert proba.shape == (20, 7) and np.allclose(proba.sum(axis=1), 1) and not proba[:, [0, 2, 4, 5, 6]].any()


def test_scaler_is_fitted_on_training_rows_only():
    """Shifting the test rows changes the predictions: the scaler did not learn from them."""
    train_x, train_y = blobs(30, 0)
    test_x, test_y = blobs(10, 1)
    base = run_baselines(train_x, train_y, test_x, test_y, feature_set="toy")
    shifted = run_baselines(train_x, train_y, test_x + 50.0, test_y, feature_set="toy")
    assert next(r for r in shifted if r["model"] == "k-NN")["uar"] < next(r for r in base if r["model"] == "k-NN")["uar"]


@pytest.mark.parametrize("shapes,match", [
    (((10, 3), (10,), (5, 4), (5,)), "equal widths"),
    (((10, 3), (9,), (5, 3), (5,)), "10 training rows but 9 labels"),
])
def test_bad_shapes(shapes, match):
    a, b, c, d = (np.zeros(s) for s in shapes)
    with pytest.raises(ConfigError, match=match):
        run_baselines(a, b, c, d, feature_set="toy")
