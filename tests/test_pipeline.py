"""Training, evaluation and prediction end to end on tiny generated corpora (real Keras training).

Two generated AFEW-layout corpora, four classes each:
- "audio" corpus: the label is only in the audio (a class-specific tone), the picture is the same;
- "video" corpus: the label is only in the picture (horizontal stripes, a class-specific period),
  the sound is the same.
Each is learned well above chance by the mode that can see it. The trained runs are built
once per session and shared (TensorFlow's first steps are slow).
"""

import csv
import dataclasses
import json
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf
import yaml

from emonet.cli import main
from emonet.experiment.config import load_config
from emonet.experiment.rundir import RunDir
from emonet.features.frames import augment_footage, prepare_faces
from emonet.features.tables import SplitTable
from emonet.inference.trained_run import TrainedRun
from emonet.nn.io import load_model
from emonet.training.context import RunContext
from emonet.training.trainer import train
from preprocessing.audio import feature_names
from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError
from preprocessing.media import ffmpeg_binary
from preprocessing.store import FeatureStore

from conftest import CREMA_D, collected_messages, make_clip

pytestmark = pytest.mark.slow

CLASSES4 = ("Angry", "Happy", "Neutral", "Sad")
TONES = {"Angry": 300, "Happy": 700, "Neutral": 1500, "Sad": 3000}       # Hz
STRIPES = {"Angry": 48, "Happy": 24, "Neutral": 12, "Sad": 6}            # period in px of a 96 px frame
N_TRAIN, N_VAL = 6, 3


def _clip(path, *, tone, period, seed):
    """1.2 s of grey noise with white horizontal lines every ``period`` px and a ``tone`` Hz sine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    video = (f"color=c=0x{60 + 10 * (seed % 5):02x}{60 + 10 * (seed % 5):02x}{60 + 10 * (seed % 5):02x}"
             f":s=96x96:r=25:d=1.2,drawgrid=w=iw:h={period}:y={seed % 5}:t=3:c=white,noise=alls=12:allf=t")
    audio = f"sine=frequency={tone * (1 + 0.02 * (seed % 3))}:sample_rate=16000:duration=1.2"
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio,
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)], check=True)


def _corpus(root, *, label_in):
    for split, n in (("Train_AFEW", N_TRAIN), ("Val_AFEW", N_VAL)):
        for c, label in enumerate(CLASSES4):
            for i in range(n):
                seed = 31 * c + i + (100 if split == "Val_AFEW" else 0)
                tone = TONES[label] if label_in == "audio" else 440
                period = STRIPES[label] if label_in == "video" else 16
                _clip(root / split / label / f"{label.lower()}_{i}.mp4", tone=tone, period=period, seed=seed)
    return root


def _config(tmp, root, mode, name, *, train_overrides=None, model_overrides=None):
    cfg = {
        "seed": 0, "name": name, "output_dir": str(tmp / "runs"),
        "data": {"root": str(root), "layout": "afew", "store": str(tmp / f"{name}.h5"), "workers": 2},
        "extract": {"crop_size": 32, "max_frames": 40},
        "model": {"mode": mode, "image_size": 32, "n_frames": 6, "lstm_units": 16, "audio_dim": 32,
                  **(model_overrides or {})},
        "train": {"frame_epochs": 6, "frames_per_clip": 8, "epochs": 40, "patience": 0, "batch_size": 8,
                  "learning_rate": 3e-3, **(train_overrides or {})},
        "smoke": {"train": {"frame_epochs": 1, "epochs": 1}},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def video_run(tmp_path_factory):
    """A fusion run (with its ablation heads) on the corpus whose label is only in the picture."""
    tmp = tmp_path_factory.mktemp("video_corpus")
    root = _corpus(tmp / "data", label_in="video")
    config = _config(tmp, root, "fusion", "stripes", train_overrides={"folds": 2})
    assert main(["train", str(config)]) == 0
    return tmp / "runs" / "stripes-seed0", root


@pytest.fixture(scope="session")
def audio_run(tmp_path_factory):
    """An audio-only run on the corpus whose label is only in the sound: one hidden layer, no head layers."""
    tmp = tmp_path_factory.mktemp("audio_corpus")
    root = _corpus(tmp / "data", label_in="audio")
    shape = {"audio_units": [24], "head_units": []}
    run_dir = train(load_config(_config(tmp, root, "audio", "tones", model_overrides=shape)))
    return run_dir, root


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
        _clip(other / label / "x.mp4", tone=440, period=STRIPES[label], seed=200 + c)
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


# --------------------------------------------------------------------------- end-to-end schedule, fine-tuning
# Both runs read the feature store of the fusion run (``data.root`` = the .h5 store: no extraction).

@pytest.fixture(scope="session")
def end_to_end_run(video_run):
    """A video-only run with ``schedule: end_to_end`` on the stripes corpus's store."""
    run_dir, root = video_run
    tmp = run_dir.parent.parent
    config = _config(tmp, tmp / "stripes.h5", "video", "stripes_e2e",
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
    config = _config(tmp, tmp / "stripes.h5", "video", "stripes_finetune",
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


# ----------------------------------------------------------------------------- model.mode: frames

@pytest.fixture(scope="session")
def frames_run(video_run, tmp_path_factory):
    """The frame CNN alone on the stripes corpus (label only in the picture), from video_run's store."""
    run_dir, _ = video_run
    store = run_dir.parent.parent / "stripes.h5"
    tmp = tmp_path_factory.mktemp("frames_run")
    cfg = {"seed": 0, "name": "stripes_frames", "output_dir": str(tmp / "runs"),
           "data": {"root": str(store)}, "extract": {"crop_size": 32, "max_frames": 40},
           "model": {"mode": "frames", "image_size": 32, "n_frames": 6},
           "train": {"frame_epochs": 6, "frames_per_clip": 8, "patience": 0, "batch_size": 8, "learning_rate": 3e-3,
                     "augment_policy": "footage", "class_weights": "sqrt", "folds": 0}}
    (tmp / "frames.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp / "frames.yaml")]) == 0
    return tmp / "runs" / "stripes_frames-seed0", store


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
