"""The name ``emonet-base`` stands for the shipped model wherever a model is asked for, and a training can start
from its frame CNN (``model.frame_encoder_init: emonet-base``)."""

import shutil

import numpy as np
import pytest
import yaml

from emonet.cli import main
from emonet.experiment.config import SHIPPED_MODEL_NAME, load_config, resolve_config
from emonet.experiment.rundir import RunDir
from emonet.inference.predict import check_model_dir
from emonet.inference.runtime import SHIPPED_MODEL_DIR, is_shipped_model
from preprocessing.errors import ModelError

from conftest import CREMA_D


def test_the_name_none_and_the_folder_all_mean_the_shipped_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for model in (None, SHIPPED_MODEL_NAME, SHIPPED_MODEL_DIR, str(SHIPPED_MODEL_DIR)):
        assert is_shipped_model(model)
        assert check_model_dir(model) == SHIPPED_MODEL_DIR
    assert not is_shipped_model("emonet-base-2") and not is_shipped_model(tmp_path)
    with pytest.raises(ModelError, match="emonet-base-2"):
        check_model_dir("emonet-base-2")


def test_a_folder_named_emonet_base_where_the_name_is_read_comes_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / SHIPPED_MODEL_NAME).mkdir()  # not a run folder: refused by name, not replaced by the shipped model
    assert not is_shipped_model(SHIPPED_MODEL_NAME)
    with pytest.raises(ModelError, match="emonet-base"):
        check_model_dir(SHIPPED_MODEL_NAME)


@pytest.mark.parametrize("named", [SHIPPED_MODEL_NAME, str(SHIPPED_MODEL_DIR)])
def test_evaluate_named_emonet_base_is_the_shipped_model(named, capsys):
    """By name or by its folder: the shipped model, whose results never go into the package."""
    assert main(["evaluate", named]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "emonet-base has no validation split of its own: pass --data" in err[0]


def test_a_config_keeps_the_name_unless_a_folder_of_that_name_is_beside_it(tmp_path):
    def init_of(folder):
        path = folder / "run.yaml"
        path.write_text(yaml.safe_dump({"data": {"root": "clips"}, "model": {"frame_encoder_init": "emonet-base"}}))
        return load_config(path).model.frame_encoder_init

    assert init_of(tmp_path) == SHIPPED_MODEL_NAME
    (tmp_path / SHIPPED_MODEL_NAME).mkdir()
    assert init_of(tmp_path) == str(tmp_path / SHIPPED_MODEL_NAME)


def test_stage_one_starts_from_the_shipped_frame_cnn_and_its_face_expert():
    from emonet.nn.io import load_model
    from emonet.training.stages import initial_frame_classifier
    cfg = resolve_config({"data": {"root": "clips"}, "model": {"image_size": 48, "embedding_dim": 64,
                                                              "frame_encoder_init": SHIPPED_MODEL_NAME}})
    classifier = initial_frame_classifier(cfg.model)
    shipped = RunDir(SHIPPED_MODEL_DIR)
    encoder = load_model(shipped.frame_encoder_path, compile=False)
    for mine, theirs in zip(classifier.get_layer("frame_encoder").get_weights(), encoder.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    face_expert = load_model(shipped.model_path, compile=False).get_layer("video_branch").get_layer("face_expert")
    for mine, theirs in zip(classifier.get_layer("emotion").get_weights(), face_expert.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.slow
def test_a_frames_run_started_from_emonet_base_reads_faces_as_its_face_expert_does(tmp_path):
    """At a learning rate too small to move the weights, a run started from emonet-base is emonet-base's frame CNN
    and face expert (only batch normalisation's running statistics drift a little in one epoch)."""
    from emonet.inference.trained_run import TrainedRun
    from preprocessing.store import FeatureStore
    cfg = {"seed": 0, "name": "from_base", "output_dir": str(tmp_path / "runs"),
           "data": {"root": str(CREMA_D), "layout": "crema_d", "store": str(tmp_path / "crema_d.h5"),
                    "train_split": "train", "val_split": "train"},
           "model": {"mode": "frames", "image_size": 48, "embedding_dim": 64, "n_frames": 16,
                     "frame_encoder_init": SHIPPED_MODEL_NAME},
           "train": {"frame_epochs": 1, "frames_per_clip": 4, "batch_size": 8, "learning_rate": 1e-9,
                     "patience": 0, "folds": 0, "augment": False}}
    (tmp_path / "from_base.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "from_base.yaml")]) == 0
    run = TrainedRun(tmp_path / "runs" / "from_base-seed0")
    assert run.config.model.frame_encoder_init == SHIPPED_MODEL_NAME
    shipped = TrainedRun(SHIPPED_MODEL_DIR)
    face_expert = shipped.model.get_layer("video_branch").get_layer("face_expert")
    with FeatureStore(tmp_path / "crema_d.h5") as store:
        for key in store.keys():
            faces = store.clip(key)["faces"][:16]
            mine = run.predict([run.encode_faces(faces)], np.zeros((1, 1)), np.zeros(1, bool))[0]
            theirs = np.asarray(face_expert(shipped.encode_faces(faces))).mean(axis=0)
            np.testing.assert_allclose(mine, theirs, atol=0.03, err_msg=key)


@pytest.mark.slow
def test_no_frame_epochs_keeps_emonet_base_frozen_and_a_resumed_run_reads_it_back(tmp_path):
    """``train.frame_epochs: 0``: no stage one, the frame CNN is emonet-base's to the bit, and the run's
    frame classifier is its face expert; ``--resume`` after that finds everything in place."""
    from emonet.inference.trained_run import TrainedRun
    from emonet.nn.io import load_model
    from preprocessing.store import FeatureStore
    cfg = {"seed": 0, "name": "frozen", "output_dir": str(tmp_path / "runs"),
           "data": {"root": str(CREMA_D), "layout": "crema_d", "store": str(tmp_path / "crema_d.h5"),
                    "train_split": "train", "val_split": "train"},
           "model": {"mode": "frames", "image_size": 48, "embedding_dim": 64, "n_frames": 16,
                     "frame_encoder_init": SHIPPED_MODEL_NAME},
           "train": {"frame_epochs": 0, "folds": 0}}
    (tmp_path / "frozen.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "frozen.yaml")]) == 0
    run_dir = tmp_path / "runs" / "frozen-seed0"
    mine = load_model(run_dir / "frame_encoder.keras", compile=False).get_weights()
    theirs = load_model(RunDir(SHIPPED_MODEL_DIR).frame_encoder_path, compile=False).get_weights()
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    run, shipped = TrainedRun(run_dir), TrainedRun(SHIPPED_MODEL_DIR)
    face_expert = shipped.model.get_layer("video_branch").get_layer("face_expert")
    with FeatureStore(tmp_path / "crema_d.h5") as store:
        faces = store.clip(store.keys()[0])["faces"][:16]
    np.testing.assert_allclose(run.predict([run.encode_faces(faces)], np.zeros((1, 1)), np.zeros(1, bool))[0],
                               np.asarray(face_expert(shipped.encode_faces(faces))).mean(axis=0), atol=1e-5)
    (run_dir / "model.keras").unlink()  # as if killed after stage one
    assert main(["train", str(tmp_path / "frozen.yaml"), "--resume"]) == 0
    assert (run_dir / "model.keras").is_file()


def test_a_copy_of_the_shipped_folder_is_a_run_folder_like_any_other(tmp_path):
    copy = shutil.copytree(SHIPPED_MODEL_DIR, tmp_path / "my-model")
    assert not is_shipped_model(copy)
    assert check_model_dir(copy) == copy
