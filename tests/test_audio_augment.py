"""Speed-perturbed training audio: the perturbation, its extraction into the store, and training on it.

Real ffmpeg clips, a real HDF5 store and (slow test) a real Keras training of an audio run.
"""

import csv
import subprocess

import numpy as np
import pytest
import yaml

from emonet.experiment.config import load_config
from emonet.features.tables import SplitTable, audio_matrix, audio_speed_matrix
from emonet.training.clip_model import sample_speed_copies
from preprocessing.audio import audio_functionals, feature_names
from preprocessing.audio_augment import check_speeds, speed_functionals, speed_perturb
from preprocessing.datasets import build_manifest
from preprocessing.errors import ConfigError, StoreError
from preprocessing.extraction import ExtractParams, extract_clip
from preprocessing.media import ffmpeg_binary
from preprocessing.runner import run_extraction
from preprocessing.store import FeatureStore

SR = 16000
PITCH = feature_names().index("pitch_mean")
CENTROID = feature_names().index("spectral_centroid_mean")


def _tone(hz, seconds=1.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _wav(path, hz, seconds=1.0):
    """A mono 16 kHz WAV of a ``hz`` sine, written by ffmpeg."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency={hz}:sample_rate={SR}:duration={seconds}", "-ac", "1", str(path)],
                   check=True, capture_output=True)
    return path


# ----------------------------------------------------------------------------- the perturbation
@pytest.mark.parametrize("factor, length", [(1.25, 12800), (0.8, 20000), (2.0, 8000)])
def test_speed_perturb_scales_the_duration(factor, length):
    assert speed_perturb(_tone(200), factor).shape == (length,)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturb_scales_the_pitch(factor):
    y = speed_perturb(_tone(200), factor)
    pitch = audio_functionals(y)[0][PITCH]
    assert pitch == pytest.approx(200 * factor, rel=0.02)


def test_speed_perturb_of_an_empty_signal_is_empty():
    assert speed_perturb(np.zeros(0, np.float32), 1.1).shape == (0,)


def test_speed_functionals_has_one_row_per_factor_in_order():
    rows = speed_functionals(_tone(200), (0.9, 1.1))
    assert rows.shape == (2, len(feature_names())) and rows.dtype == np.float32
    assert rows[0, PITCH] == pytest.approx(180, rel=0.02) and rows[1, PITCH] == pytest.approx(220, rel=0.02)
    assert speed_functionals(_tone(200), ()).shape == (0, len(feature_names()))


@pytest.mark.parametrize("speeds, match", [
    ([1.0], "other than 1; received 1.0"),
    ([0.3], r"in \[0.5, 2.0\].*received 0.3"),
    (["fast"], "received 'fast'"),
    ([True], "received True"),
    ([0.9, 0.9], "repeat"),
    ("0.9", "must be a list"),
    (0.9, "must be a list"),
])
def test_bad_speeds_are_refused_with_the_value(speeds, match):
    with pytest.raises(ConfigError, match=match):
        check_speeds(speeds)


# ----------------------------------------------------------------------------- extraction and store
def test_default_params_leave_speeds_out_so_older_stores_still_match():
    assert "audio_speeds" not in ExtractParams().as_dict()
    params = ExtractParams(audio_speeds=[0.9, 1.1])
    assert params.audio_speeds == (0.9, 1.1) and params.as_dict()["audio_speeds"] == [0.9, 1.1]
    with pytest.raises(ConfigError, match="extraction parameter audio_speeds"):
        ExtractParams(audio_speeds=[3.0])


def test_extract_clip_stores_speed_copies_only_when_asked(tmp_path):
    path = _wav(tmp_path / "tone.wav", 200)
    plain, _, _ = extract_clip(path, ExtractParams())
    assert "audio_speed_functionals" not in plain
    arrays, _, _ = extract_clip(path, ExtractParams(audio_speeds=(0.9, 1.1)))
    copies = arrays["audio_speed_functionals"]
    assert copies.shape == (2, len(feature_names()))
    np.testing.assert_array_equal(arrays["audio_functionals"], plain["audio_functionals"])
    assert copies[0, PITCH] == pytest.approx(180, rel=0.03) and copies[1, PITCH] == pytest.approx(220, rel=0.03)


def test_a_clip_without_audio_gets_zero_copies(clip_factory):
    arrays, _, _ = extract_clip(clip_factory("video_only.mp4", audio=False, seconds=1.0),
                                ExtractParams(max_frames=5, audio_speeds=(0.9,)))
    assert arrays["audio_speed_functionals"].shape == (1, len(feature_names()))
    assert not arrays["audio_speed_functionals"].any()


def _speech_folder(root, *, n_train=3, n_val=2):
    """A ``csv`` layout corpus of sine 'utterances', the class in the tone; one speaker per clip index."""
    rows = []
    for c, (label, hz) in enumerate((("Angry", 300), ("Happy", 700), ("Neutral", 1500), ("Sad", 3000))):
        for split, n in (("train", n_train), ("val", n_val)):
            for i in range(n):
                path = _wav(root / f"{split}_{label}_{i}.wav", hz * (1 + 0.03 * i), seconds=0.8)
                rows.append([str(path), label, split, f"{split}{i}", f"{split}{i}"])
    with open(root / "manifest.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label", "split", "speaker", "subject"]] + rows)
    return root


@pytest.fixture(scope="module")
def speech_folder(tmp_path_factory):
    return _speech_folder(tmp_path_factory.mktemp("speech"))


def test_store_serves_the_copies_of_a_split(speech_folder, tmp_path):
    records = build_manifest(speech_folder, layout="csv").records
    out = tmp_path / "speed.h5"
    summary = run_extraction(records, out, ExtractParams(max_frames=1, audio_speeds=(0.9, 1.1)), workers=0)
    assert summary.failed == 0
    with FeatureStore(out) as store:
        table = SplitTable(store, "train")
        copies = audio_speed_matrix(store, table.keys, table.has_audio)
        assert copies.shape == (2, len(table), len(feature_names()))
        original = audio_matrix(store, table.keys)
        # a sine's spectral centroid is its frequency: scaled by the speed (the tones exceed the pitch range)
        np.testing.assert_allclose(copies[0, :, CENTROID], 0.9 * original[:, CENTROID], rtol=0.05)
        np.testing.assert_allclose(copies[1, :, CENTROID], 1.1 * original[:, CENTROID], rtol=0.05)


def test_a_store_without_copies_is_refused_naming_the_file(speech_folder, tmp_path):
    records = [r for r in build_manifest(speech_folder, layout="csv").records if r.split == "val"]
    out = tmp_path / "plain.h5"
    run_extraction(records, out, ExtractParams(max_frames=1), workers=0)
    with FeatureStore(out) as store:
        table = SplitTable(store, "val")
        with pytest.raises(StoreError, match=rf"{out}: the store holds no speed-perturbed audio"):
            audio_speed_matrix(store, table.keys, table.has_audio)


# ----------------------------------------------------------------------------- training
def test_sampling_draws_the_clip_or_one_of_its_copies():
    train = np.zeros((400, 3), np.float32)
    speeds = np.stack([np.full((400, 3), k, np.float32) for k in (1, 2)])
    rng = np.random.default_rng(0)
    drawn = sample_speed_copies(train, speeds, rng)
    assert drawn.shape == (400, 3) and np.all(drawn == drawn[:, :1])
    assert set(np.unique(drawn)) == {0, 1, 2} and 0.2 < np.mean(drawn[:, 0] == 0) < 0.45
    assert not train.any()   # the caller's array is left alone
    np.testing.assert_array_equal(drawn, sample_speed_copies(train, speeds, np.random.default_rng(0)))


def test_without_copies_sampling_returns_the_clips_and_draws_nothing():
    train, rng = np.ones((5, 3), np.float32), np.random.default_rng(0)
    assert sample_speed_copies(train, None, rng) is train
    assert rng.integers(0, 10**9) == np.random.default_rng(0).integers(0, 10**9)


def _write_config(tmp, root, speeds):
    config = {"seed": 0, "name": "tones", "output_dir": str(tmp / "runs"),
              "data": {"root": str(root), "layout": "csv", "store": str(tmp / "tones.h5"), "workers": 0},
              "extract": {"max_frames": 1, "audio_speeds": speeds},
              "model": {"mode": "audio", "reducer": "none"},
              "train": {"epochs": 4, "patience": 0, "batch_size": 4, "folds": 0}}
    path = tmp / "tones.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_config_checks_the_speeds_and_names_the_file(tmp_path, speech_folder):
    assert load_config(_write_config(tmp_path, speech_folder, [0.9, 1.1])).extract.audio_speeds == [0.9, 1.1]
    assert load_config(_write_config(tmp_path, speech_folder, [])).extract.audio_speeds == []
    with pytest.raises(ConfigError, match=r"tones.yaml: extract.audio_speeds: .*received 1"):
        load_config(_write_config(tmp_path, speech_folder, [1]))


@pytest.mark.slow
def test_an_audio_run_trains_on_the_copies(tmp_path, speech_folder, caplog):
    from emonet.experiment.rundir import RunDir
    from emonet.training.trainer import train
    caplog.set_level("INFO")
    run_dir = train(load_config(_write_config(tmp_path, speech_folder, [0.9, 1.1])))
    assert "2 speed-perturbed copies per training clip" in caplog.text
    run = RunDir(run_dir)
    assert run.model_path.is_file()
    with FeatureStore(tmp_path / "tones.h5") as store:
        train_x = audio_matrix(store, SplitTable(store, "train").keys)
    reducer = np.load(run.reducer_path)
    mean = next(reducer[k] for k in reducer.files if k.startswith("mean"))
    np.testing.assert_allclose(mean, train_x.mean(axis=0), rtol=1e-5, atol=1e-6)  # fitted on the clips themselves
