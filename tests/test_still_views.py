"""Still images read in ten views (``model.still_views``): crops and mirror images, embeddings averaged."""

import shutil

import numpy as np
import pytest
import yaml

from emonet.cli import main
from emonet.features.frames import STILL_VIEW_SIDE, still_views
from emonet.inference.trained_run import SHIPPED_MODEL_DIR, TrainedRun
from preprocessing.store import FeatureStore

from conftest import CREMA_D
from test_shipped_model import STILLS


def test_ten_views_are_five_crops_then_their_mirror_images():
    crop = np.arange(48 * 48 * 3, dtype=np.uint32).reshape(48, 48, 3).astype(np.uint8)
    views = still_views(crop, 10)
    side = round(48 * STILL_VIEW_SIDE)
    assert views.shape == (10, side, side, 3) and views.dtype == np.uint8 and side == 44
    assert np.array_equal(views[0], crop[2:46, 2:46])                       # centre
    assert np.array_equal(views[1], crop[:44, :44]) and np.array_equal(views[4], crop[4:, 4:])
    assert np.array_equal(views[2], crop[:44, 4:]) and np.array_equal(views[3], crop[4:, :44])
    assert all(np.array_equal(views[5 + i], views[i][:, ::-1]) for i in range(5))
    assert np.array_equal(still_views(crop, 1), crop[None])
    with pytest.raises(ValueError, match="n_views must be 1 or 10; received 4"):
        still_views(crop, 4)


def model_with_views(tmp_path, views):
    """The shipped model copied to ``tmp_path`` with ``model.still_views: views``."""
    folder = tmp_path / f"views{views}"
    shutil.copytree(SHIPPED_MODEL_DIR, folder)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["model"]["still_views"] = views
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return TrainedRun(folder)


def test_a_still_is_the_mean_of_its_views_and_footage_is_read_as_before(tmp_path):
    one, ten = model_with_views(tmp_path, 1), model_with_views(tmp_path, 10)
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    expected = ten.encode_faces(still_views(photo[0], 10)).mean(axis=0)
    assert ten.encode_clip_faces(photo) == pytest.approx(expected[None], abs=1e-5)
    assert not np.allclose(one.encode_clip_faces(photo), expected, atol=1e-3)  # one view: the crop alone
    clip = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    assert ten.encode_clip_faces(clip) == pytest.approx(one.encode_clip_faces(clip), abs=1e-6)
    assert ten.encode_stills(np.concatenate([photo, photo[:, ::-1]])) == pytest.approx(
        np.stack([expected, ten.encode_faces(still_views(photo[0, ::-1], 10)).mean(axis=0)]), abs=1e-5)


@pytest.mark.slow
def test_a_stored_photo_is_read_in_views_as_predict_reads_it(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "Happy").mkdir(parents=True)
    shutil.copy(STILLS / "1001_DFA_HAP_XX.jpg", data / "Happy")
    shutil.copy(CREMA_D / "1001_DFA_HAP_XX.flv", data / "Happy")
    store_path = tmp_path / "store.h5"
    assert main(["extract", str(data), "--layout", "folder", "-o", str(store_path), "--no-progress"]) == 0
    capsys.readouterr()
    one, ten = model_with_views(tmp_path, 1), model_with_views(tmp_path, 10)
    with FeatureStore(store_path) as store:
        keys = store.keys()
        faces = {k: store.clip(k)["faces"][()] for k in keys}
        stored = dict(zip(keys, ten.store_embeddings(store, keys)))
        plain = dict(zip(keys, one.store_embeddings(store, keys)))
    photo = next(k for k in keys if len(faces[k]) == 1)
    video = next(k for k in keys if len(faces[k]) > 1)
    assert stored[photo] == pytest.approx(ten.encode_clip_faces(faces[photo]), abs=1e-5)
    assert not np.allclose(stored[photo], plain[photo], atol=1e-3)
    assert stored[video] == pytest.approx(plain[video], abs=1e-6)
