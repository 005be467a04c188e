"""Test-time speed copies (``model.test_audio_speeds``): the voice hears each clip at several speeds and the
class probabilities are averaged -- in ``emonet predict``, the Python API and ``emonet evaluate`` alike.

Real ffmpeg tone "utterances", a real HDF5 store and a real (tiny) Keras audio run.
"""

import csv
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from emonet.evaluation.evaluate import evaluate_run
from emonet.experiment.config import load_config
from emonet.inference.predict import predict_clips
from emonet.inference.trained_run import TrainedRun
from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError
from preprocessing.extraction import ExtractParams, extract_clip
from preprocessing.media import ffmpeg_binary
from preprocessing.runner import run_extraction
from preprocessing.datasets import build_manifest
from preprocessing.store import FeatureStore

SPEEDS = [0.9, 1.1]


def _wav(path, hz, seconds=0.8):
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency={hz}:sample_rate=16000:duration={seconds}", "-ac", "1", str(path)],
                   check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    """A ``csv`` corpus of tone 'utterances' (the class is in the pitch) and a config training on it."""
    root = tmp_path_factory.mktemp("tones")
    rows = []
    for label, hz in (("Angry", 300), ("Happy", 700), ("Neutral", 1500), ("Sad", 3000)):
        for split, n in (("train", 3), ("val", 2)):
            for i in range(n):
                path = _wav(root / f"{split}_{label}_{i}.wav", hz * (1 + 0.04 * i))
                rows.append([str(path), label, split, f"{split}{i}", f"{split}{i}"])
    with open(root / "manifest.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label", "split", "speaker", "subject"]] + rows)
    return root


def _config(tmp, root, test_speeds, name="tta"):
    config = {"seed": 0, "name": name, "output_dir": str(tmp / "runs"),
              "data": {"root": str(root), "layout": "csv", "store": str(tmp / f"{name}.h5"), "workers": 0},
              "extract": {"max_frames": 1},
              "model": {"mode": "audio", "reducer": "none", "audio_units": [16], "head_units": [],
                        "test_audio_speeds": test_speeds},
              "train": {"epochs": 3, "patience": 0, "keep": "last", "batch_size": 4, "folds": 0}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_config_checks_the_test_speeds_and_names_the_file(tmp_path, tones):
    assert load_config(_config(tmp_path, tones, SPEEDS)).model.test_audio_speeds == SPEEDS
    assert load_config(_config(tmp_path, tones, [])).model.test_audio_speeds == []
    with pytest.raises(ConfigError, match=r"tta.yaml: model.test_audio_speeds: .*received 1"):
        load_config(_config(tmp_path, tones, [1]))


@pytest.fixture(scope="module")
def tta_run(tmp_path_factory, tones):
    from emonet.training.trainer import train
    tmp = tmp_path_factory.mktemp("tta_run")
    return train(load_config(_config(tmp, tones, SPEEDS)))


def _own_and_copies(path):
    """A clip's functionals (1, D) and its copies at SPEEDS (K, 1, D), extracted as prediction does."""
    arrays, _, _ = extract_clip(path, ExtractParams(max_frames=1, audio_speeds=tuple(SPEEDS)))
    return arrays["audio_functionals"][None], arrays["audio_speed_functionals"][:, None]


def _per_clip(copies):
    """Copies (K, n, D) as ``TrainedRun.predict`` takes them: per clip, (K, D)."""
    return list(np.swapaxes(copies, 0, 1))


@pytest.mark.slow
def test_the_probabilities_are_the_mean_over_the_clip_and_its_copies(tta_run, tones):
    run = TrainedRun(tta_run)
    assert run.test_audio_speeds == tuple(SPEEDS)
    own, copies = _own_and_copies(tones / "val_Happy_0.wav")
    has_audio = np.array([True])
    each = [run.predict(None, x, has_audio) for x in (own, *copies)]  # without copies: the clip alone
    averaged = run.predict(None, own, has_audio, audio_copies=_per_clip(copies))
    np.testing.assert_allclose(averaged, np.mean(each, axis=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(each[0], each[1], atol=1e-4)  # the copies do change what the voice hears
    with pytest.raises(Exception, match="1 audio copies for the 2 test_audio_speeds"):
        run.predict(None, own, has_audio, audio_copies=_per_clip(copies[:1]))
    # in one batch, a clip without copies keeps its own probabilities
    mixed = run.predict(None, np.concatenate([own, own]), np.array([True, True]),
                        audio_copies=[_per_clip(copies)[0], None])
    np.testing.assert_allclose(mixed, np.concatenate([averaged, each[0]]), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_predict_and_evaluate_average_the_same_copies(tta_run, tones, tmp_path, caplog):
    run = TrainedRun(tta_run)
    clips = sorted(tones.glob("val_*.wav"))
    expected = np.concatenate([run.predict(None, own, np.array([True]), audio_copies=_per_clip(copies))
                               for own, copies in map(_own_and_copies, clips)])
    for workers in (0, 1):
        results = predict_clips(clips, run if workers == 0 else tta_run, progress=False, workers=workers)[0]
        got = np.array([[r["probabilities"][c] for c in CLASSES] for r in results])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)

    # evaluate: a cache extracted without the copies is extracted again, then scored with them
    cache = tmp_path / f"eval_{tones.name}_features.h5"   # evaluate's own cache of the folder
    records = [r for r in build_manifest(tones, layout="csv").records if r.split == "val"]
    run_extraction(records, cache, ExtractParams(max_frames=1), workers=0)
    caplog.set_level("INFO")
    evaluate_run(tta_run, data=tones, layout="csv", out_dir=tmp_path / "eval", baselines=False, store_dir=tmp_path)
    assert "cached with other extraction settings (audio_speeds)" in caplog.text
    assert "extracted with other settings than the run" not in caplog.text  # the copies add, they change nothing
    with FeatureStore(cache) as store:
        assert store.params["audio_speeds"] == SPEEDS
    with open(tmp_path / "eval" / "predictions.csv", newline="") as handle:
        rows = {Path(r["source"]).name: r for r in csv.DictReader(handle)}
    assert sorted(rows) == [c.name for c in clips]
    for clip, probabilities in zip(clips, expected):  # predictions.csv keeps 4 decimals
        np.testing.assert_allclose([float(rows[clip.name][f"p_{c}"]) for c in CLASSES], probabilities, atol=6e-5)


@pytest.mark.slow
def test_a_run_without_test_speeds_ignores_copies(tmp_path, tones):
    from emonet.training.trainer import train
    run = TrainedRun(train(load_config(_config(tmp_path, tones, [], name="plain"))))
    assert run.test_audio_speeds == ()
    own, copies = _own_and_copies(tones / "val_Sad_0.wav")
    np.testing.assert_array_equal(run.predict(None, own, np.array([True]), audio_copies=_per_clip(copies)),
                                  run.predict(None, own, np.array([True])))
    result = predict_clips([tones / "val_Sad_0.wav"], run, progress=False)[0][0]
    np.testing.assert_allclose([result["probabilities"][c] for c in CLASSES],
                               run.predict(None, own, np.array([True]))[0], rtol=1e-4, atol=1e-5)


def test_fusion_prediction_extracts_copies_only_for_clips_without_a_face(tmp_path):
    """A CREMA-D clip (a face in every frame) gets no copies; its audio alone (no video) gets them."""
    from conftest import CREMA_D
    from emonet.inference.runtime import params_for_prediction
    clip = CREMA_D / "1001_DFA_ANG_XX.flv"
    sound = tmp_path / "sound.wav"
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-i", str(clip), "-vn", "-ac", "1", str(sound)],
                   check=True, capture_output=True)
    params = params_for_prediction({"max_frames": 25}, SPEEDS, mode="fusion")
    assert params.speed_copies_without_face_only and params.as_dict()["speed_copies_without_face_only"]
    with_face, attrs, _ = extract_clip(clip, params)
    assert attrs["face_rate"] > 0 and "audio_speed_functionals" not in with_face
    voice_only, _, _ = extract_clip(sound, params)
    assert voice_only["audio_speed_functionals"].shape == (2, len(voice_only["audio_functionals"]))
    # an audio run hears copies of every clip, and the default settings keep older stores matching
    assert not params_for_prediction({"max_frames": 25}, SPEEDS, mode="audio").speed_copies_without_face_only
    assert "speed_copies_without_face_only" not in ExtractParams().as_dict()


@pytest.mark.slow
def test_a_store_without_the_copies_is_scored_on_the_clips_alone_with_a_warning(tta_run, tones, tmp_path, caplog):
    run = TrainedRun(tta_run)
    records = [r for r in build_manifest(tones, layout="csv").records if r.split == "val"]
    store = tmp_path / "plain.h5"
    run_extraction(records, store, ExtractParams(max_frames=1), workers=0)
    caplog.set_level("INFO")
    result = evaluate_run(tta_run, data=store, out_dir=tmp_path / "eval", baselines=False)
    assert f"{store} holds no audio copies at the run's test_audio_speeds [0.9, 1.1]" in caplog.text
    clips = sorted(tones.glob("val_*.wav"))
    alone = np.concatenate([run.predict(None, _own_and_copies(c)[0], np.array([True])) for c in clips])
    with open(tmp_path / "eval" / "predictions.csv", newline="") as handle:
        rows = {Path(r["source"]).name: r for r in csv.DictReader(handle)}
    for clip, probabilities in zip(clips, alone):
        np.testing.assert_allclose([float(rows[clip.name][f"p_{c}"]) for c in CLASSES], probabilities, atol=6e-5)
    assert result["n"] == len(clips)


@pytest.mark.slow
def test_timeline_windows_of_an_audio_file_are_heard_with_the_copies(tta_run, tmp_path):
    """No video stream competes for the CPU, so each window gets the mean over itself and its copies, in this
    process and in the helper processes alike."""
    from emonet.inference.predict import prediction_params
    from emonet.inference.timeline import predict_timeline
    from emonet.inference.window_streams import sample_range, window_audio_features
    from preprocessing.media import decode_audio
    run = TrainedRun(tta_run)
    sound = _wav(tmp_path / "long.wav", 700, seconds=2.8)
    y, n_mfcc = decode_audio(sound), prediction_params(run).n_mfcc
    for workers in (0, 1):
        rows = predict_timeline(sound, run if workers == 0 else tta_run, window=1.0, hop=1.0, workers=workers).rows
        assert len(rows) == 3
        for row in rows:
            a, b = sample_range(row["start"], row["end"])
            own, has_audio, copies = window_audio_features(y[a:b], n_mfcc, SPEEDS)
            assert has_audio and copies.shape == (len(SPEEDS), len(own))
            expected = run.predict(None, own[None], np.array([True]), audio_copies=[copies])[0]
            np.testing.assert_allclose([row["probabilities"][c] for c in CLASSES], expected, rtol=1e-4, atol=1e-5)
    alone = run.predict(None, own[None], np.array([True]))[0]
    assert not np.allclose(alone, expected, atol=1e-4)  # the copies do change the window's answer
