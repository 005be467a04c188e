"""Cross-fitting folds (emonet.training.folds) and the stacked-fusion model assembly (emonet.nn.fusion)."""

import numpy as np
import pytest

from emonet.nn.fusion import (build_fusion_head, build_stacked_fusion, build_video_ensemble, join_frame_encoders,
                              log_probabilities, pool_weight, set_pool_weight)
from emonet.nn.io import load_model
from emonet.nn.layers import FeatureSlice, HasInput, LogProbability
from emonet.nn.models import build_emonet
from emonet.nn.resnet import build_resnet20
from emonet.training.folds import fit_pool_weight, group_folds, person_of
from preprocessing.errors import ConfigError


def test_person_of_drops_sequence_numbers_only():
    assert person_of("ck:S005_001") == person_of("ck:S005_002") == "ck:S005"
    assert person_of("jaffe:KA") == "jaffe:KA"
    assert person_of("ravdess:03") == "ravdess:03"
    assert person_of("M030_front") == "M030_front"
    assert person_of(None) is None


def test_group_folds_keep_groups_together_and_balance_sizes():
    rng = np.random.default_rng(1)
    groups = [f"s{int(g)}" for g in rng.integers(0, 40, size=500)]
    fold = group_folds(groups, 3, seed=0)
    assert set(fold) == {0, 1, 2}
    for name in set(groups):
        assert len({fold[i] for i, g in enumerate(groups) if g == name}) == 1
    sizes = np.bincount(fold)
    largest_group = max(groups.count(g) for g in set(groups))
    assert sizes.max() - sizes.min() <= largest_group
    assert np.array_equal(fold, group_folds(groups, 3, seed=0))


def test_group_folds_unknown_groups_are_single_clips():
    fold = group_folds([None] * 9, 3)
    assert np.bincount(fold).tolist() == [3, 3, 3]


def test_group_folds_refuses_too_few_groups():
    with pytest.raises(ConfigError, match="at least 3 distinct"):
        group_folds(["a", "a", "b"], 3)
    with pytest.raises(ConfigError, match="n_folds"):
        group_folds(["a", "b"], 1)


def test_log_probability_layer_matches_numpy():
    p = np.array([[0.0, 0.5, 0.5, 0, 0, 0, 0]], np.float32)
    out = np.asarray(LogProbability()(p))
    assert np.allclose(out, log_probabilities(p))
    assert out.min() == pytest.approx(np.log(1e-4))


def test_feature_slice_takes_last_axis_range():
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 12)
    assert np.array_equal(np.asarray(FeatureSlice(start=4, stop=8)(x)), x[..., 4:8])


def _inputs(n, k, e, audio_dim):
    rng = np.random.default_rng(0)
    return {"frame_embeddings": rng.normal(size=(n, 4, k * e)).astype(np.float32),
            "frame_mask": np.ones((n, 4), np.float32),
            "audio": rng.normal(size=(n, audio_dim)).astype(np.float32)}


def test_video_ensemble_averages_fold_models_on_their_slices():
    k, e = 2, 8
    folds = [build_emonet(mode="video", video_input="embeddings", n_frames=4, embedding_dim=e, lstm_units=8)
             for _ in range(k)]
    branch = build_video_ensemble(folds, n_frames=4, embedding_dim=e)
    x = _inputs(3, k, e, 5)
    video = {"frame_embeddings": x["frame_embeddings"], "frame_mask": x["frame_mask"]}
    expected = np.mean([np.asarray(m.predict({"frame_embeddings": x["frame_embeddings"][..., i * e:(i + 1) * e],
                                              "frame_mask": x["frame_mask"]}, verbose=0))
                        for i, m in enumerate(folds)], axis=0)
    assert np.allclose(branch.predict(video, verbose=0), expected, atol=1e-6)


def test_joined_frame_encoder_concatenates_fold_embeddings():
    encoders = [build_resnet20(image_size=16, embedding_dim=8, name=f"enc{i}") for i in range(2)]
    faces = np.random.default_rng(0).uniform(0, 255, size=(2, 16, 16, 3)).astype(np.float32)
    parts = [np.asarray(enc.predict(faces, verbose=0)) for enc in encoders]
    joined = join_frame_encoders(encoders)
    assert joined.output_shape == (None, 16)
    assert np.allclose(joined.predict(faces, verbose=0), np.concatenate(parts, axis=1), atol=1e-5)


def test_stacked_fusion_round_trips_in_safe_mode(tmp_path):
    k, e = 2, 8
    folds = [build_emonet(mode="video", video_input="embeddings", n_frames=4, embedding_dim=e, lstm_units=8)
             for _ in range(k)]
    model = build_stacked_fusion(build_video_ensemble(folds, n_frames=4, embedding_dim=e),
                                 build_emonet(mode="audio", audio_dim=5), build_fusion_head())
    x = _inputs(3, k, e, 5)
    before = model.predict(x, verbose=0)
    assert before.shape == (3, 7) and np.allclose(before.sum(axis=1), 1, atol=1e-5)
    assert {"video_branch", "audio_branch", "fusion_head"} <= {layer.name for layer in model.layers}
    model.save(tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras", compile=False)
    assert np.array_equal(again.predict(x, verbose=0), before)


def _branch_outputs(n=6, seed=0):
    rng = np.random.default_rng(seed)
    video = rng.dirichlet(np.full(7, 3.0), size=n).astype(np.float32)   # no entry below the 1e-4 floor
    audio = rng.dirichlet(np.full(7, 3.0), size=n).astype(np.float32)
    return video, audio


def _head_inputs(video, audio, has_video=1.0, has_audio=1.0):
    n = len(video)
    return {"video_logp": log_probabilities(video), "audio_logp": log_probabilities(audio),
            "has_video": np.full((n, 1), has_video, np.float32), "has_audio": np.full((n, 1), has_audio, np.float32)}


def test_untrained_fusion_head_returns_the_video_branch():
    video, audio = _branch_outputs()
    out = build_fusion_head().predict(_head_inputs(video, audio), verbose=0)
    np.testing.assert_allclose(out, video, atol=1e-5)


def test_untrained_head_is_the_pool_and_a_missing_branch_drops_out():
    video, audio = _branch_outputs()
    head = build_fusion_head(alpha=0.7)
    np.testing.assert_allclose(head.predict(_head_inputs(video, audio), verbose=0), 0.7 * video + 0.3 * audio,
                               atol=1e-5)
    np.testing.assert_allclose(head.predict(_head_inputs(video, audio, has_audio=0.0), verbose=0), video, atol=1e-5)
    np.testing.assert_allclose(head.predict(_head_inputs(video, audio, has_video=0.0), verbose=0), audio, atol=1e-5)
    neither = head.predict(_head_inputs(video, audio, has_video=0.0, has_audio=0.0), verbose=0)
    np.testing.assert_allclose(neither, 0.7 * video + 0.3 * audio, atol=1e-5)


def test_pool_weight_is_set_saved_and_not_trained(tmp_path):
    video, audio = _branch_outputs()
    head = build_fusion_head()
    set_pool_weight(head, 0.25)
    assert pool_weight(head) == pytest.approx(0.25)
    assert all("alpha" not in w.path for w in head.trainable_weights)
    head.save(tmp_path / "head.keras")
    again = load_model(tmp_path / "head.keras", compile=False)
    assert pool_weight(again) == pytest.approx(0.25)
    np.testing.assert_allclose(again.predict(_head_inputs(video, audio), verbose=0), 0.25 * video + 0.75 * audio,
                               atol=1e-5)


def test_pool_weight_follows_the_informative_branch():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, size=400)
    informed = np.full((400, 7), 0.02)
    informed[np.arange(400), labels] = 0.88
    noise = rng.dirichlet(np.ones(7), size=400)
    assert fit_pool_weight(informed, noise, labels) > 0.95
    assert fit_pool_weight(noise, informed, labels) < 0.05
    half = np.where(rng.uniform(size=(400, 1)) < 0.5, informed, noise)   # each branch right on different clips
    other = np.where(half == informed, noise, informed)
    assert 0.3 < fit_pool_weight(half, other, labels) < 0.7


def test_pool_weight_sample_weights_and_no_clips():
    labels = np.array([0, 0, 0, 1])
    video = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1]])   # right on class 0 only
    audio = np.array([[0.1, 0.9], [0.1, 0.9], [0.1, 0.9], [0.1, 0.9]])   # right on class 1 only
    plain = fit_pool_weight(video, audio, labels)
    balanced = fit_pool_weight(video, audio, labels, sample_weight=[2 / 3, 2 / 3, 2 / 3, 2.0])
    assert plain > 0.6 and balanced == pytest.approx(0.5, abs=1e-3)
    assert fit_pool_weight(video[:0], audio[:0], labels[:0]) == 1.0


def test_has_input_flags_rows_with_any_nonzero_value():
    x = np.array([[0, 0, 0], [0, 1e-6, 0], [-2, 0, 0]], np.float32)
    np.testing.assert_array_equal(np.asarray(HasInput()(x)), [[0.0], [1.0], [1.0]])
    mask = np.zeros((2, 4, 3), np.float32)
    mask[1, 2] = 1.0
    np.testing.assert_array_equal(np.asarray(HasInput()(mask)), [[0.0], [1.0]])
