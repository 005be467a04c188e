"""Training, evaluation and prediction end to end on tiny generated corpora (real Keras training).

The corpora and the trained runs are in stripes_corpus.py and conftest.py; the end-to-end schedule and
fine-tuning are tested in test_schedules.py, the frame CNN alone and emonet-base's assembly in
test_frames_and_base.py.
"""

import csv
import json
import shutil
import subprocess

import numpy as np
import pytest
import yaml

from emonet.cli import main
from emonet.experiment.config import load_config
from emonet.experiment.rundir import RunDir
from emonet.nn.io import load_model
from emonet.training.context import RunContext
from emonet.training.trainer import train
from preprocessing.constants import CLASSES
from preprocessing.store import FeatureStore

from conftest import CREMA_D, collected_messages, make_clip
from stripes_corpus import CLASSES4, N_VAL, STRIPES, stripes_clip

pytestmark = pytest.mark.slow


def test_label_only_in_audio_is_learned_by_the_audio_model(audio_run):
    run_dir, _ = audio_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["mode"] == "audio" and metrics["n"] == 4 * N_VAL
    assert metrics["uar"] >= 0.75  # chance: 0.25
    model = load_model(run_dir / "model.keras", compile=False)
    dense = [layer.units for layer in model.get_layer("audio_encoder").layers if hasattr(layer, "units")]
    assert dense == [24]                                                  # model.audio_units
    assert not [layer for layer in model.get_layer("head").layers if hasattr(layer, "units")]  # head_units: []


def test_label_only_in_video_is_learned_by_the_video_model(video_run):
    run_dir, _ = video_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["ablation"]["video"]["uar"] >= 0.75  # chance: 0.25
    assert metrics["ablation"]["audio"]["uar"] <= 0.6   # the sound carries no label here
    assert metrics["uar"] >= 0.6                         # fusion finds the picture too


def test_run_directory_holds_what_a_reader_needs(video_run):
    run_dir, _ = video_run
    for name in ("config.yaml", "versions.json", "reducer.npz", "frame_encoder.keras", "model.keras",
                 "ablation/audio.keras", "ablation/video.keras", "embeddings.h5", "metrics.json",
                 "predictions.csv", "confusion_matrix.png", "confusion_matrix.json", "training_curves.png",
                 "result_record.json", "folds/video0/stages/frames/log.csv", "folds/video1/model.keras",
                 "folds/audio1/reducer.npz", "stages/audio/log.csv", "stages/fusion/log.csv"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "stages" / "fusion" / "tensorboard").rglob("events.out.tfevents.*"))
    assert (run_dir / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((run_dir / "result_record.json").read_text())
    assert record["seed"] == 0 and record["split"] == "val" and "git_commit" in record
    with np.load(run_dir / "reducer.npz", allow_pickle=False) as arrays:
        assert arrays["format"].dtype.kind == "U"


def test_reducer_is_fitted_on_the_training_split_only(video_run):
    run_dir, _ = video_run
    from emonet.features.reducer import AudioReducer
    from emonet.features.tables import SplitTable, audio_matrix
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    with FeatureStore(cfg["data"]["store"]) as store:
        train_x = audio_matrix(store, SplitTable(store, "train").keys)
    reducer = AudioReducer.load(run_dir / "reducer.npz")
    np.testing.assert_allclose(reducer.mean_, train_x.mean(axis=0), rtol=1e-6, atol=1e-6)


def test_evaluate_cli_prints_uar_and_accuracy(video_run, capsys):
    run_dir, _ = video_run
    assert main(["evaluate", str(run_dir), "--out", str(run_dir / "eval_again")]) == 0
    out = capsys.readouterr().out
    assert "UAR" in out and "accuracy" in out and "EmoNet fusion" in out and "majority" in out.lower()
    metrics = json.loads((run_dir / "eval_again" / "metrics.json").read_text())
    names = " ".join(b["name"] for b in metrics["baselines"])
    for baseline in ("audio functionals", "mean-pooled frame embeddings"):
        assert baseline in names
    assert {"uar", "accuracy", "macro_f1"} <= set(metrics)


def test_evaluate_on_another_dataset_folder(video_run, tmp_path, capsys):
    run_dir, _ = video_run
    other = tmp_path / "other"
    for c, label in enumerate(CLASSES4):  # another corpus, in the generic <Emotion>/* layout
        stripes_clip(other / label / "x.mp4", tone=440, period=STRIPES[label], seed=200 + c)
    assert main(["evaluate", str(run_dir), "--data", str(other), "--layout", "folder", "--no-baselines"]) == 0
    metrics = json.loads((run_dir / "eval_other" / "metrics.json").read_text())
    assert metrics["n"] == 4 and metrics["split"] == "train"
    assert "UAR" in capsys.readouterr().out


def test_predict_cli_formats_failures_and_submission(video_run, tmp_path, capsys):
    run_dir, root = video_run
    clips = sorted((root / "Val_AFEW").rglob("*.mp4"))[:3]
    silent = make_clip(tmp_path / "no_audio.mp4", audio=False, seconds=1.0)
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    flv = CREMA_D / "1001_DFA_HAP_XX.flv"
    args = ["predict", *map(str, clips), str(silent), str(broken), str(flv), "--model", str(run_dir),
            "-f", "json", "--submission", str(tmp_path / "sub"), "--no-progress"]
    status = main(args)
    captured = capsys.readouterr()
    assert status == 1  # one clip failed, the rest were classified
    results = json.loads(captured.out)
    assert len(results) == 5
    for r in results:  # one field per class (as the CSV columns)
        assert abs(sum(r[c] for c in CLASSES) - 1) < 1e-4 and r["emotion"] in CLASSES
    assert "broken.mp4" in captured.err and "skipping" in captured.err
    # label files keep each clip's path relative to the clips' common folder (sub-folders created)
    assert sorted(p.name for p in (tmp_path / "sub").rglob("*.txt")) == sorted(
        [p.stem + ".txt" for p in clips] + ["no_audio.txt", "1001_DFA_HAP_XX.txt"])
    assert main(["predict", str(clips[0]), "--model", str(run_dir), "-f", "csv", "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("clip,emotion,Angry,Disgust") and len(lines) == 2


def test_predict_table_is_readable(audio_run, capsys):
    run_dir, root = audio_run
    clip = sorted((root / "Val_AFEW" / "Sad").glob("*.mp4"))[0]
    assert main(["predict", str(clip), "--model", str(run_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["clip", "emotion", "Angry"] and clip.name in out[2] and "Sad" in out[2]


def test_resume_skips_finished_stages(video_run):
    run_dir, _ = video_run
    cfg = load_config(run_dir.parent.parent / "stripes.yaml")
    with collected_messages() as logs:
        train(cfg, resume=True)
    assert any("already trained" in m for m in logs)
    assert not any("epoch 1/" in m for m in logs)


def test_cross_fitted_run_joins_its_fold_encoders(video_run):
    run_dir, _ = video_run
    import h5py
    from emonet.nn.io import load_model
    width = load_model(run_dir / "folds" / "video0" / "frame_encoder.keras", compile=False).output_shape[-1]
    assert load_model(run_dir / "frame_encoder.keras", compile=False).output_shape == (None, 2 * width)
    with h5py.File(run_dir / "embeddings.h5", "r") as f:
        assert all(clip.shape[1] == 2 * width for clip in f["clips"].values())
    model = load_model(run_dir / "model.keras", compile=False)
    assert {"video_branch", "audio_branch", "fusion_head"} <= {layer.name for layer in model.layers}


def test_fusion_pool_leans_on_the_branch_that_carries_the_label(video_run):
    """In the stripes corpus only the video carries the label, so the fitted pool weights video over audio."""
    run_dir, _ = video_run
    from emonet.nn.fusion import pool_weight
    from emonet.nn.io import load_model
    head = load_model(run_dir / "model.keras", compile=False).get_layer("fusion_head")
    assert pool_weight(head) > 0.5


def test_stacked_fusion_is_its_head_on_the_branch_log_probabilities(video_run):
    run_dir, _ = video_run
    from emonet.features.tables import SplitTable, audio_matrix
    from emonet.nn.fusion import log_probabilities
    from emonet.inference.trained_run import TrainedRun
    fused, video, audio = (TrainedRun(run_dir, model_name=name) for name in ("model", "ablation/video",
                                                                               "ablation/audio"))
    with FeatureStore(fused.config.data.store) as store:
        table = SplitTable(store, "val")
        embeddings, functionals = fused.store_embeddings(store, table.keys), audio_matrix(store, table.keys)
    proba = fused.predict(embeddings, functionals, table.has_audio)
    head_inputs = {"video_logp": log_probabilities(video.predict(embeddings, functionals, table.has_audio)),
                   "audio_logp": log_probabilities(audio.predict(embeddings, functionals, table.has_audio)),
                   "has_video": (table.n_frames > 0).astype(np.float32).reshape(-1, 1),
                   "has_audio": table.has_audio.astype(np.float32).reshape(-1, 1)}
    expected = fused.model.get_layer("fusion_head").predict(head_inputs, verbose=0)
    np.testing.assert_allclose(proba, expected, atol=1e-5)


def test_a_fresh_process_predicts_with_a_cross_fitted_run(video_run, tmp_path):
    """The custom layers of a cross-fitted model must load without training code imported first."""
    import sys
    run_dir, root = video_run
    clip = next((root / "Val_AFEW").rglob("*.mp4"))
    out = tmp_path / "p.csv"
    done = subprocess.run([sys.executable, "-m", "emonet.cli", "predict", str(clip), "--model", str(run_dir),
                           "-f", "csv", "-o", str(out), "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1 and rows[0]["emotion"] in ("Angry", "Happy", "Neutral", "Sad", "Disgust", "Fear", "Surprise")


def test_fold_contexts_train_on_the_other_folds_only(video_run):
    run_dir, _ = video_run
    cfg = load_config(run_dir.parent.parent / "stripes.yaml")
    with FeatureStore(cfg.data.store) as store:
        context = RunContext.open(cfg, RunDir(run_dir), store)
        keep = np.arange(len(context.train_table)) % 3 != 0
        fold = context.fold("video9", keep, mode="video")
        assert fold.train_table.keys == [k for k, kept in zip(context.train_table.keys, keep) if kept]
        assert np.array_equal(fold.train_table.labels, context.train_table.labels[keep])
        assert fold.cache_keys == context.cache_keys          # held-out clips are embedded too
        assert fold.val_table is context.val_table and fold.store is store
        assert fold.run.path == run_dir / "folds" / "video9" and fold.cfg.model.mode == "video"
        assert fold.class_weight == fold.train_table.class_weights()
        assert context.cfg.model.mode == "fusion" and context.run.path == run_dir   # parent untouched
    shutil.rmtree(run_dir / "folds" / "video9")


def test_existing_run_is_not_overwritten_silently(video_run):
    run_dir, _ = video_run
    from preprocessing.errors import ConfigError
    with pytest.raises(ConfigError, match="--resume .* or --overwrite"):
        train(load_config(run_dir.parent.parent / "stripes.yaml"))


def test_predict_with_missing_run_is_one_line(tmp_path, capsys):
    status = main(["predict", str(CREMA_D / "1001_DFA_HAP_XX.flv"), "--model", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "not a run directory" in err[0]
