"""The shipped model, emonet-base: in the package, safe to load, used when no run is given."""

import json
from pathlib import Path

import numpy as np
import pytest

from emonet.cli import main
from emonet.inference.trained_run import SHIPPED_MODEL_DIR, TrainedRun, shipped_model_dir
from emonet.training.base_model import SHIPPED_FILES
from preprocessing.audio import feature_names
from preprocessing.constants import CLASSES

from conftest import CREMA_D

REPO = Path(__file__).resolve().parents[1]
STILLS = REPO / "tests" / "data" / "stills"


def test_the_package_ships_the_model_with_its_card_and_under_25_mb():
    folder = shipped_model_dir()
    assert all((folder / name).is_file() for name in SHIPPED_FILES)
    assert (folder / "MODEL_CARD.md").is_file()
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 25 * 2 ** 20
    parts = json.loads((folder / "parts.json").read_text())
    assert 0.0 <= parts["fusion_video_weight"] <= 1.0


def test_the_shipped_model_loads_in_safe_mode_as_a_fusion_run():
    run = TrainedRun(SHIPPED_MODEL_DIR)  # emonet.nn.io.load_model: safe_mode=True
    assert run.mode == "fusion" and run.frame_encoder is not None and run.reducer is not None
    proba = run.predict([np.zeros((0, run.frame_encoder.output_shape[-1]), np.float32)], np.zeros((1, len(feature_names()))),
                        np.zeros(1, bool))
    assert proba.shape == (1, 7) and np.isclose(proba.sum(), 1.0, atol=1e-4)


@pytest.mark.slow
def test_predict_without_a_model_classifies_clips_and_photos(capsys):
    clips = [CREMA_D / "1001_DFA_HAP_XX.flv", STILLS / "1001_DFA_HAP_XX.jpg"]
    assert main(["predict", *map(str, clips), "--format", "json", "--no-progress"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [Path(r["clip"]).name for r in rows] == [c.name for c in clips]
    assert all(abs(sum(r[c] for c in CLASSES) - 1.0) < 1e-3 for r in rows)  # one field per class, as in CSV
    assert rows[0]["has_audio"] and not rows[1]["has_audio"]
    assert rows[1]["emotion"] == "Happy"  # a broad smile, photographed from the CREMA-D clip


def test_evaluate_without_a_run_needs_data(capsys):
    assert main(["evaluate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "emonet-base has no validation split of its own: pass --data" in err[0]


@pytest.mark.slow
def test_evaluate_with_the_shipped_model_writes_into_the_working_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in SHIPPED_MODEL_DIR.iterdir())
    assert main(["evaluate", "--data", str(CREMA_D), "--layout", "crema_d"]) == 0
    out = tmp_path / "emonet-base_eval_crema_d"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 6 and 0.0 <= metrics["uar"] <= 1.0
    assert (out / "eval_crema_d_features.h5").is_file()
    assert sorted(p.name for p in SHIPPED_MODEL_DIR.iterdir()) == before
    assert "UAR" in capsys.readouterr().out


@pytest.mark.slow
def test_a_store_of_the_older_audio_width_is_named_when_the_model_needs_more(tmp_path, capsys):
    """A store whose clips hold the 1,475 functionals of older versions (made here by cutting a fresh
    store's vectors to that width) is refused in one line that names it, before any model call."""
    store = tmp_path / "older.h5"
    assert main(["extract", str(CREMA_D), "--layout", "crema_d", "--out", str(store), "--no-progress"]) == 0
    cut_to_older_width(store)
    capsys.readouterr()
    assert main(["evaluate", "--data", str(store), "--out", str(tmp_path / "eval")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "older.h5: holds 1475 audio functionals per clip, the model reads 3361" in err[0]


@pytest.mark.slow
def test_evaluate_on_a_folder_replaces_its_own_cache_left_by_an_older_version(tmp_path, capsys):
    """evaluate --data FOLDER caches the folder's features beside its results; a cache of the older
    width (as `make demo` left it before session 7) is extracted again, with a note, not refused."""
    from preprocessing.store import FeatureStore
    out = tmp_path / "eval"
    assert main(["evaluate", "--data", str(CREMA_D), "--layout", "crema_d", "--out", str(out)]) == 0
    cache = out / "eval_crema_d_features.h5"
    cut_to_older_width(cache)
    capsys.readouterr()
    assert main(["evaluate", "--data", str(CREMA_D), "--layout", "crema_d", "--out", str(out)]) == 0
    assert "cached by an older EmoNet (1475 audio functionals per clip, today 3361)" in capsys.readouterr().err
    with FeatureStore(cache) as store:
        assert len(store) == 6 and len(store.audio_feature_names) == 3361
    assert json.loads((out / "metrics.json").read_text())["n"] == 6


def cut_to_older_width(store):
    """Cut every clip's audio functionals (and their names) of ``store`` to the 1,475 of older versions."""
    import h5py

    from preprocessing.constants import LEGACY_WIDTH
    with h5py.File(store, "a") as f:
        names = f["audio_feature_names"][:LEGACY_WIDTH]
        del f["audio_feature_names"]
        f.create_dataset("audio_feature_names", data=names, dtype=h5py.string_dtype())
        for clip in f["clips"].values():
            older = clip["audio_functionals"][:LEGACY_WIDTH]
            del clip["audio_functionals"]
            clip.create_dataset("audio_functionals", data=older)
