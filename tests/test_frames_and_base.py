"""The frame CNN alone (``model.mode: frames``), warm starts, and emonet-base assembled from small runs."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from emonet.cli import main
from emonet.experiment.rundir import RunDir
from emonet.features.frames import augment_footage, prepare_faces
from emonet.features.tables import SplitTable
from emonet.inference.trained_run import TrainedRun
from emonet.nn.io import load_model
from preprocessing.audio import feature_names
from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError
from preprocessing.store import FeatureStore

pytestmark = pytest.mark.slow


def test_frames_run_learns_the_picture_and_writes_a_clip_model(frames_run):
    run_dir, _ = frames_run
    run = RunDir(run_dir)
    assert run.model_path.is_file() and run.frame_encoder_path.is_file() and not run.reducer_path.exists()
    metrics = run.metrics()
    assert metrics["mode"] == "frames" and metrics["uar"] >= 0.75  # 4 classes, chance 0.25


def test_frames_model_is_the_mean_of_per_frame_probabilities(frames_run):
    run_dir, store_path = frames_run
    trained = TrainedRun(run_dir)
    classifier = load_model(RunDir(run_dir).stage("frames").best_path, compile=False)
    with FeatureStore(store_path) as store:
        table = SplitTable(store, "val")
        key = table.keys[0]
        crops = store.clip(key)["faces"][()]
    embeddings = trained.encode_faces(crops)
    clip = trained.predict([embeddings[:1]], np.zeros((1, 1)), np.zeros(1, bool))[0]
    frame = classifier.predict(np.asarray(prepare_faces(crops[:1], 32)), verbose=0)[0]
    np.testing.assert_allclose(clip, frame, atol=1e-5)  # one frame: exactly the frame classifier
    picked = embeddings[:6]
    whole = trained.predict([picked], np.zeros((1, 1)), np.zeros(1, bool))[0]
    per_frame = classifier.predict(np.asarray(prepare_faces(crops[:6], 32)), verbose=0)
    np.testing.assert_allclose(whole, per_frame.mean(axis=0), atol=1e-5)


def test_footage_augmentation_is_seeded_and_stays_in_range():
    frames = tf.random.stateless_uniform([6, 32, 32, 3], [3, 4], 0.0, 255.0)
    first = augment_footage(frames, tf.constant([1, 2]))
    assert first.shape == frames.shape
    assert float(tf.reduce_min(first)) >= 0.0 and float(tf.reduce_max(first)) <= 255.0
    np.testing.assert_array_equal(first, augment_footage(frames, tf.constant([1, 2])))
    assert not np.allclose(first, augment_footage(frames, tf.constant([1, 3])))


# ----------------------------------------------------------------------------- warm start and emonet-base

def test_stage_one_can_start_from_a_trained_frames_run(frames_run, tmp_path):
    from emonet.experiment.config import resolve_config
    from emonet.training.stages import initial_frame_classifier
    run_dir, store = frames_run
    cfg = resolve_config({"data": {"root": str(store)}, "model": {"image_size": 32, "frame_encoder_init": str(run_dir)}})
    classifier = initial_frame_classifier(cfg.model)
    source = load_model(RunDir(run_dir).frame_encoder_path, compile=False)
    for mine, theirs in zip(classifier.get_layer("frame_encoder").get_weights(), source.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    head = TrainedRun(run_dir).model.get_layer("frame_average_frames").get_weights()
    np.testing.assert_array_equal(classifier.get_layer("emotion").get_weights()[0], head[0])
    wrong = resolve_config({"data": {"root": str(store)}, "model": {"image_size": 48, "frame_encoder_init": str(run_dir)}})
    with pytest.raises(ConfigError, match="frame encoder maps .*needs \\(48, 48, 3\\)"):
        initial_frame_classifier(wrong.model)
    missing = resolve_config({"data": {"root": str(store)}, "model": {"frame_encoder_init": str(tmp_path / "nope")}})
    with pytest.raises(ConfigError, match="nope: model.frame_encoder_init is neither"):
        initial_frame_classifier(missing.model)


@pytest.fixture(scope="session")
def base_run(frames_run, audio_run, tmp_path_factory):
    """emonet-base assembled from the stripes frame CNN, the tones voice run and the stripes footage."""
    from emonet.training.base_model import BaseModelRecipe, assemble_base_model
    frames_dir, store = frames_run
    voice_dir, _ = audio_run
    out = tmp_path_factory.mktemp("base") / "emonet-base"
    recipe = BaseModelRecipe(frames_run=str(frames_dir), voice_run=str(voice_dir), footage_store=str(store),
                             n_frames=6, photo_store=str(store))
    return out, assemble_base_model(recipe, out), store


def test_base_model_is_a_fusion_run_that_reads_the_picture(base_run):
    out, parts, store = base_run
    run = TrainedRun(out)
    assert run.mode == "fusion" and run.reducer is not None
    assert parts["fusion_video_weight"] > 0.5  # the stripes corpus's sound carries no label
    with FeatureStore(store) as st:
        table = SplitTable(st, "val")
        embeddings = run.store_embeddings(st, table.keys)
        functionals = np.stack([st.clip(k)["audio_functionals"][()] for k in table.keys])
    proba = run.predict(embeddings, functionals, table.has_audio)
    assert (proba.argmax(1) == table.labels).mean() >= 0.75  # 4 classes, chance 0.25


def test_base_model_fits_the_fusion_weight_with_the_named_held_out_voice(base_run, frames_run, audio_run,
                                                                          tmp_path):
    from emonet.training.base_model import BaseModelRecipe, assemble_base_model
    _, parts, store = base_run
    frames_dir, voice_dir = frames_run[0], audio_run[0]
    recipe = BaseModelRecipe(frames_run=str(frames_dir), voice_run=str(voice_dir), footage_store=str(store),
                             n_frames=6, fusion_voice_run=str(voice_dir))
    same = assemble_base_model(recipe, tmp_path / "same")
    assert same["fusion_video_weight"] == pytest.approx(parts["fusion_video_weight"])
    assert same["recipe"]["fusion_voice_run"] == str(voice_dir)
    wrong = dataclasses.replace(recipe, fusion_voice_run=str(frames_dir))
    with pytest.raises(ConfigError, match="the fusion voice run must be an audio run; received frames"):
        assemble_base_model(wrong, tmp_path / "wrong")


def test_base_model_classifies_a_still_with_the_frame_cnn_and_the_photo_prior(base_run, frames_run):
    out, parts, store = base_run
    base, frames = TrainedRun(out), TrainedRun(frames_run[0])
    with FeatureStore(store) as st:
        crops = st.clip(SplitTable(st, "val").keys[0])["faces"][()]
    one = base.encode_faces(crops[:1])
    silent = np.zeros((1, len(feature_names())))  # no audio: the fusion head uses the video branch alone
    still = base.predict([one], silent, np.zeros(1, bool))[0]
    # the frame CNN's probabilities times exp(photo prior bias), renormalised, up to the pools' 1e-4 floor
    bias = np.array([parts["photo_prior_bias"][c] for c in CLASSES])
    assert np.isfinite(bias).all() and np.abs(bias).max() > 0
    expected = frames.predict([one], None, np.zeros(1, bool))[0] * np.exp(bias)
    np.testing.assert_allclose(still, expected / expected.sum(), atol=1e-3)
    footage = base.predict([base.encode_faces(crops)], silent, np.zeros(1, bool))[0]
    assert not np.allclose(footage, frames.predict([base.encode_faces(crops)], None, np.zeros(1, bool))[0],
                           atol=1e-4)  # footage also hears the clip expert


def test_base_model_predicts_from_the_cli_and_keeps_results_out_of_its_folder(base_run, video_run, tmp_path,
                                                                                capsys):
    out, _, _ = base_run
    _, root = video_run
    clip = next((root / "Val_AFEW" / "Happy").glob("*.mp4"))
    assert main(["predict", str(clip), "--model", str(out), "--no-progress"]) == 0
    assert "happy_" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--data", str(root), "--no-baselines", "--out", str(tmp_path / "ev")]) == 0
    assert (tmp_path / "ev" / "metrics.json").is_file()


def test_photo_prior_moves_the_face_expert_towards_the_training_prior(frames_run):
    from emonet.nn.experts import softmax_weights
    from emonet.training.base_model import photo_prior_correction
    run_dir, store = frames_run
    frames = TrainedRun(run_dir)
    kernel, bias = softmax_weights(frames.model)
    with FeatureStore(store) as st:
        table = SplitTable(st, "train")
        crops = np.stack([st.clip(k)["faces"][0] for k in table.keys])
        prior = np.bincount(table.labels, minlength=len(CLASSES)) / len(table.labels)
    shift = photo_prior_correction(frames, (kernel, bias), store)
    logits = frames.encode_faces(crops) @ kernel + bias

    def mean_proba(z):
        p = np.exp(z - z.max(axis=1, keepdims=True))
        return (p / p.sum(axis=1, keepdims=True)).mean(axis=0)
    before, after = np.abs(mean_proba(logits) - prior).sum(), np.abs(mean_proba(logits + shift) - prior).sum()
    assert after < before or before < 1e-3  # Bayes' rule for the prior: closer, never further
    assert (shift[prior == 0] < -1).all()  # a class with no training face is pushed down


def test_base_model_reads_stills_in_the_recipes_views(base_run, frames_run, audio_run, tmp_path):
    from emonet.nn.experts import softmax_weights
    from emonet.training.base_model import BaseModelRecipe, assemble_base_model, photo_prior_correction
    _, parts, store = base_run
    frames_dir, voice_dir = frames_run[0], audio_run[0]
    recipe = BaseModelRecipe(frames_run=str(frames_dir), voice_run=str(voice_dir), footage_store=str(store),
                             n_frames=6, photo_store=str(store), still_views=10)
    ten = assemble_base_model(recipe, tmp_path / "ten")
    run, frames = TrainedRun(tmp_path / "ten"), TrainedRun(frames_dir)
    assert run.still_views == 10 and TrainedRun(base_run[0]).still_views == 1
    bias = np.array([ten["photo_prior_bias"][c] for c in CLASSES])
    by_hand = photo_prior_correction(frames, softmax_weights(frames.model), store, views=10)
    np.testing.assert_allclose(bias, by_hand, atol=1e-5)
    assert not np.allclose(bias, [parts["photo_prior_bias"][c] for c in CLASSES], atol=1e-4)
    assert ten["fusion_video_weight"] == pytest.approx(parts["fusion_video_weight"])  # footage reads as before


def test_a_new_voice_keeps_the_base_models_video_part_and_fits_the_weight_again(base_run, frames_run, audio_run,
                                                                                 tmp_path):
    """replace_base_voice: the frame CNN, video branch and photo prior are the base's, the voice the run's, the
    fusion weight fitted again (here the same voice on the same clips: the same weight and predictions)."""
    from emonet.training.base_model import BaseModelRecipe, replace_base_voice
    from emonet.training.calibration import tempered
    base_dir, parts, store = base_run
    voice_dir = audio_run[0]
    recipe = BaseModelRecipe(frames_run="unused", voice_run=str(voice_dir), footage_store=str(store))
    new = replace_base_voice(base_dir, recipe, tmp_path / "new")
    assert new["video_from"]["model"] == str(base_dir)
    assert new["video_from"]["fusion_video_weight_before"] == pytest.approx(parts["fusion_video_weight"])
    assert new["fusion_video_weight"] == pytest.approx(parts["fusion_video_weight"])
    assert new["photo_prior_bias"] == parts["photo_prior_bias"] and new["recipe"]["n_frames"] == 6
    old_model, new_model = load_model(base_dir / "model.keras"), load_model(tmp_path / "new" / "model.keras")
    for branch, source in (("video_branch", old_model), ("audio_branch", load_model(voice_dir / "model.keras"))):
        expected = source.get_layer(branch).get_weights() if branch == "video_branch" else source.get_weights()
        for got, want in zip(new_model.get_layer(branch).get_weights(), expected, strict=True):
            np.testing.assert_array_equal(got, want)
    assert (tmp_path / "new" / "frame_encoder.keras").read_bytes() == (base_dir / "frame_encoder.keras").read_bytes()
    with FeatureStore(store) as st:
        keys = SplitTable(st, "val").keys
        functionals = np.stack([st.clip(k)["audio_functionals"][()] for k in keys])
        old_run, new_run = TrainedRun(base_dir), TrainedRun(tmp_path / "new")
        embeddings = old_run.store_embeddings(st, keys)
    has_audio = np.ones(len(keys), bool)
    np.testing.assert_allclose(new_run.predict(embeddings, functionals, has_audio),
                               old_run.predict(embeddings, functionals, has_audio), atol=1e-6)
    again = replace_base_voice(tmp_path / "new", recipe, tmp_path / "again")  # a second new voice
    assert again["video_from"]["model"] == str(base_dir)  # the video part's origin is kept
    assert again["video_from"]["fusion_video_weight_before"] == pytest.approx(new["fusion_video_weight"])
    # a tempered voice: a clip without a face gets the voice's probabilities softened by the recipe's temperature
    tempered_parts = replace_base_voice(base_dir, dataclasses.replace(recipe, voice_temperature=2.0),
                                        tmp_path / "tempered")
    assert tempered_parts["recipe"]["voice_temperature"] == 2.0
    no_face = [np.zeros((0, e.shape[1]), np.float32) for e in embeddings]
    plain = new_run.predict(no_face, functionals, has_audio)
    softer = TrainedRun(tmp_path / "tempered").predict(no_face, functionals, has_audio)
    np.testing.assert_allclose(softer, tempered(plain, 2.0), atol=1e-5)
    with pytest.raises(ConfigError, match="needs an audio run for its voice; received frames"):
        replace_base_voice(base_dir, dataclasses.replace(recipe, voice_run=str(frames_run[0])), tmp_path / "bad")
    with pytest.raises(ConfigError, match="not an emonet-base model folder"):
        replace_base_voice(voice_dir, recipe, tmp_path / "bad")
