"""Run configs: strict keys, required inputs, smoke overrides, paths relative to the file."""

import pytest
import yaml

from emonet.experiment.config import DEFAULTS, load_config
from preprocessing.errors import ConfigError


def write(tmp_path, data, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_defaults_and_relative_paths(tmp_path):
    (tmp_path / "experiments").mkdir()
    cfg = load_config(write(tmp_path / "experiments", {"data": {"root": "../data/afew"}}))
    assert cfg.data.root == str(tmp_path / "data" / "afew")
    assert cfg.output_dir == str(tmp_path / "runs") and cfg.name == "exp"
    assert cfg.to_dict()["model"] == DEFAULTS["model"] and cfg.smoke is None


@pytest.mark.parametrize("data,match", [
    ({"data": {"root": "x"}, "modle": {}}, "unknown key 'modle'"),
    ({"data": {"root": "x", "layuot": "afew"}}, "unknown key 'data.layuot'"),
    ({}, "data.root is required"),
    ({"data": {"root": "x"}, "model": {"mode": "both"}}, "model.mode must be one of fusion, video, audio"),
    ({"data": {"root": "x"}, "train": {"batch_size": 0}}, "train.batch_size must be a positive number"),
    ({"data": {"root": "x"}, "train": {"patience": -1}}, "train.patience must be an integer >= 0"),
    ({"data": {"root": "x"}, "seed": "one"}, "seed must be an integer"),
    ({"data": {"root": "x"}, "train": {"schedule": "joint"}}, "train.schedule must be one of two_stage, end_to_end"),
    ({"data": {"root": "x"}, "train": {"finetune_epochs": 1.5}}, "train.finetune_epochs must be an integer >= 0"),
    ({"data": {"root": "x"}, "train": {"finetune_epochs": -1}}, "train.finetune_epochs must be an integer >= 0"),
    ({"data": {"root": "x"}, "train": {"folds": -1}}, "train.folds must be an integer >= 0"),
    ({"data": {"root": "x"}, "train": {"folds": 2.5}}, "train.folds must be an integer >= 0"),
    ({"data": {"root": "x"}, "train": {"finetune_lr_scale": 0}}, "train.finetune_lr_scale must be a positive number"),
    ({"data": {"root": "x"}, "train": {"schedule": "end_to_end", "finetune_epochs": 2}},
     "train.finetune_epochs applies to the two_stage schedule only"),
    ({"data": {"root": "x"}, "model": 3}, "section model. must be a mapping"),
    ({"data": {"root": "x", "mix_from": 1}}, r"data.mix_from must be a number in \[0, 1\)"),
    ({"data": {"root": "x", "mix_share": 1.0}}, r"data.mix_share must be a number in \(0, 1\)"),
    ({"data": {"root": "x", "mix_store": "lab_faces/"}}, "data.mix_store must be the path of a .h5 feature store"),
    ({"data": {"root": "x"}, "model": {"audio_units": []}},
     r"model.audio_units must be a non-empty list of positive integers \(layer sizes\); received \[\]"),
    ({"data": {"root": "x"}, "model": {"head_units": [64, 0]}},
     r"model.head_units must be a list of positive integers \(layer sizes\); received \[64, 0\]"),
    ({"data": {"root": "x"}, "train": {"keep": "final"}}, "train.keep must be one of best, last"),
    ({"data": {"root": "x"}, "train": {"keep": "last"}},
     "train.keep: last trains every epoch, so early stopping cannot apply; set train.patience to 0"),
    ({"data": {"root": "x"}, "train": {"class_weights": "balanced"}},
     "train.class_weights must be one of True, False, sqrt; received 'balanced'"),
    ({"data": {"root": "x"}, "model": {"still_views": 5}}, "model.still_views must be one of 1, 10; received 5"),
    ({"data": {"root": "x"}, "model": {"still_views": True}}, "model.still_views must be one of 1, 10; received True"),
    ("data: [unclosed", "not valid YAML"),
])
def test_bad_configs_are_one_line_errors(tmp_path, data, match):
    with pytest.raises(ConfigError, match=match) as caught:
        load_config(write(tmp_path, data))
    assert "\n" not in str(caught.value) and "exp.yaml" in str(caught.value)


def test_smoke_overrides(tmp_path):
    path = write(tmp_path, {"data": {"root": "x"}, "train": {"epochs": 50},
                            "smoke": {"train": {"epochs": 1}}})
    assert load_config(path).train.epochs == 50
    smoke = load_config(path, smoke=True)
    assert smoke.train.epochs == 1 and smoke.name == "exp_smoke"
    with pytest.raises(ConfigError, match="no smoke: section"):
        load_config(write(tmp_path, {"data": {"root": "x"}}, "plain.yaml"), smoke=True)
    with pytest.raises(ConfigError, match=r"unknown key 'train.epoch'"):
        load_config(write(tmp_path, {"data": {"root": "x"}, "smoke": {"train": {"epoch": 1}}}, "bad.yaml"),
                    smoke=True)


def test_seed_override(tmp_path):
    path = write(tmp_path, {"data": {"root": "x"}, "seed": 3})
    assert load_config(path).seed == 3
    assert load_config(path, seed=7).seed == 7
    with pytest.raises(ConfigError, match="seed must be an integer"):
        load_config(path, seed="7")


def test_schedules_and_finetuning(tmp_path):
    cfg = load_config(write(tmp_path, {"data": {"root": "x"}}))
    assert cfg.train.schedule == "two_stage" and cfg.train.finetune_epochs == 0
    assert cfg.train.finetune_lr_scale == 0.1 and cfg.train.folds == 3
    cfg = load_config(write(tmp_path, {"data": {"root": "x"}, "train": {"schedule": "end_to_end"}}, "e2e.yaml"))
    assert cfg.train.schedule == "end_to_end"
    cfg = load_config(write(tmp_path, {"data": {"root": "x"}, "train": {"finetune_epochs": 3,
                                                                      "finetune_lr_scale": 0.5}}, "ft.yaml"))
    assert (cfg.train.finetune_epochs, cfg.train.finetune_lr_scale) == (3, 0.5)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "none.yaml")


@pytest.mark.parametrize("name,root,smoke", [
    ("composite_fusion", "shared/data/composite", True), ("composite_audio", "shared/data/composite", True),
    ("composite_video", "shared/data/composite", True), ("demo_crema_d", "tests/data/crema_d", False),
])
def test_shipped_configs_resolve(name, root, smoke):
    from conftest import REPO
    cfg = load_config(REPO / "experiments" / f"{name}.yaml", smoke=smoke)
    assert cfg.data.root.endswith(root) and cfg.model.mode in ("fusion", "audio", "video")


def test_config_is_typed_and_frozen(tmp_path):
    import dataclasses
    cfg = load_config(write(tmp_path, {"data": {"root": "x"}, "model": {"mode": "video"}}))
    assert cfg.model.mode == "video" and cfg.train.epochs == 60 and isinstance(cfg.train.learning_rate, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.mode = "audio"
    fold = cfg.with_changes(model={"mode": "audio"}, train={"finetune_epochs": 0})
    assert fold.model.mode == "audio" and cfg.model.mode == "video" and fold.data == cfg.data
    with pytest.raises(ConfigError, match="unknown key 'model.mdoe'"):
        cfg.with_changes(model={"mdoe": "audio"})


def test_run_config_round_trips_through_the_run_folder(tmp_path):
    from emonet.experiment.rundir import RunDir
    cfg = load_config(write(tmp_path, {"data": {"root": "x"}, "seed": 4, "train": {"epochs": 7}}))
    run = RunDir.for_config(cfg)
    assert run.path == tmp_path.parent / "runs" / "exp-seed4"
    run = RunDir(tmp_path / "run")
    run.write_config(cfg)
    assert run.config == cfg and run.same_config(cfg) and not run.same_config(cfg.with_changes(seed=5))
    # the YAML keeps the order and shape that run folders have always had
    assert list(yaml.safe_load(run.config_path.read_text())) == list(DEFAULTS)


def test_run_config_of_an_older_run_takes_defaults_for_missing_keys(tmp_path):
    from emonet.experiment.rundir import RunDir
    from preprocessing.errors import ModelError
    raw = load_config(write(tmp_path, {"data": {"root": "x"}})).to_dict()
    del raw["train"]["audio_noise"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.yaml").write_text(yaml.safe_dump(raw))
    assert RunDir(tmp_path / "old").config.train.audio_noise == DEFAULTS["train"]["audio_noise"]
    with pytest.raises(ModelError, match="not a run directory"):
        RunDir(tmp_path / "none").config
