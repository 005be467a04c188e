"""Still images through extraction, the store and prediction: one-frame clips without audio.

Photos get face detection like video frames (a frame of a checked-in CREMA-D clip, saved as
JPEG, is the real face); the face-crop corpora (FER+, FER2013) are resized whole. Soft labels
go from the record to the store and back out through FeatureStore and SplitTable.
"""

import json

import cv2
import numpy as np
import pytest

from conftest import CREMA_D, TESTS
from emonet.cli import main
from emonet.features.tables import SplitTable
from emonet.inference.predict import display_names
from preprocessing import audio
from preprocessing.constants import CLASSES, IMAGE_SUFFIXES
from preprocessing.datasets import build_manifest
from preprocessing.errors import MediaError
from preprocessing.extraction import ExtractParams, extract_clip, process_record
from preprocessing.images import read_image
from preprocessing.media import decode_frames
from preprocessing.runner import run_extraction
from preprocessing.store import ClipFeatures, FeatureStore
from preprocessing.store_writer import StoreWriter
from test_face_corpora import face_image, fer2013_row, make_fer2013, make_ferplus

LEGACY_RUN = TESTS / "data" / "legacy_run" / "demo_crema_d-seed0"
PARAMS = ExtractParams(crop_size=32)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A real face: frame 10 of a CREMA-D clip, written as JPEG (RGB -> BGR for cv2)."""
    frame = decode_frames(CREMA_D / "1001_DFA_HAP_XX.flv", max_frames=20)[10]
    path = tmp_path_factory.mktemp("photos") / "face photo.jpg"
    assert cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return path


def test_read_image_grey_and_colour(tmp_path):
    grey = face_image(0)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    rgb = read_image(tmp_path / "g.png")
    assert rgb.shape == (48, 48, 3) and rgb.dtype == np.uint8
    assert all(np.array_equal(rgb[:, :, c], grey) for c in range(3))
    colour = np.zeros((20, 30, 3), np.uint8)
    colour[:, :, 0] = 200  # red in RGB
    cv2.imwrite(str(tmp_path / "c.bmp"), cv2.cvtColor(colour, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(read_image(tmp_path / "c.bmp"), colour)


@pytest.mark.parametrize(("content", "message"), [(b"", r"empty file"), (b"not an image at all", r"not a readable image")])
def test_read_image_errors(tmp_path, content, message):
    (tmp_path / "bad.jpg").write_bytes(content)
    with pytest.raises(MediaError, match=r"bad\.jpg: " + message):
        read_image(tmp_path / "bad.jpg")


def test_face_crop_is_the_resized_image(tmp_path):
    cv2.imwrite(str(tmp_path / "f.png"), face_image(3))
    arrays, attrs, notes = extract_clip(tmp_path / "f.png", ExtractParams(crop_size=64, keep_frames=True),
                                        face_crop=True)
    expected = cv2.resize(np.repeat(face_image(3)[:, :, None], 3, axis=2), (64, 64), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(arrays["faces"], expected[None])
    np.testing.assert_array_equal(arrays["frames"], expected[None])
    assert arrays["face_found"].tolist() == [True] and arrays["face_boxes"].tolist() == [[0, 0, 48, 48]]
    assert arrays["frame_index"].tolist() == [0] and arrays["mfcc"].shape == (1, PARAMS.n_mfcc)
    np.testing.assert_array_equal(arrays["audio_functionals"], audio.silent_functionals())
    assert attrs["n_frames"] == 1 and attrs["face_rate"] == 1.0 and not attrs["has_audio"] and attrs["audio_silent"]
    assert (attrs["width"], attrs["height"], attrs["duration"]) == (48, 48, 0.04) and notes == []


def test_photo_gets_face_detection(photo):
    arrays, attrs, notes = extract_clip(photo, PARAMS)
    assert arrays["faces"].shape == (1, 32, 32, 3) and arrays["face_found"].tolist() == [True]
    x0, y0, x1, y1 = arrays["face_boxes"][0]
    assert 0 <= x0 < x1 <= attrs["width"] and 0 <= y0 < y1 <= attrs["height"]
    assert (x1 - x0) < 0.9 * attrs["width"]  # a face box, not the whole image
    assert attrs["has_video"] and not attrs["has_audio"] and notes == []


def test_photo_without_a_face_gets_the_centre_crop(tmp_path):
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((60, 90), 128, np.uint8))
    arrays, attrs, notes = extract_clip(tmp_path / "wall.png", PARAMS)
    assert arrays["face_found"].tolist() == [False] and attrs["face_rate"] == 0.0
    assert notes == ["no face found in the image: stored the centre crop"]


def test_folder_layouts_accept_images(tmp_path):
    for suffix in IMAGE_SUFFIXES:
        (tmp_path / "Happy").mkdir(exist_ok=True)
        (tmp_path / "Happy" / f"p{suffix.upper()}").write_bytes(b"")
    m = build_manifest(tmp_path, layout="folder")
    assert len(m) == len(IMAGE_SUFFIXES) and not any(r.face_crop for r in m)


def test_extract_ferplus_end_to_end(tmp_path, capsys):
    root = make_ferplus(tmp_path / "ferplus")
    out = tmp_path / "ferplus.h5"
    status = main(["extract", str(root), "--layout", "ferplus", "--out", str(out), "--workers", "0",
                   "--crop-size", "48", "--no-progress"])
    assert status == 0, capsys.readouterr().err
    manifest = build_manifest(root, layout="ferplus")
    with FeatureStore(out) as store:
        assert len(store) == len(manifest) == 7 and store.failures() == {}
        rows = {r["key"]: r for r in store.index()}
        for record in manifest:
            row = rows[record.relpath.replace("/", "|")]
            assert (row["label"] or None, row["split"], row["face_crop"]) == (record.label, record.split, True)
            assert row["label_index"] == (CLASSES.index(record.label) if record.label else -1)
            np.testing.assert_allclose(row["soft_label"], record.soft_label, rtol=1e-6)
            assert row["soft_label"].dtype == np.float32 and row["face_rate"] == 1.0
            faces = store.clip(row["key"])["faces"][()]
            grey = cv2.imread(str(record.path), cv2.IMREAD_GRAYSCALE)
            np.testing.assert_array_equal(faces[0, :, :, 1], grey)  # 48 px: stored as is
        np.testing.assert_allclose(store.soft_label("FER2013Train|a.png"), np.array([0, 0, 0, 8, 0, 0, 1]) / 9,
                                   rtol=1e-6)
        table = SplitTable(store, "train", labelled=False)
        assert table.soft_labels.shape == (len(table), 7) and table.soft_labels.dtype == np.float32
        np.testing.assert_allclose(table.soft_labels.sum(axis=1), 1, rtol=1e-6)
        assert (table.labels == -1).sum() == 2  # b.png and i.png: no majority
        part = table.subset(table.labels >= 0)
        assert part.soft_labels.shape == (3, 7) and (part.soft_labels.argmax(axis=1) == part.labels).all()
        assert SplitTable(store, "test").soft_labels.shape == (1, 7)


def test_extract_fer2013_rows(tmp_path):
    rows = [fer2013_row(e, u, i) for i, (e, u) in enumerate([(0, "Training"), (4, "PublicTest")])]
    root = make_fer2013(tmp_path / "fer", rows + [fer2013_row(1, "Training", 9, n_values=2000)])
    manifest = build_manifest(root, layout="fer2013")
    summary = run_extraction(manifest, tmp_path / "fer.h5", PARAMS, workers=0, progress=False)
    assert (summary.done, summary.failed) == (2, 1)
    assert "pixels must be 2304 values" in summary.failures[0][1]
    with FeatureStore(tmp_path / "fer.h5") as store:
        assert [r["label"] for r in store.index()] == ["Angry", "Sad"]
        assert all(r["soft_label"] is None and r["face_crop"] for r in store.index())
        assert SplitTable(store, "train").soft_labels is None
        face = store.clip("fer2013.csv#row00000")["faces"][0]
        pixels = np.random.default_rng(0).integers(0, 256, 48 * 48).reshape(48, 48).astype(np.uint8)
        np.testing.assert_array_equal(face[:, :, 0], cv2.resize(pixels, (32, 32), interpolation=cv2.INTER_AREA))


def test_store_without_soft_labels_reads_as_before(tmp_path):
    """A clip written without the new attributes (as every store before them) reads soft_label None."""
    path = tmp_path / "old.h5"
    with StoreWriter(path, params={}, versions={}, audio_feature_names=["f0"]) as writer:
        writer.write_clip(ClipFeatures(key="a.mp4", arrays={"faces": np.zeros((2, 8, 8, 3), np.uint8)}, attrs={
            "label": "Sad", "label_index": 5, "split": "train", "speaker": "", "subject": "", "source": "/x/a.mp4",
            "has_audio": True, "audio_silent": False, "n_frames": 2}))
    with FeatureStore(path) as store:
        (row,) = store.index()
        assert row["soft_label"] is None and store.soft_label("a.mp4") is None and "face_crop" not in row
        assert SplitTable(store, "train").soft_labels is None


def test_process_record_passes_the_record_facts(tmp_path):
    root = make_ferplus(tmp_path / "ferplus")
    record = build_manifest(root, layout="ferplus").records[0]
    status, clip = process_record(record, PARAMS)
    assert status == "ok" and clip.attrs["face_crop"] is True and clip.arrays["face_boxes"].tolist() == [[0, 0, 48, 48]]
    assert clip.attrs["soft_label"].tolist() == pytest.approx(list(record.soft_label))


@pytest.mark.slow
def test_predict_still_images(photo, tmp_path, capsys):
    grey = tmp_path / "grey face.png"
    cv2.imwrite(str(grey), cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2GRAY))
    out = tmp_path / "p.json"
    status = main(["predict", str(photo), str(grey), "--model", str(LEGACY_RUN), "--format", "json",
                   "-o", str(out), "--no-progress"])
    assert status == 0, capsys.readouterr().err
    results = json.loads(out.read_text())
    assert [r["clip"] for r in results] == display_names([photo, grey])  # as in the CSV and the table
    for r in results:
        assert r["emotion"] in CLASSES and abs(sum(r[c] for c in CLASSES) - 1) < 1e-4
        assert r["has_audio"] is False and r["face_rate"] == 1.0
