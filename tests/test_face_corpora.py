"""Layouts of the new corpora: FER+ and FER2013 (face crops labelled by tables), EmoDB and URDU (speech).

Manifests only: nothing is decoded here (extraction of still images is tests/test_images.py).
The tests at the end measure the real corpora in ../shared/data and skip when it is absent.
"""

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import shared
from preprocessing.constants import CLASSES
from preprocessing.datasets import ClipRecord, assign_speaker_splits, build_manifest
from preprocessing.errors import DatasetError, MediaError
from preprocessing.face_corpora import FER2013_EMOTIONS, ferplus_labels, read_fer2013_face

# votes: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
FERPLUS_ROWS = {
    "FER2013Train": {
        "a.png": [0, 8, 1, 0, 0, 0, 0, 0, 1, 0],   # Happy, clear
        "b.png": [4, 0, 0, 4, 1, 0, 0, 0, 1, 0],   # Neutral and Sad tie: soft label only
        "c.png": [2, 0, 0, 0, 0, 0, 0, 0, 6, 2],   # mostly unknown: dropped
        "d.png": [0, 0, 0, 0, 0, 0, 0, 2, 0, 8],   # not a face: dropped
        "e.png": [3, 0, 0, 0, 0, 0, 0, 5, 2, 0],   # contempt on top: dropped
        "f.png": [4, 0, 0, 0, 0, 0, 0, 4, 2, 0],   # contempt ties Neutral: the seven win ties, Neutral
        "g.png": [0, 0, 0, 0, 0, 0, 0, 5, 5, 0],   # no seven-class vote: dropped
        "h.png": [4, 0, 0, 0, 2, 2, 0, 0, 2, 0],   # exactly half of the seven-class votes: Neutral
        "i.png": [3, 0, 2, 0, 2, 0, 0, 0, 3, 0],   # unknown ties the top emotion: kept; 3 of 7: soft only
        "listed_only.png": [0, 10, 0, 0, 0, 0, 0, 0, 0, 0],
    },
    "FER2013Valid": {"v1.png": [1, 2, 3, 4, 5, 6, 7, 0, 0, 0]},   # every class: checks the column order
    "FER2013Test": {"t1.png": [0, 0, 0, 0, 0, 0, 9, 0, 1, 0]},
}


def face_image(seed):
    """A 48x48 grey image (a gradient plus noise), like a FER+ PNG."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(48), np.arange(48)).astype(np.float64) * 2.5
    return np.clip(ramp + rng.normal(0, 20, (48, 48)), 0, 255).astype(np.uint8)


def make_ferplus(root, rows=FERPLUS_ROWS, *, header=False):
    """Write a FER+ tree: grey PNGs (written by cv2) and label.csv per folder; returns root."""
    for n, (folder, table) in enumerate(rows.items()):
        path = Path(root, folder)
        path.mkdir(parents=True, exist_ok=True)
        lines = ["Image name,Box," + ",".join(["neutral", "happiness", "surprise", "sadness", "anger", "disgust",
                                               "fear", "contempt", "unknown", "NF"])] if header else []
        for i, (name, votes) in enumerate(table.items()):
            if name != "listed_only.png":
                assert cv2.imwrite(str(path / name), face_image(100 * n + i))
            lines.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
        (path / "label.csv").write_text("\n".join(lines) + "\n")
    (Path(root) / "FER2013Train" / "unlisted.png").write_bytes(b"")
    return Path(root)


def test_ferplus_rules_labels_and_splits(tmp_path):
    m = build_manifest(make_ferplus(tmp_path), layout="ferplus")
    labels = {r.relpath: (r.label, r.split) for r in m}
    assert labels == {
        "FER2013Test/t1.png": ("Fear", "test"),
        "FER2013Train/a.png": ("Happy", "train"),
        "FER2013Train/b.png": (None, "train"),
        "FER2013Train/f.png": ("Neutral", "train"),
        "FER2013Train/h.png": ("Neutral", "train"),
        "FER2013Train/i.png": (None, "train"),
        "FER2013Valid/v1.png": (None, "val"),  # Fear holds 7 of 28 votes: no majority
    }
    assert dict(m.skipped) == {
        "FER2013Train/c.png": "FER+ top vote is unknown",
        "FER2013Train/d.png": "FER+ top vote is not a face",
        "FER2013Train/e.png": "FER+ top vote is contempt (no AFEW class)",
        "FER2013Train/g.png": "FER+ votes hold none of the 7 classes",
        "FER2013Train/listed_only.png": "listed in label.csv (line 10) but no such image",
        "FER2013Train/unlisted.png": "not listed in label.csv",
    }
    assert all(r.face_crop and r.speaker is None and r.subject is None and r.row_offset is None for r in m)
    soft = {r.relpath: np.array(r.soft_label) for r in m}
    assert all(abs(s.sum() - 1) < 1e-9 for s in soft.values())
    # CLASSES order: Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise <- anger, disgust, fear, happiness, ...
    np.testing.assert_allclose(soft["FER2013Valid/v1.png"], np.array([5, 6, 7, 2, 1, 4, 3]) / 28)
    np.testing.assert_allclose(soft["FER2013Train/a.png"], np.array([0, 0, 0, 8, 0, 0, 1]) / 9)
    np.testing.assert_allclose(soft["FER2013Train/b.png"], np.array([1, 0, 0, 0, 4, 4, 0]) / 9)
    np.testing.assert_allclose(soft["FER2013Train/f.png"], np.eye(7)[CLASSES.index("Neutral")])  # contempt left out


def test_ferplus_header_line_is_tolerated(tmp_path):
    plain = build_manifest(make_ferplus(tmp_path / "plain"), layout="ferplus")
    headed = build_manifest(make_ferplus(tmp_path / "headed", header=True), layout="ferplus")
    assert [(r.relpath, r.label, r.soft_label) for r in headed] == [(r.relpath, r.label, r.soft_label) for r in plain]


@pytest.mark.parametrize(
    ("votes", "label", "reason"),
    [
        ([10, 0, 0, 0, 0, 0, 0, 0, 0, 0], "Neutral", None),
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0], None, "FER+ votes hold none of the 7 classes"),
        ([0, 0, 0, 0, 0, 0, 0, 0, 5, 5], None, "FER+ top vote is unknown"),
        ([3, 3, 0, 0, 0, 0, 0, 0, 0, 4], None, "FER+ top vote is not a face"),
        ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], None, None),  # tie: soft label only
        ([0, 0, 0, 0, 0, 1, 0, 0, 0, 0], "Disgust", None),
    ],
)
def test_ferplus_labels(votes, label, reason):
    got_label, soft, got_reason = ferplus_labels(votes)
    assert (got_label, got_reason) == (label, reason)
    assert (soft is None) == (reason is not None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"FER2013Train/label\.csv: FER\+ label\.csv is missing"),
        ('a.png,"(0, 0, 48, 48)",1,2,3\n', r"label\.csv: line 1: expected 12 columns .*received 5"),
        ('a.png,box,1,0,0,0,0,0,0,0,0,0\nb.png,box,x,0,0,0,0,0,0,0,0,0\n',
         r"label\.csv: line 2: vote counts must be numbers"),
        ('a.png,box,1,0,0,0,0,0,0,0,0,-1\n', r"label\.csv: line 1: vote counts must be >= 0"),
    ],
)
def test_ferplus_table_errors(tmp_path, content, message):
    folder = tmp_path / "FER2013Train"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), face_image(0))
    if content is not None:
        (folder / "label.csv").write_text(content)
    with pytest.raises(DatasetError, match=message):
        build_manifest(tmp_path, layout="ferplus")


def test_ferplus_needs_its_folders(tmp_path):
    (tmp_path / "Train").mkdir()
    with pytest.raises(DatasetError, match=r"layout 'ferplus' needs FER2013Train/, FER2013Valid/ or FER2013Test/"):
        build_manifest(tmp_path, layout="ferplus")


@pytest.mark.parametrize("soft", [(0.5, 0.5), (1, 0, 0, 0, 0, 0, 0.5), (-0.5, 1.5, 0, 0, 0, 0, 0)])
def test_clip_record_soft_label_validates(soft):
    with pytest.raises(DatasetError, match=r"a\.png: ClipRecord\.soft_label must be 7 non-negative numbers summing to 1"):
        ClipRecord(path=Path("/x/a.png"), relpath="a.png", label=None, split="train", soft_label=soft)


def test_clip_record_soft_label_is_a_tuple():
    r = ClipRecord(path=Path("/x/a.png"), relpath="a.png", label="Sad", split="train", soft_label=[0, 0, 0, 0, 0, 1, 0])
    assert r.soft_label == (0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0) and hash(r)


# --------------------------------------------------------------------------- fer2013


def fer2013_row(emotion, usage, seed, n_values=48 * 48):
    pixels = " ".join(map(str, np.random.default_rng(seed).integers(0, 256, n_values)))
    return f"{emotion},{pixels},{usage}"


def make_fer2013(root, rows):
    root.mkdir(parents=True, exist_ok=True)
    (root / "fer2013.csv").write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    return root


def test_fer2013_rows_labels_splits_and_pixels(tmp_path):
    rows = [fer2013_row(e, u, i) for i, (e, u) in enumerate(
        [(0, "Training"), (3, "Training"), (6, "PublicTest"), (5, "PrivateTest"), (7, "Training"), ("", "PrivateTest")])]
    root = make_fer2013(tmp_path, rows)
    m = build_manifest(root, layout="fer2013")
    assert [(r.relpath, r.label, r.split) for r in m] == [
        ("fer2013.csv#row00000", "Angry", "train"),
        ("fer2013.csv#row00001", "Happy", "train"),
        ("fer2013.csv#row00002", "Neutral", "val"),
        ("fer2013.csv#row00003", "Surprise", "test"),
        ("fer2013.csv#row00005", None, "test"),
    ]
    assert m.skipped == [("fer2013.csv#row00004", "FER2013 emotion '7' is not 0..6")]
    assert all(r.face_crop and r.path == root / "fer2013.csv" and r.soft_label is None for r in m)
    for r in m:
        row = int(r.relpath.rsplit("row", 1)[1])
        expected = np.random.default_rng(row).integers(0, 256, 48 * 48).reshape(48, 48)
        face = read_fer2013_face(r.path, r.row_offset)
        assert face.shape == (48, 48, 3) and face.dtype == np.uint8
        np.testing.assert_array_equal(face[:, :, 0], expected)
        np.testing.assert_array_equal(face[:, :, 2], expected)


def test_fer2013_emotion_order():
    assert FER2013_EMOTIONS == ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")


def test_fer2013_errors(tmp_path):
    make_fer2013(tmp_path / "bad_usage", [fer2013_row(0, "Holdout", 0)])
    with pytest.raises(DatasetError, match=r"fer2013\.csv: line 2: Usage must be one of Training, PublicTest, "
                                           r"PrivateTest; received 'Holdout'"):
        build_manifest(tmp_path / "bad_usage", layout="fer2013")
    (tmp_path / "none").mkdir()
    with pytest.raises(DatasetError, match=r"layout 'fer2013' needs fer2013\.csv .*found 0 CSV files"):
        build_manifest(tmp_path / "none", layout="fer2013")
    (tmp_path / "nopix").mkdir()
    (tmp_path / "nopix" / "faces.csv").write_text("emotion,Usage\n0,Training\n")
    with pytest.raises(DatasetError, match=r"faces\.csv: FER2013 CSV has no 'pixels' column"):
        build_manifest(tmp_path / "nopix", layout="fer2013")


def test_fer2013_short_row_fails_at_decoding(tmp_path):
    root = make_fer2013(tmp_path, [fer2013_row(0, "Training", 0, n_values=100)])
    record = build_manifest(root, layout="fer2013").records[0]
    with pytest.raises(MediaError, match=r"pixels must be 2304 values in 0\.\.255; received 100"):
        read_fer2013_face(record.path, record.row_offset)


# --------------------------------------------------------------------------- speech


@pytest.mark.parametrize(
    ("name", "label", "speaker"),
    [("03a01Wa.wav", "Angry", "03"), ("08b10Ec.flac", "Disgust", "08"), ("16a02Ab.wav", "Fear", "16"),
     ("11b03Fd.wav", "Happy", "11"), ("10a07Nc.wav", "Neutral", "10"), ("14b09Ta.wav", "Sad", "14")],
)
def test_emodb_names(tmp_path, name, label, speaker):
    Path(tmp_path, name).write_bytes(b"")
    (r,) = build_manifest(tmp_path, layout="emodb").records
    assert (r.label, r.speaker, r.subject, r.split) == (label, speaker, speaker, "train")


def test_emodb_skips_boredom_and_other_names(tmp_path):
    for name in ("03a01Lb.wav", "03a01Xa.wav", "3a01Wa.wav", "03a01Wa.wav"):
        Path(tmp_path, name).write_bytes(b"")
    m = build_manifest(tmp_path, layout="emodb")
    assert [r.relpath for r in m] == ["03a01Wa.wav"]
    assert m.skipped == [
        ("03a01Lb.wav", "EmoDB emotion 'L' (boredom) is not one of the 7 classes"),
        ("03a01Xa.wav", "EmoDB emotion letter 'X' is not one of W E A F N T L"),
        ("3a01Wa.wav", "name does not match EmoDB SSTTTEV (speaker, text, emotion, version)"),
    ]


def test_urdu_names(tmp_path):
    for rel in ("Angry/SM1_F10_A010.flac", "Happy/sf7_F3_H01.wav", "Sad/talk.flac", "Contempt/SM2_x.flac"):
        Path(tmp_path, rel).parent.mkdir(parents=True, exist_ok=True)
        Path(tmp_path, rel).write_bytes(b"")
    m = build_manifest(tmp_path, layout="urdu")
    assert [(r.relpath, r.label, r.speaker) for r in m] == [
        ("Angry/SM1_F10_A010.flac", "Angry", "SM1"), ("Happy/sf7_F3_H01.wav", "Happy", "SF7")]
    assert m.skipped == [("Contempt/SM2_x.flac", "folder 'Contempt' is not one of the 7 classes"),
                         ("Sad/talk.flac", "name does not start with the URDU speaker (SF<n>_ or SM<n>_)")]


# --------------------------------------------------------------------------- real data


def test_shared_ferplus():
    m = build_manifest(shared("faces", "ferplus"), layout="ferplus")
    assert len(m) + len(m.skipped) == 28558 + 3579
    assert (len(m.by_split("train")), len(m.by_split("val"))) == (28217, 3529)
    labelled = Counter(r.split for r in m if r.label is not None)
    assert (labelled["train"], labelled["val"]) == (25824, 3278)
    assert m.label_counts("train") == {"Angry": 2181, "Disgust": 127, "Fear": 539, "Happy": 7349,
                                       "Neutral": 9174, "Sad": 3256, "Surprise": 3198}
    reasons = Counter(reason for _, reason in m.skipped)
    assert reasons == {"FER+ top vote is unknown": 194, "FER+ top vote is contempt (no AFEW class)": 192,
                       "FER+ top vote is not a face": 3, "FER+ votes hold none of the 7 classes": 2}
    assert all(r.face_crop and r.soft_label is not None for r in m)


def test_shared_emodb():
    root = shared("speech", "emodb")
    m = build_manifest(root, layout="emodb")
    assert len(m) + len(m.skipped) == 408
    assert (len(m), len(m.skipped)) == (350, 58)  # 58 boredom
    assert all("boredom" in reason for _, reason in m.skipped)
    assert m.speakers() == {"03", "08", "09", "10", "11", "12", "13", "14"}
    assert m.label_counts() == {"Angry": 100, "Disgust": 30, "Fear": 54, "Happy": 54, "Neutral": 63, "Sad": 49,
                                "Surprise": 0}
    split = assign_speaker_splits(m, val_fraction=0.2, seed=0)
    assert (len(split.speakers("train")), len(split.speakers("val"))) == (6, 2)
    assert split.speakers("train").isdisjoint(split.speakers("val"))


def test_shared_urdu():
    root = shared("speech", "urdu")
    m = build_manifest(root, layout="urdu")
    assert (len(m), m.skipped) == (300, [])
    assert len(m.speakers()) == 26 and all(s[:2] in ("SF", "SM") for s in m.speakers())
    assert m.label_counts() == {"Angry": 52, "Disgust": 0, "Fear": 0, "Happy": 86, "Neutral": 100, "Sad": 62,
                                "Surprise": 0}
    # the generic folder layout reads the labels the same, but knows no speaker
    folder = build_manifest(root, layout="folder")
    assert [r.label for r in folder] == [r.label for r in m] and folder.speakers() == set()
