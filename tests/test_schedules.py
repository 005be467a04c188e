"""The end-to-end schedule and end-to-end fine-tuning on the stripes corpus's store (real Keras training)."""

import csv
import json
import shutil

import numpy as np
import pytest
import yaml

from emonet.cli import main
from emonet.experiment.config import load_config
from emonet.training.trainer import train
from preprocessing.constants import CLASSES
from preprocessing.store import FeatureStore

from conftest import collected_messages
from stripes_corpus import N_VAL, run_config

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- end-to-end schedule, fine-tuning
# Both runs read the feature store of the fusion run (``data.root`` = the .h5 store: no extraction).

@pytest.fixture(scope="session")
def end_to_end_run(video_run):
    """A video-only run with ``schedule: end_to_end`` on the stripes corpus's store."""
    run_dir, root = video_run
    tmp = run_dir.parent.parent
    config = run_config(tmp, tmp / "stripes.h5", "video", "stripes_e2e",
                     train_overrides={"schedule": "end_to_end", "epochs": 10, "batch_size": 4, "folds": 0})
    with collected_messages() as logs:
        run_dir = train(load_config(config))
    return run_dir, root, logs


@pytest.fixture(scope="session")
def finetune_run(video_run):
    """A two-stage video-only run fine-tuned end to end for two epochs.

    Stage one is not trained again: a fold frame encoder of the fusion run (same store, same frame
    settings) is put into the new run folder, which then resumes like a run interrupted after stage
    one. Its video clip model gets a single epoch, so fine-tuning has something to improve on (with
    these settings the first fine-tuning epoch beats it here; the test holds either way).
    """
    run_dir, root = video_run
    tmp = run_dir.parent.parent
    config = run_config(tmp, tmp / "stripes.h5", "video", "stripes_finetune",
                     train_overrides={"epochs": 1, "batch_size": 4, "finetune_epochs": 2,
                                      "finetune_lr_scale": 0.3, "folds": 0})
    cfg = load_config(config)
    new_run = tmp / "runs" / "stripes_finetune-seed0"
    new_run.mkdir(parents=True)
    shutil.copy(run_dir / "folds" / "video0" / "frame_encoder.keras", new_run / "frame_encoder.keras")
    stage_one = (new_run / "frame_encoder.keras").read_bytes()
    with collected_messages() as logs:
        new_run_dir = train(cfg, resume=True)
    return new_run_dir, root, logs, stage_one


def _val_sequences(run_dir):
    """Centred frame sequences of the validation clips of a run's store, with the store's labels."""
    from emonet.features.datasets import sequence_dataset
    from emonet.features.tables import SplitTable
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    with FeatureStore(cfg["data"]["root"]) as store:
        table = SplitTable(store, "val")
    data = sequence_dataset(cfg["data"]["root"], table, n_frames=cfg["model"]["n_frames"],
                            image_size=cfg["model"]["image_size"], batch_size=5, training=False)
    return data, table


def _run_probabilities(run_dir, table):
    """Validation probabilities through the inference path (frame_encoder.keras + clip model on embeddings)."""
    from emonet.inference.trained_run import TrainedRun
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    run = TrainedRun(run_dir)
    with FeatureStore(cfg["data"]["root"]) as store:
        embeddings = run.store_embeddings(store, table.keys)
    return run.predict(embeddings, None, table.has_audio)


def test_end_to_end_run_trains_the_video_branch_and_saves_the_inference_form(end_to_end_run):
    run_dir, _, logs = end_to_end_run
    for name in ("frame_encoder.keras", "model.keras", "embeddings.h5", "metrics.json",
                 "stages/end_to_end/log.csv", "stages/end_to_end/best.keras"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "stages" / "frames").exists() and not (run_dir / "stages" / "video").exists()
    with open(run_dir / "stages" / "end_to_end" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10 and all(float(r["seconds"]) > 0 for r in rows)
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    from emonet.nn.io import load_model
    assert [t.name for t in load_model(run_dir / "model.keras").inputs] == ["frame_embeddings", "frame_mask"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["mode"] == "video" and metrics["n"] == 4 * N_VAL and metrics["uar"] > 0.25  # chance: 0.25
    state = json.loads((run_dir / "stages" / "end_to_end" / "state.json").read_text())
    assert metrics["uar"] == pytest.approx(state["best_uar"], abs=1e-6)  # evaluation reads the split model


def test_end_to_end_model_and_its_inference_form_give_the_same_probabilities(end_to_end_run):
    run_dir, _, _ = end_to_end_run
    from emonet.nn.io import load_model
    data, table = _val_sequences(run_dir)
    frames_form = np.asarray(load_model(run_dir / "stages" / "end_to_end" / "best.keras").predict(data, verbose=0))
    np.testing.assert_allclose(_run_probabilities(run_dir, table), frames_form, atol=1e-4)


def test_end_to_end_run_evaluates_predicts_and_resumes(end_to_end_run, capsys):
    run_dir, root, _ = end_to_end_run
    assert main(["evaluate", str(run_dir), "--out", str(run_dir / "eval_again"), "--no-baselines"]) == 0
    assert "UAR" in capsys.readouterr().out
    clip = sorted((root / "Val_AFEW" / "Sad").glob("*.mp4"))[0]
    assert main(["predict", str(clip), "--model", str(run_dir), "-f", "json", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert abs(sum(result[c] for c in CLASSES) - 1) < 1e-4
    with collected_messages() as logs:
        train(load_config(run_dir.parent.parent / "stripes_e2e.yaml"), resume=True)
    assert any("end_to_end: video model already trained (resume)" in m for m in logs)
    assert not any(" epoch 1/" in m for m in logs)


def test_finetune_run_keeps_encoder_cache_and_clip_model_consistent(finetune_run):
    run_dir, _, logs, stage_one = finetune_run
    for name in ("frame_encoder.keras", "model.keras", "embeddings.h5", "metrics.json",
                 "stages/video/log.csv", "stages/finetune/log.csv", "stages/finetune/outcome.json"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "stages" / "frames").exists()  # stage one came from the fusion run
    with open(run_dir / "stages" / "finetune" / "log.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 2
    outcome = json.loads((run_dir / "stages" / "finetune" / "outcome.json").read_text())
    assert any("finetune: starting from val UAR" in m for m in logs)
    # fine-tuned (or kept) encoder and clip model are the two halves of stages/finetune/best.keras,
    # and the cache the later stages read was computed with that encoder
    from emonet.nn.io import load_model
    data, table = _val_sequences(run_dir)
    best = np.asarray(load_model(run_dir / "stages" / "finetune" / "best.keras").predict(data, verbose=0))
    np.testing.assert_allclose(_run_probabilities(run_dir, table), best, atol=1e-4)
    assert ((run_dir / "frame_encoder.keras").read_bytes() != stage_one) == outcome["improved"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["uar"] == pytest.approx(outcome["best_uar"], abs=1e-6)


def test_finetune_run_resumes_without_training(finetune_run):
    run_dir, _, _, _ = finetune_run
    with collected_messages() as logs:
        train(load_config(run_dir.parent.parent / "stripes_finetune.yaml"), resume=True)
    assert any("finetune: video branch already fine-tuned (resume)" in m for m in logs)
    assert not any(" epoch 1/" in m for m in logs)
