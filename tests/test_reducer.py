"""Tests of emonet.features.reducer.AudioReducer: sklearn contract, widths, LDA quality, persistence."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from emonet.features.reducer import FORMAT, AudioReducer, ReducerError, ReducerWarning
from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError, ModelError

N_CLASSES = len(CLASSES)
LEGACY = Path(__file__).parent / "data" / "legacy"  # reducer files written before the sklearn reducer


def make_clips(n_samples, n_features, *, seed, n_signal=5, separation=1.5, n_nuisance=0):
    """Synthetic functionals: class-dependent means in ``n_signal`` features.

    ``n_nuisance`` latent factors with large loadings on every feature add
    class-independent variance, which PCA picks up before the class signal.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % N_CLASSES
    rng.shuffle(y)
    centers = np.random.default_rng(1234).normal(size=(N_CLASSES, n_signal)) * separation
    X = rng.normal(size=(n_samples, n_features))
    X[:, :n_signal] += centers[y]
    if n_nuisance:
        loadings = np.random.default_rng(99).normal(size=(n_nuisance, n_features)) * 2.0
        X += rng.normal(size=(n_samples, n_nuisance)) @ loadings
    # feature units vary like real functionals (Hz, dB, ratios)
    X = X * np.geomspace(1e-3, 1e3, n_features) + np.linspace(-50, 50, n_features)
    return X, y


def nearest_centroid_accuracy(train, y_train, test, y_test):
    centroids = np.stack([train[y_train == k].mean(axis=0) for k in range(N_CLASSES)])
    distances = ((test[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=-1)
    return float(np.mean(distances.argmin(axis=1) == y_test))


@pytest.fixture(scope="module")
def big_fit():
    X, y = make_clips(1000, 1500, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReducerWarning)
        reducer = AudioReducer().fit(X, y)
    return reducer, X, y


# ---------------------------------------------------------------- scikit-learn contract


@pytest.mark.filterwarnings("ignore::emonet.features.reducer.ReducerWarning")  # tiny check data hits the caps
@parametrize_with_checks(
    [
        AudioReducer(n_components=3),
        AudioReducer(n_components=3, whiten=False, shrinkage=None),
        AudioReducer(mode="pca", n_components=2),
        AudioReducer(mode="none"),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_init_stores_settings_only():
    reducer = AudioReducer(n_components=-4, mode="bogus", shrinkage="x", whiten="y", expected_classes=0,
                           first_feature=-1)
    assert reducer.get_params() == {
        "n_components": -4, "mode": "bogus", "shrinkage": "x", "whiten": "y", "expected_classes": 0,
        "first_feature": -1,
    }
    assert not [name for name in vars(reducer) if name.endswith("_")]


# ---------------------------------------------------------------- widths and caps


def test_width_512_when_data_supports_it(big_fit):
    reducer, X, _ = big_fit
    out = reducer.transform(X)
    assert out.shape == (1000, 512) and out.dtype == np.float64
    assert reducer.n_components_ == 512 and reducer.components_.shape == (512, 1500)
    assert reducer.n_lda_components_ == N_CLASSES - 1
    assert reducer.warnings_ == []
    assert reducer.classes_.tolist() == list(range(N_CLASSES))


def test_whitened_training_output_is_decorrelated(big_fit):
    reducer, X, _ = big_fit
    cov = np.cov(reducer.transform(X), rowvar=False)
    np.testing.assert_allclose(np.diag(cov), 1.0, atol=1e-8)
    lda, pca = slice(0, 6), slice(6, None)
    assert np.abs(cov[lda, pca]).max() < 1e-8  # PCA block carries no linear copy of the LDA dims
    np.testing.assert_allclose(cov[pca, pca], np.eye(506), atol=1e-8)


@pytest.mark.parametrize(
    ("n_samples", "n_features", "mode", "width"),
    [
        (60, 1500, "lda", 59),  # n_samples - 1
        (60, 1500, "pca", 59),
        (300, 40, "lda", 40),  # n_features
        (300, 40, "pca", 40),
    ],
)
def test_capped_width_warns_once(n_samples, n_features, mode, width):
    X, y = make_clips(n_samples, n_features, seed=1)
    with pytest.warns(ReducerWarning, match=f"capped to {width}") as record:
        reducer = AudioReducer(n_components=512, mode=mode).fit(X, y)
    assert len([w for w in record if issubclass(w.category, ReducerWarning)]) == 1
    assert reducer.n_components_ == width
    assert reducer.transform(X[:5]).shape == (5, width)
    assert len(reducer.warnings_) == 1 and "n_components=512 capped" in reducer.warnings_[0]


def test_rank_deficient_features_cap_width():
    X, y = make_clips(200, 30, seed=2)
    X = np.hstack([X, X[:, :10] * 2.0 + 1.0])  # 10 duplicated columns: rank stays 30
    with pytest.warns(ReducerWarning, match="capped to 30"):
        reducer = AudioReducer(n_components=40, mode="pca").fit(X, y)
    assert np.all(np.isfinite(reducer.transform(X)))


def test_collinear_class_means_give_fewer_lda_axes():
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2], 100)
    X = np.tile(rng.normal(size=(100, 8)), (3, 1))  # same within-class spread in every class
    X[:, 0] += y * 3.0  # so the three sample class means lie exactly on one line
    with pytest.warns(ReducerWarning, match="only 1 discriminant axes for 3 classes"):
        reducer = AudioReducer(n_components=4).fit(X, y)
    assert reducer.n_lda_components_ == 1 and reducer.n_components_ == 4


def test_no_warning_when_nothing_capped():
    X, y = make_clips(200, 30, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReducerWarning)
        reducer = AudioReducer(n_components=20).fit(X, y)
    assert reducer.warnings_ == []


@pytest.mark.parametrize(("mode", "n_components", "width", "n_lda"), [
    ("lda", 20, 20, 6), ("lda", 4, 4, 4), ("pca", 20, 20, 0), ("none", 5, 30, 0),
])
def test_mode_widths(mode, n_components, width, n_lda):
    X, y = make_clips(210, 30, seed=5)
    reducer = AudioReducer(n_components=n_components, mode=mode).fit(X, y)
    assert reducer.transform(X).shape == (210, width)
    assert reducer.n_components_ == width and reducer.n_lda_components_ == n_lda
    assert reducer.pca_explained_variance_.shape == (width - n_lda if mode != "none" else 0,)


def test_mode_none_is_standardisation():
    X, y = make_clips(100, 12, seed=6)
    X[:, 3] = 7.25  # a constant feature keeps scale 1
    reducer = AudioReducer(mode="none").fit(X)
    out = reducer.transform(X)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-9)
    expected_std = np.ones(12)
    expected_std[3] = 0.0
    np.testing.assert_allclose(out.std(axis=0), expected_std, atol=1e-9)
    assert reducer.scale_[3] == 1.0


@pytest.mark.parametrize("mode", ["lda", "pca"])
def test_constant_features_are_harmless(mode):
    X, y = make_clips(150, 20, seed=7)
    X[:, [2, 9]] = [0.1, -3.0]
    reducer = AudioReducer(n_components=10, mode=mode).fit(X, y)
    out = reducer.transform(X)
    assert np.all(np.isfinite(out)) and out.shape == (150, 10)
    np.testing.assert_array_equal(reducer.scale_[[2, 9]], 1.0)


def test_pca_mode_ignores_y():
    X, y = make_clips(120, 15, seed=8)
    with_y = AudioReducer(mode="pca", n_components=5).fit(X, y).transform(X)
    without_y = AudioReducer(mode="pca", n_components=5).fit(X).transform(X)
    np.testing.assert_array_equal(with_y, without_y)


# ---------------------------------------------------------------- LDA quality and correctness


def test_first_lda_dims_are_discriminative_on_held_out_clips():
    X, y = make_clips(1400, 300, seed=9, separation=2.0, n_nuisance=10)
    train, test = slice(0, 700), slice(700, None)
    lda = AudioReducer(n_components=64).fit(X[train], y[train])
    pca = AudioReducer(n_components=64, mode="pca").fit(X[train], y[train])
    acc = {}
    for name, reducer in [("lda", lda), ("pca", pca)]:
        acc[name] = nearest_centroid_accuracy(
            reducer.transform(X[train])[:, :6], y[train], reducer.transform(X[test])[:, :6], y[test]
        )
    # chance is 1/7 = 0.14; the nuisance factors own the top PCA components
    assert acc["lda"] > 0.5, acc  # measured 0.71
    assert acc["lda"] > acc["pca"] + 0.3, acc  # pca measured 0.14
    assert np.all(np.diff(lda.lda_eigenvalues_) <= 0)


def test_lda_axes_match_sklearn_without_shrinkage():
    X, y = make_clips(700, 12, seed=10)
    reducer = AudioReducer(n_components=6, shrinkage=None, whiten=False).fit(X, y)
    Z = (X - reducer.mean_) / reducer.scale_
    sk = LinearDiscriminantAnalysis(solver="eigen", shrinkage=None).fit(Z, y)
    ref = sk.scalings_[:, :6] / np.linalg.norm(sk.scalings_[:, :6], axis=0)
    cosines = np.abs(np.sum(ref * reducer.components_.T, axis=0))
    np.testing.assert_allclose(cosines, 1.0, atol=1e-8)
    ratio = reducer.lda_eigenvalues_ / reducer.lda_eigenvalues_.sum()
    np.testing.assert_allclose(ratio, sk.explained_variance_ratio_[:6] / sk.explained_variance_ratio_[:6].sum())


@pytest.mark.parametrize(("n_samples", "n_features", "shrinkage"), [
    (400, 20, "auto"), (100, 300, "auto"), (300, 40, 0.3), (200, 15, 0.0),
])
def test_lda_axes_are_sklearn_eigen_lda_on_standardised_clips(n_samples, n_features, shrinkage):
    X, y = make_clips(n_samples, n_features, seed=36)
    reducer = AudioReducer(n_components=6, shrinkage=shrinkage, whiten=False).fit(X, y)
    Z = (X - reducer.mean_) / reducer.scale_
    sk = LinearDiscriminantAnalysis(solver="eigen", shrinkage=reducer.shrinkage_ or None).fit(Z, y)
    ref = np.linalg.qr(sk.scalings_[:, :6])[0]
    # the same 6-dim subspace (the reducer orders the axes by their between/within ratio)
    cosines = np.linalg.svd(ref.T @ np.linalg.qr(reducer.components_.T)[0], compute_uv=False)
    np.testing.assert_allclose(cosines, 1.0, atol=1e-8)
    np.testing.assert_allclose(np.linalg.norm(reducer.components_, axis=1), 1.0)


@pytest.mark.parametrize("whiten", [True, False])
def test_pca_mode_is_sklearn_pca_on_standardised_clips(whiten):
    X, y = make_clips(150, 40, seed=37)
    reducer = AudioReducer(n_components=10, mode="pca", whiten=whiten).fit(X, y)
    Z = (X - reducer.mean_) / reducer.scale_
    ref = PCA(n_components=10, whiten=whiten).fit_transform(Z)
    out = reducer.transform(X)
    signs = np.sign(np.sum(out * ref, axis=0))  # each direction up to its sign
    np.testing.assert_allclose(out, ref * signs, atol=1e-9)
    np.testing.assert_allclose(reducer.pca_explained_variance_, PCA(n_components=10).fit(Z).explained_variance_)


@pytest.mark.parametrize(("n_samples", "n_features"), [(400, 20), (100, 300)])
def test_auto_shrinkage_is_ledoit_wolf(n_samples, n_features):
    X, y = make_clips(n_samples, n_features, seed=11)
    reducer = AudioReducer(n_components=6).fit(X, y)
    Z = (X - reducer.mean_) / reducer.scale_
    class_means = np.stack([Z[y == k].mean(axis=0) for k in range(N_CLASSES)])
    expected = ledoit_wolf_shrinkage(Z - class_means[y], assume_centered=True)
    assert reducer.shrinkage_ == pytest.approx(expected, rel=1e-9)
    assert 0.0 < reducer.shrinkage_ < 1.0


def test_fixed_shrinkage_is_used():
    X, y = make_clips(200, 20, seed=12)
    assert AudioReducer(n_components=6, shrinkage=0.25).fit(X, y).shrinkage_ == 0.25


def test_string_labels_are_classes():
    X, y = make_clips(140, 10, seed=13)
    labels = np.array(CLASSES)[y]
    by_name = AudioReducer(n_components=8, expected_classes=CLASSES).fit(X, labels)
    by_id = AudioReducer(n_components=8, expected_classes=7).fit(X, y)
    assert by_name.classes_.tolist() == sorted(CLASSES)
    # CLASSES is alphabetical, so ids and names sort the same way
    np.testing.assert_allclose(by_name.transform(X), by_id.transform(X), atol=1e-10)


# ---------------------------------------------------------------- fitted on the training split only


def test_fit_learns_only_from_the_data_passed():
    X_a, y_a = make_clips(300, 40, seed=14)
    X_b, y_b = make_clips(300, 40, seed=15)
    X_b = X_b * 3.0 + 1.0
    reducer = AudioReducer(n_components=20).fit(X_a, y_a)
    np.testing.assert_allclose(reducer.mean_, X_a.mean(axis=0))
    before = reducer.to_arrays()
    out_a = reducer.transform(X_a)
    reducer.transform(X_b)  # transforming other clips must not touch the fitted state
    after = reducer.to_arrays()
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)
    np.testing.assert_array_equal(reducer.transform(X_a), out_a)

    reducer.fit(X_b, y_b)  # refitting replaces the state with one learnt from X_b
    np.testing.assert_allclose(reducer.mean_, X_b.mean(axis=0))
    assert not np.allclose(reducer.transform(X_a), out_a)


def test_failed_refit_keeps_previous_state():
    X, y = make_clips(200, 30, seed=32)
    reducer = AudioReducer(n_components=10, expected_classes=7).fit(X, y)
    before = reducer.transform(X)
    X_small, y_small = make_clips(140, 12, seed=33)
    with pytest.raises(ReducerError, match="classes missing"):
        reducer.fit(X_small[y_small != 2], y_small[y_small != 2])
    assert reducer.n_features_in_ == 30
    np.testing.assert_array_equal(reducer.transform(X), before)


def test_refit_in_pca_mode_drops_classes():
    X, y = make_clips(200, 30, seed=34)
    reducer = AudioReducer(n_components=10).fit(X, y)
    assert hasattr(reducer, "classes_")
    reducer.set_params(mode="pca").fit(X)
    assert not hasattr(reducer, "classes_") and reducer.n_lda_components_ == 0


def test_fit_transform_equals_fit_then_transform():
    X, y = make_clips(200, 30, seed=16)
    np.testing.assert_allclose(
        AudioReducer(n_components=15).fit_transform(X, y),
        AudioReducer(n_components=15).fit(X, y).transform(X),
        atol=1e-12,
    )


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(("params", "match"), [
    ({"mode": "lda2"}, r"mode: must be one of \('lda', 'pca', 'none'\); received 'lda2'"),
    ({"n_components": 0}, r"n_components: must be an integer >= 1; received 0"),
    ({"n_components": 2.5}, r"n_components: must be an integer >= 1; received 2.5"),
    ({"n_components": True}, r"n_components: must be an integer >= 1; received True"),
    ({"shrinkage": 1.5}, r"shrinkage: must be 'auto', None or a float in \[0, 1\]; received 1.5"),
    ({"shrinkage": "ledoit"}, r"shrinkage: .* received 'ledoit'"),
    ({"whiten": "yes"}, r"whiten: must be True or False; received 'yes'"),
    ({"expected_classes": 1}, r"expected_classes: must be >= 2 when an int; received 1"),
    ({"expected_classes": "Angry"}, r"expected_classes: must be None, an int or a sequence"),
    ({"expected_classes": [0, 0, 1]}, r"expected_classes: needs at least 2 distinct labels"),
])
def test_bad_settings_raise_on_fit(params, match):
    X, y = make_clips(70, 10, seed=17)
    reducer = AudioReducer(**params)
    with pytest.raises(ReducerError, match=match) as info:
        reducer.fit(X, y)
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


def test_lda_requires_y():
    X, _ = make_clips(70, 10, seed=18)
    with pytest.raises(ReducerError, match=r"y: mode='lda' requires y to be passed, but the target y is None"):
        AudioReducer().fit(X)


def test_continuous_y_raises():
    X, _ = make_clips(70, 10, seed=35)
    with pytest.raises(ReducerError, match=r"y: Unknown label type: continuous"):
        AudioReducer().fit(X, np.linspace(0.0, 1.0, 70))


def test_lda_needs_two_classes():
    X, _ = make_clips(70, 10, seed=19)
    with pytest.raises(ReducerError, match=r"needs at least 2 classes; received 1 class \(3\)"):
        AudioReducer().fit(X, np.full(70, 3))


@pytest.mark.parametrize(("expected", "drop", "match"), [
    (7, [3, 5], r"y: classes missing from the training data: \[3, 5\]"),
    (CLASSES, ["Fear"], r"y: classes missing from the training data: \['Fear'\]"),
])
def test_missing_class_raises(expected, drop, match):
    X, y = make_clips(140, 10, seed=20)
    labels = y if isinstance(expected, int) else np.array(CLASSES)[y]
    keep = ~np.isin(labels, drop)
    with pytest.raises(ReducerError, match=match):
        AudioReducer(expected_classes=expected).fit(X[keep], labels[keep])


def test_label_outside_expected_classes_raises():
    X, y = make_clips(140, 10, seed=21)
    with pytest.raises(ReducerError, match=r"y: labels not in expected_classes: \[7\]"):
        AudioReducer(expected_classes=7).fit(X, np.where(np.arange(140) < 3, 7, y))


@pytest.mark.parametrize("mode", ["lda", "pca", "none"])
def test_fewer_clips_than_classes_raises(mode):
    X, y = make_clips(5, 10, seed=22)
    with pytest.raises(ReducerError, match=r"fewer clips than classes \(n_samples=5 < n_classes=7\)"):
        AudioReducer(mode=mode, expected_classes=7).fit(X, y)


def test_one_clip_per_class_raises():
    X, y = make_clips(7, 10, seed=23)
    with pytest.raises(ReducerError, match=r"every class has exactly one clip \(n_samples=7, n_classes=7\)"):
        AudioReducer().fit(X, y)


def test_all_constant_features_raise_for_projection():
    with pytest.raises(ReducerError, match=r"every one of the 4 features is constant over the 10 training clips"):
        AudioReducer(mode="pca").fit(np.ones((10, 4)))


@pytest.mark.parametrize(("bad", "match"), [
    (np.nan, "Input X contains NaN"),
    (np.inf, "Input X contains infinity"),
])
def test_non_finite_input_raises(bad, match):
    X, y = make_clips(70, 10, seed=24)
    X[3, 4] = bad
    with pytest.raises(ReducerError, match=match):
        AudioReducer(n_components=4).fit(X, y)


@pytest.mark.parametrize("method", ["transform", "to_arrays"])
def test_unfitted_raises(method):
    with pytest.raises(NotFittedError):
        getattr(AudioReducer(), method)(*([np.zeros((2, 3))] if method == "transform" else []))


def test_wrong_feature_count_raises():
    X, y = make_clips(70, 5, seed=25)
    reducer = AudioReducer(n_components=4).fit(X, y)
    with pytest.raises(ReducerError, match=r"X has 4 features, but AudioReducer is expecting 5 features as input"):
        reducer.transform(X[:, :4])


# ---------------------------------------------------------------- persistence


@pytest.mark.parametrize("params", [
    {"n_components": 20},
    {"n_components": 20, "whiten": False, "shrinkage": 0.3, "expected_classes": 7},
    {"n_components": 20, "shrinkage": None, "expected_classes": CLASSES},
    {"n_components": 12, "mode": "pca"},
    {"mode": "none"},
])
def test_save_load_round_trip(tmp_path, params):
    X, y = make_clips(200, 30, seed=26)
    X_new, _ = make_clips(50, 30, seed=27)
    labels = np.array(CLASSES)[y] if isinstance(params.get("expected_classes"), tuple) else y
    reducer = AudioReducer(**params).fit(X, labels)
    path = reducer.save(tmp_path / "reducer.npz")
    assert path == tmp_path / "reducer.npz" and sorted(p.name for p in tmp_path.iterdir()) == ["reducer.npz"]

    with np.load(path, allow_pickle=False) as npz:  # loads without pickle support
        stored = {key: npz[key] for key in npz.files}
    assert all(arr.dtype != object for arr in stored.values())
    assert str(stored["format"]) == FORMAT

    loaded = AudioReducer.load(path)
    np.testing.assert_array_equal(loaded.transform(X_new), reducer.transform(X_new))
    assert loaded.get_params() == AudioReducer(**params).get_params()
    assert loaded.n_components_ == reducer.n_components_
    assert loaded.warnings_ == reducer.warnings_
    if params.get("mode", "lda") == "lda":
        np.testing.assert_array_equal(loaded.classes_, reducer.classes_)


def test_from_arrays_round_trip_in_memory():
    X, y = make_clips(200, 30, seed=28)
    reducer = AudioReducer(n_components=10).fit(X, y)
    clone = AudioReducer.from_arrays(reducer.to_arrays())
    np.testing.assert_array_equal(clone.transform(X), reducer.transform(X))


def test_load_refuses_pickled_objects(tmp_path):
    X, y = make_clips(100, 10, seed=29)
    arrays = AudioReducer(n_components=5).fit(X, y).to_arrays()
    arrays["classes_"] = np.array([object()] * 7, dtype=object)  # np.savez pickles object arrays
    path = tmp_path / "evil.npz"
    np.savez(path, **arrays)
    with pytest.raises(ModelError, match=r"evil\.npz: not a readable pickle-free reducer \.npz .*allow_pickle=False"):
        AudioReducer.load(path)


@pytest.mark.parametrize(("edit", "match"), [
    (lambda a: a.pop("components_"), r"arrays: reducer arrays incomplete; missing keys \['components_'\]"),
    (lambda a: a.update(format=np.array("other/9")), r"reducer format must be 'emonet.AudioReducer/1'; received 'other/9'"),
    (lambda a: a.update(mean_=np.zeros(3)), r"reducer array 'mean_' must have shape \(10,\); received \(3,\)"),
    (lambda a: a.update(mode=np.array("umap")), r"reducer mode must be one of .*; received 'umap'"),
    (lambda a: a.update(n_components_=np.arange(2)), r"reducer array 'n_components_' must hold one value"),
])
def test_from_arrays_rejects_bad_arrays(edit, match):
    X, y = make_clips(100, 10, seed=30)
    arrays = AudioReducer(n_components=5).fit(X, y).to_arrays()
    edit(arrays)
    with pytest.raises(ModelError, match=match):
        AudioReducer.from_arrays(arrays)


@pytest.mark.parametrize(("content", "match"), [
    (None, r"missing\.npz: reducer file does not exist"),
    (b"not a zip at all", r"damaged\.npz: "),
])
def test_load_bad_files(tmp_path, content, match):
    name = "missing.npz" if content is None else "damaged.npz"
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(ModelError, match=match):
        AudioReducer.load(tmp_path / name)


def test_feature_names_out():
    X, y = make_clips(100, 10, seed=31)
    reducer = AudioReducer(n_components=3).fit(X, y)
    assert reducer.get_feature_names_out().tolist() == ["audioreducer0", "audioreducer1", "audioreducer2"]


@pytest.mark.parametrize("case", ["reducer_lda", "reducer_lda_plain", "reducer_pca", "reducer_none"])
def test_reducer_files_from_before_load_and_transform_as_before(case):
    """Files saved by the hand-written reducer (commit 7e49dca) still load and transform the same clips alike."""
    reducer = AudioReducer.load(LEGACY / f"{case}.npz")
    clips = np.load(LEGACY / "reducer_input.npy")
    expected = np.load(LEGACY / f"{case}_expected.npy")
    np.testing.assert_allclose(reducer.transform(clips), expected, rtol=1e-12, atol=1e-12)
    assert reducer.n_components_ == expected.shape[1]
    np.testing.assert_array_equal(AudioReducer.from_arrays(reducer.to_arrays()).transform(clips),
                                  reducer.transform(clips))


@pytest.mark.parametrize("earlier", [1475, 1795, 1825])
def test_reduce_audio_across_the_vector_widths(earlier):
    """Reducers of an earlier width read the prefix of today's 3,361-wide rows; 3,361-wide ones accept rows
    of an earlier width only without audio."""
    from emonet.features.embedding import reduce_audio
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(7), 20)
    wide = rng.normal(size=(140, 3361)) + y[:, None] * 0.1
    older = AudioReducer(mode="none").fit(wide[:, :earlier], y)
    assert np.allclose(reduce_audio(older, wide[:3], np.ones(3, bool)), older.transform(wide[:3, :earlier]),
                       atol=1e-5)
    current = AudioReducer(mode="none").fit(wide, y)
    silent = reduce_audio(current, np.zeros((2, earlier)), np.zeros(2, bool))
    assert silent.shape == (2, current.transform(wide[:1]).shape[1]) and not silent.any()
    with pytest.raises(ReducerError, match=f"{earlier} features, but AudioReducer is expecting 3361"):
        reduce_audio(current, wide[:2, :earlier], np.ones(2, bool))
    odd = AudioReducer(mode="none").fit(wide[:, :1000], y)  # not an earlier width: no prefix is guessed
    with pytest.raises(ReducerError, match="3361 features, but AudioReducer is expecting 1000"):
        reduce_audio(odd, wide[:2], np.ones(2, bool))


@pytest.mark.parametrize("mode", ["lda", "pca", "none"])
def test_the_inference_reducer_transforms_exactly_as_the_estimator(tmp_path, mode):
    from emonet.features.reducer_apply import FittedReducer
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(140, 60)), np.repeat(np.arange(7), 20)
    reducer = AudioReducer(n_components=24, mode=mode).fit(X, None if mode == "pca" else y)
    path = reducer.save(tmp_path / "reducer.npz")
    light = FittedReducer.load(path)
    new = rng.normal(size=(9, 60))
    assert np.array_equal(light.transform(new), reducer.transform(new))
    assert (light.n_features_in_, light.n_components_) == (reducer.n_features_in_, reducer.n_components_)
    with pytest.raises(ReducerError, match="features"):
        light.transform(new[:, :10])


@pytest.mark.parametrize("name", ["emonet/pretrained/emonet-base/reducer.npz", "tests/data/legacy/reducer_lda.npz",
                                  "tests/data/legacy/reducer_lda_plain.npz", "tests/data/legacy/reducer_none.npz"])
def test_the_inference_reducer_reads_shipped_and_legacy_files(name):
    from emonet.features.reducer_apply import FittedReducer
    path = Path(__file__).resolve().parents[1] / name
    heavy, light = AudioReducer.load(path), FittedReducer.load(path)
    X = np.random.default_rng(0).normal(size=(5, heavy.n_features_in_))
    assert np.array_equal(light.transform(X), heavy.transform(X))
