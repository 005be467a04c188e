"""Tests of preprocessing.datasets: folder layouts -> manifests.

Adapters only look at names, so the folders here are made of empty files.
The tests at the end measure the real corpora in /work/shared/data and skip
when it is absent.
"""

import csv
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from preprocessing.constants import CLASSES
from preprocessing.datasets import (
    LAYOUTS,
    SPLITS,
    ClipRecord,
    Manifest,
    assign_speaker_splits,
    build_manifest,
    normalise_split,
    write_manifest_csv,
)
from preprocessing.errors import DatasetError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TESTS_DATA = Path(__file__).resolve().parent / "data"


def touch(root, *relpaths):
    """Create empty files (and their folders) under ``root``."""
    for rel in relpaths:
        path = Path(root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return root


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def table(manifest):
    return [(r.relpath, r.label, r.split, r.speaker, r.subject) for r in manifest]


# --------------------------------------------------------------------------- afew


def test_afew_layout_labels_splits_and_skips(tmp_path):
    touch(
        tmp_path,
        "Train_AFEW/Angry/b.avi",
        "Train_AFEW/Angry/a.AVI",
        "Train_AFEW/happy/clip one é.mp4",  # lower-case folder, space, non-ASCII
        "Train_AFEW/Angry/.hidden.avi",
        "Train_AFEW/Angry/notes.txt",
        "Train_AFEW/.cache/Angry.avi",
        "Train_AFEW/Contempt/c.avi",
        "Train_AFEW/loose.avi",
        "Val_AFEW/Sad/v 1.wav",
        "Val_AFEW/Surprise/日本.mkv",
        "Test_AFEW/t2.avi",
        "Test_AFEW/t1.mp4",
        "Other/Angry/x.avi",
    )
    m = build_manifest(tmp_path, layout="afew")
    assert table(m) == [
        ("Test_AFEW/t1.mp4", None, "test", None, None),
        ("Test_AFEW/t2.avi", None, "test", None, None),
        ("Train_AFEW/Angry/a.AVI", "Angry", "train", None, None),
        ("Train_AFEW/Angry/b.avi", "Angry", "train", None, None),
        ("Train_AFEW/happy/clip one é.mp4", "Happy", "train", None, None),
        ("Val_AFEW/Sad/v 1.wav", "Sad", "val", None, None),
        ("Val_AFEW/Surprise/日本.mkv", "Surprise", "val", None, None),
    ]
    assert m.skipped == [
        ("Train_AFEW/Contempt/c.avi", "folder 'Contempt' is not one of the 7 classes"),
        ("Train_AFEW/loose.avi", "not inside an emotion folder"),
    ]
    for r in m:
        assert r.path.is_absolute() and r.path.is_file()
        assert r.path == tmp_path.resolve() / r.relpath
    assert [len(m.by_split(s)) for s in SPLITS] == [3, 2, 2]
    assert m.label_counts("train") == {"Angry": 2, "Disgust": 0, "Fear": 0, "Happy": 1, "Neutral": 0, "Sad": 0, "Surprise": 0}
    assert m.describe() == "7 clips (train 3, val 2, test 2), 2 skipped"
    assert m.layout == "afew" and m.root == tmp_path.resolve()


def test_afew_test_only_is_unlabelled(tmp_path):
    touch(tmp_path, "Test_AFEW/000123.avi", "Test_AFEW/000124.avi")
    m = build_manifest(tmp_path)
    assert [(r.label, r.split) for r in m] == [(None, "test"), (None, "test")]
    assert m.label_counts() == dict.fromkeys(CLASSES, 0)


def test_afew_test_clips_in_emotion_folders_are_labelled(tmp_path):
    touch(tmp_path, "Test_AFEW/Angry/a.avi", "Test_AFEW/Sad/b.mp4", "Test_AFEW/batch1/c.avi", "Test_AFEW/d.avi")
    m = build_manifest(tmp_path)
    assert [(r.relpath, r.label, r.split) for r in m] == [
        ("Test_AFEW/Angry/a.avi", "Angry", "test"), ("Test_AFEW/Sad/b.mp4", "Sad", "test"),
        ("Test_AFEW/batch1/c.avi", None, "test"), ("Test_AFEW/d.avi", None, "test")]


def test_afew_manifest_csv_adds_speakers_and_subjects(tmp_path):
    touch(tmp_path, "Train_AFEW/Angry/a.mp4", "Train_AFEW/Angry/b.mp4", "Val_AFEW/Fear/ç d.mp4", "Test_AFEW/t.mp4")
    write_csv(
        tmp_path / "manifest.csv",
        ["path", "label", "split", "face", "speaker"],
        [
            ["Train_AFEW/Angry/a.mp4", "Angry", "Train_AFEW", "ck:S1", "ravdess:01"],
            # the csv spells the name decomposed (NFD), the file is composed (NFC)
            [unicodedata.normalize("NFD", "Val_AFEW/Fear/ç d.mp4"), "fearful", "Val_AFEW", "jaffe:KA", "ravdess:02"],
            ["Test_AFEW/t.mp4", "Happy", "Test_AFEW", "ck:S9", "ravdess:09"],  # folder decides: stays unlabelled
            ["Train_AFEW/Angry/gone.mp4", "Angry", "Train_AFEW", "ck:S2", "ravdess:03"],  # not on disk: ignored
        ],
    )
    m = build_manifest(tmp_path, layout="afew")
    assert table(m) == [
        ("Test_AFEW/t.mp4", None, "test", "ravdess:09", "ck:S9"),
        ("Train_AFEW/Angry/a.mp4", "Angry", "train", "ravdess:01", "ck:S1"),
        ("Train_AFEW/Angry/b.mp4", "Angry", "train", None, None),
        ("Val_AFEW/Fear/ç d.mp4", "Fear", "val", "ravdess:02", "jaffe:KA"),
    ]
    assert m.speakers() == {"ravdess:01", "ravdess:02", "ravdess:09"}
    assert m.speakers("train") == {"ravdess:01"}
    assert m.subjects("val") == {"jaffe:KA"}


def test_afew_manifest_csv_label_disagreeing_with_folder_is_an_error(tmp_path):
    touch(tmp_path, "Train_AFEW/Angry/a.mp4")
    write_csv(tmp_path / "manifest.csv", ["path", "label", "face", "speaker"], [["Train_AFEW/Angry/a.mp4", "Sad", "s", "p"]])
    with pytest.raises(DatasetError, match=r"manifest\.csv: line 2: label 'Sad' for Train_AFEW/Angry/a\.mp4 disagrees with its folder \(Angry\)"):
        build_manifest(tmp_path, layout="afew")


def test_afew_explicit_csv_path_must_exist(tmp_path):
    touch(tmp_path, "Train_AFEW/Angry/a.mp4")
    with pytest.raises(DatasetError, match=r"elsewhere\.csv: manifest CSV does not exist"):
        build_manifest(tmp_path, layout="afew", csv_path=tmp_path / "elsewhere.csv")


# --------------------------------------------------------------------------- crema_d / ravdess / mead / folder


def test_crema_d_layout(tmp_path):
    touch(
        tmp_path,
        "1001_DFA_ANG_XX.flv",
        "1001_DFA_dis_XX.flv",
        "Actör 2/1002_IEO_HAP_HI.mp4",
        "1003_TIE_SAD_LO.wav",
        "1004_ITS_XYZ_MD.flv",
        "readme.flv",
    )
    m = build_manifest(tmp_path, layout="crema_d")
    assert table(m) == [
        ("1001_DFA_ANG_XX.flv", "Angry", "train", "1001", "1001"),
        ("1001_DFA_dis_XX.flv", "Disgust", "train", "1001", "1001"),
        ("1003_TIE_SAD_LO.wav", "Sad", "train", "1003", "1003"),
        ("Actör 2/1002_IEO_HAP_HI.mp4", "Happy", "train", "1002", "1002"),
    ]
    assert m.skipped == [
        ("1004_ITS_XYZ_MD.flv", "CREMA-D emotion 'XYZ' is not one of ANG DIS FEA HAP NEU SAD"),
        ("readme.flv", "name does not match CREMA-D AAAA_SSS_EEE_LL"),
    ]


@pytest.mark.parametrize(
    ("code", "label"),
    [("01", "Neutral"), ("02", "Neutral"), ("03", "Happy"), ("04", "Sad"),
     ("05", "Angry"), ("06", "Fear"), ("07", "Disgust"), ("08", "Surprise")],
)
@pytest.mark.parametrize("modality", ["01", "02", "03"])
def test_ravdess_emotion_codes(tmp_path, code, label, modality):
    name = f"Actor 12 ü/{modality}-01-{code}-02-01-02-12.{'flac' if modality == '03' else 'mp4'}"
    m = build_manifest(touch(tmp_path, name), layout="ravdess")
    assert table(m) == [(name, label, "train", "12", "12")]


def test_ravdess_skips_names_outside_the_scheme(tmp_path):
    touch(tmp_path, "03-01-05-01-01-01-01.wav", "03-01-09-01-01-01-01.wav", "04-01-05-01-01-01-01.wav")
    m = build_manifest(tmp_path, layout="ravdess")
    assert [r.relpath for r in m] == ["03-01-05-01-01-01-01.wav"]
    assert m.skipped == [
        ("03-01-09-01-01-01-01.wav", "RAVDESS emotion code '09' is not 01-08"),
        ("04-01-05-01-01-01-01.wav", "name does not match RAVDESS MM-VV-EE-II-SS-RR-AA"),
    ]


@pytest.mark.parametrize(
    ("relpath", "label", "speaker"),
    [
        ("M030_front_angry_level3_001.mp4", "Angry", "M030"),
        ("W011_front_surprised_level1_002.mp4", "Surprise", "W011"),
        ("M030_sad_3_001.mp4", "Sad", "M030"),
        ("M005/video/front/disgusted/level_2/001.mp4", "Disgust", "M005"),
        ("W024/audio/happy/level_1/003.m4a", "Happy", "W024"),
        ("happy.mp4", "Happy", None),
        ("clips é/Fear take 2.mov", "Fear", None),
    ],
)
def test_mead_names(tmp_path, relpath, label, speaker):
    m = build_manifest(touch(tmp_path, relpath), layout="mead")
    assert table(m) == [(relpath, label, "train", speaker, speaker)]


@pytest.mark.parametrize(
    ("relpath", "reason"),
    [
        ("M030_front_contempt_level3_001.mp4", "label 'contempt' is not one of the 7 classes"),
        ("contempt.mp4", "label 'contempt' is not one of the 7 classes"),
        ("W009_front_level3_001.mp4", "no emotion in the name"),
        ("angry/sad.mp4", "ambiguous emotion: name has Angry, Sad"),
        ("angry/contempt.mp4", "ambiguous emotion: name has Angry, contempt"),
    ],
)
def test_mead_skips(tmp_path, relpath, reason):
    touch(tmp_path, relpath, "M030_front_happy_level3_001.mp4")
    m = build_manifest(tmp_path, layout="mead")
    assert [r.relpath for r in m] == ["M030_front_happy_level3_001.mp4"]
    assert m.skipped == [(relpath, reason)]


def test_folder_layout(tmp_path):
    touch(tmp_path, "Angry/a.mp4", "neutral/sub dir/b é.wav", "Contempt/c.mp4", "top.mp4", ".git/Angry/x.mp4")
    m = build_manifest(tmp_path, layout="folder")
    assert table(m) == [
        ("Angry/a.mp4", "Angry", "train", None, None),
        ("neutral/sub dir/b é.wav", "Neutral", "train", None, None),
    ]
    assert m.skipped == [
        ("Contempt/c.mp4", "folder 'Contempt' is not one of the 7 classes"),
        ("top.mp4", "not inside an emotion folder"),
    ]


def test_symlinked_folders_are_followed_once(tmp_path):
    data = touch(tmp_path / "store", "a.mp4")
    root = tmp_path / "root"
    (root / "Angry").mkdir(parents=True)
    (root / "Angry" / "linked").symlink_to(data, target_is_directory=True)
    (root / "Angry" / "linked" / "loop").symlink_to(root, target_is_directory=True)
    m = build_manifest(root, layout="folder")
    assert [r.relpath for r in m] == ["Angry/linked/a.mp4"]


# --------------------------------------------------------------------------- csv


def test_csv_layout_columns_and_defaults(tmp_path):
    outside = touch(tmp_path / "outside", "x y.mp4") / "x y.mp4"
    root = touch(tmp_path / "root", "a.mp4", "sub/b.mp4")
    write_csv(
        root / "manifest.csv",
        ["Path", "Label", "split", "speaker", "face"],
        [
            ["a.mp4", "ANG", "Train_AFEW", "s1", "f1"],
            ["./sub/b.mp4", "", "validation", "", ""],
            ["missing é.mp4", "calm", "", "s2", ""],  # absent on disk: kept, the extraction job reports it
            [str(outside), "Fear", "test", "", "f9"],  # absolute, outside the root: allowed
            ["c.mp4", "contempt", "train", "", ""],
            ["d.mp4", "bored", "train", "", ""],
            ["", "", "", "", ""],  # blank row: ignored
        ],
    )
    m = build_manifest(root, layout="csv")
    assert table(m) == [
        (outside.as_posix(), "Fear", "test", None, "f9"),
        ("a.mp4", "Angry", "train", "s1", "f1"),
        ("missing é.mp4", "Neutral", "train", "s2", None),
        ("sub/b.mp4", None, "val", None, None),
    ]
    assert m.records[0].path == outside
    assert not m.records[2].path.exists()
    assert m.skipped == [
        ("c.mp4", "label 'contempt' is not one of the 7 classes"),
        ("d.mp4", "label 'bored' is not one of the 7 classes"),
    ]


@pytest.mark.parametrize("layout", ["afew", "mead", "crema_d"])
def test_write_manifest_csv_round_trip(tmp_path, layout):
    names = {
        "afew": ["Train_AFEW/Angry/a b.avi", "Val_AFEW/Sad/é,\"q\".avi", "Test_AFEW/t.avi"],
        "mead": ["M030_front_angry_level3_001.mp4", "W009/video/front/sad/level_1/001.mp4", "happy.mp4"],
        "crema_d": ["1001_DFA_ANG_XX.flv", "1002_DFA_SAD_XX.flv", "1003_DFA_NEU_XX.flv"],
    }[layout]
    original = build_manifest(touch(tmp_path, *names), layout=layout)
    if layout == "crema_d":
        original = assign_speaker_splits(original, val_fraction=0.34, seed=3)
    write_manifest_csv(original, tmp_path / "manifest.csv")
    again = build_manifest(tmp_path, layout="csv")
    assert again.records == original.records
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file of the atomic write is left
    # written elsewhere and read back with csv_path and the same root
    write_manifest_csv(original, tmp_path.parent / f"{layout}.csv")
    assert build_manifest(tmp_path, layout="csv", csv_path=tmp_path.parent / f"{layout}.csv").records == original.records


def test_write_manifest_csv_unwritable(tmp_path):
    m = build_manifest(touch(tmp_path, "Angry/a.mp4"), layout="folder")
    with pytest.raises(DatasetError, match=r"no_such_dir/m\.csv: cannot write manifest CSV"):
        write_manifest_csv(m, tmp_path / "no_such_dir" / "m.csv")


@pytest.mark.parametrize(
    ("name", "split"),
    [("train", "train"), ("Train_AFEW", "train"), ("training", "train"), ("VAL", "val"), ("Val_AFEW", "val"),
     ("dev", "val"), ("validation", "val"), ("test", "test"), ("Test_AFEW", "test"), ("holdout", None)],
)
def test_normalise_split(name, split):
    assert normalise_split(name) == split


# --------------------------------------------------------------------------- speaker splits


def speaker_manifest(tmp_path, n_speakers, clips_per_speaker=3):
    names = [f"{1001 + s}_DFA_{emo}_XX.flv" for s in range(n_speakers) for emo in ("ANG", "HAP", "SAD")[:clips_per_speaker]]
    return build_manifest(touch(tmp_path, *names), layout="crema_d")


@pytest.mark.parametrize(("n_speakers", "val_fraction", "n_val"), [(2, 0.2, 1), (10, 0.2, 2), (10, 0.5, 5), (10, 0.99, 9), (91, 0.2, 18)])
def test_assign_speaker_splits_disjoint_and_sized(tmp_path, n_speakers, val_fraction, n_val):
    m = speaker_manifest(tmp_path, n_speakers)
    split = assign_speaker_splits(m, val_fraction=val_fraction, seed=0)
    assert split.speakers("train").isdisjoint(split.speakers("val"))
    assert split.subjects("train").isdisjoint(split.subjects("val"))
    assert len(split.speakers("val")) == n_val
    assert len(split.speakers("train")) == n_speakers - n_val
    assert [(r.relpath, r.label) for r in split] == [(r.relpath, r.label) for r in m]
    assert {r.split for r in m} == {"train"}  # input unchanged


def test_assign_speaker_splits_is_deterministic(tmp_path):
    m = speaker_manifest(tmp_path, 20)
    first = assign_speaker_splits(m, seed=7)
    assert assign_speaker_splits(m, seed=7).records == first.records
    others = {frozenset(assign_speaker_splits(m, seed=s).speakers("val")) for s in range(5)}
    assert len(others) > 1  # the seed matters


def test_assign_speaker_splits_keeps_test_records(tmp_path):
    root = touch(tmp_path, "a.mp4", "b.mp4", "c.mp4")
    write_csv(root / "manifest.csv", ["path", "label", "split", "speaker"],
              [["a.mp4", "Sad", "train", "p1"], ["b.mp4", "Sad", "train", "p2"], ["c.mp4", "", "test", ""]])
    split = assign_speaker_splits(build_manifest(root, layout="csv"), val_fraction=0.5)
    assert [r.relpath for r in split.by_split("test")] == ["c.mp4"]
    assert sorted(r.split for r in split.records[:2]) == ["train", "val"]


@pytest.mark.parametrize(
    ("setup", "kwargs", "message"),
    [
        ("one", {}, r"needs at least 2 speakers; received 1 \(\['1001'\]\)"),
        ("two", {"val_fraction": 0}, r"val_fraction must be a number in \(0, 1\); received 0"),
        ("two", {"val_fraction": 1.5}, r"val_fraction must be a number in \(0, 1\); received 1\.5"),
        ("two", {"val_fraction": "0.2"}, r"val_fraction must be a number in \(0, 1\); received '0\.2'"),
        ("nospeaker", {}, r"Angry/a\.mp4: a speaker-independent split needs a speaker for every clip; 1 of 1 clips have none"),
    ],
)
def test_assign_speaker_splits_errors(tmp_path, setup, kwargs, message):
    if setup == "nospeaker":
        m = build_manifest(touch(tmp_path, "Angry/a.mp4"), layout="folder")
    else:
        m = speaker_manifest(tmp_path, {"one": 1, "two": 2}[setup])
    with pytest.raises(DatasetError, match=message):
        assign_speaker_splits(m, **kwargs)


# --------------------------------------------------------------------------- errors


def make_error_case(tmp_path, case):
    """Build the folder for one error case; return (root, kwargs)."""
    if case == "missing_root":
        return tmp_path / "nope", {}
    if case == "root_is_file":
        return touch(tmp_path, "file.mp4") / "file.mp4", {"layout": "folder"}
    if case == "unknown_layout":
        return tmp_path, {"layout": "affew"}
    if case == "afew_no_split_folders":
        return touch(tmp_path, "Train/Angry/a.avi"), {"layout": "afew"}
    if case == "no_media":
        return touch(tmp_path, "Angry/a.txt", "Angry/.b.mp4"), {"layout": "folder"}
    if case == "nothing_usable":
        return touch(tmp_path, "Contempt/a.mp4"), {"layout": "folder"}
    if case == "csv_path_wrong_layout":
        return touch(tmp_path, "1001_DFA_ANG_XX.flv"), {"layout": "crema_d", "csv_path": tmp_path / "m.csv"}
    if case == "csv_missing":
        return tmp_path, {"layout": "csv"}
    if case == "csv_empty":
        (tmp_path / "manifest.csv").write_text("")
        return tmp_path, {"layout": "csv"}
    if case == "csv_header_only":
        (tmp_path / "manifest.csv").write_text("path,label\n")
        return tmp_path, {"layout": "csv"}
    if case == "csv_no_path_column":
        write_csv(tmp_path / "manifest.csv", ["file", "label"], [["a.mp4", "Sad"]])
        return tmp_path, {"layout": "csv"}
    if case == "csv_not_utf8":
        (tmp_path / "manifest.csv").write_bytes(b"path,label\n\xff\xfe\x00a.mp4,Sad\n")
        return tmp_path, {"layout": "csv"}
    if case == "csv_is_directory":
        (tmp_path / "manifest.csv").mkdir()
        return tmp_path, {"layout": "csv"}
    if case == "csv_empty_path":
        write_csv(tmp_path / "manifest.csv", ["path", "label"], [["a.mp4", "Sad"], ["", "Sad"]])
        return tmp_path, {"layout": "csv"}
    if case == "csv_duplicate":
        write_csv(tmp_path / "manifest.csv", ["path", "label"], [["a.mp4", "Sad"], ["./a.mp4", "Sad"]])
        return tmp_path, {"layout": "csv"}
    if case == "csv_bad_split":
        write_csv(tmp_path / "manifest.csv", ["path", "split"], [["a.mp4", "holdout"]])
        return tmp_path, {"layout": "csv"}
    if case == "csv_all_skipped":
        write_csv(tmp_path / "manifest.csv", ["path", "label"], [["a.mp4", "contempt"]])
        return tmp_path, {"layout": "csv"}
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_root", r"nope: dataset root does not exist"),
        ("root_is_file", r"file\.mp4: dataset root is not a directory"),
        ("unknown_layout", r"layout must be one of afew, crema_d, ravdess, mead, csv, folder, emodb, urdu, ferplus, fer2013; received 'affew'"),
        ("afew_no_split_folders", r": layout 'afew' needs Train_AFEW/, Val_AFEW/ or Test_AFEW/; found none of them"),
        ("no_media", r": no media files found for layout 'folder' \(suffixes \.avi .*hidden files ignored\)"),
        ("nothing_usable", r"layout 'folder' found 1 media files but no usable clip; first skipped: Contempt/a\.mp4: folder 'Contempt'"),
        ("csv_path_wrong_layout", r"csv_path only applies to layouts 'csv' and 'afew'; received csv_path='.*m\.csv' with layout='crema_d'"),
        ("csv_missing", r"manifest\.csv: manifest CSV does not exist"),
        ("csv_empty", r"manifest\.csv: manifest CSV is empty; expected a header with a 'path' column"),
        ("csv_header_only", r"manifest\.csv: manifest CSV lists no clips"),
        ("csv_no_path_column", r"manifest\.csv: manifest CSV has no 'path' column; received columns \['file', 'label'\]"),
        ("csv_not_utf8", r"manifest\.csv: cannot read manifest CSV \(.*codec can't decode"),
        ("csv_is_directory", r"manifest\.csv: cannot read manifest CSV \(.*Is a directory"),
        ("csv_empty_path", r"manifest\.csv: line 3: empty 'path' cell"),
        ("csv_duplicate", r"manifest\.csv: line 3: a\.mp4 is listed twice"),
        ("csv_bad_split", r"manifest\.csv: line 2: split must be one of train, .*; received 'holdout'"),
        ("csv_all_skipped", r"layout 'csv' found 1 listed clips but no usable clip; first skipped: a\.mp4: label 'contempt'"),
    ],
)
def test_build_manifest_errors(tmp_path, case, message):
    root, kwargs = make_error_case(tmp_path, case)
    with pytest.raises(DatasetError, match=message):
        build_manifest(root, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"relpath": "a.mp4", "label": "Contempt", "split": "train"}, r"a\.mp4: ClipRecord\.label must be one of Angry, .* or None; received 'Contempt'"),
        ({"relpath": "a.mp4", "label": "Angry", "split": "Train_AFEW"}, r"a\.mp4: ClipRecord\.split must be one of train, val, test; received 'Train_AFEW'"),
        ({"relpath": "", "label": "Angry", "split": "train"}, r"ClipRecord\.relpath must be a non-empty string; received ''"),
    ],
)
def test_clip_record_validates(kwargs, message):
    with pytest.raises(DatasetError, match=message):
        ClipRecord(path=Path("/x/a.mp4"), **kwargs)


def test_manifest_by_split_rejects_unknown_split():
    m = Manifest(records=[ClipRecord(path=Path("/x/a.mp4"), relpath="a.mp4", label="Sad", split="val", speaker="p")])
    assert m.by_split("val") == m.records and m.by_split("train") == []
    with pytest.raises(DatasetError, match=r"split must be one of train, val, test; received 'valid'"):
        m.by_split("valid")


def test_layouts_constant():
    assert LAYOUTS == ("afew", "crema_d", "ravdess", "mead", "csv", "folder", "emodb", "urdu", "ferplus", "fer2013")


# --------------------------------------------------------------------------- real data


def test_checked_in_crema_d_clips():
    m = build_manifest(TESTS_DATA / "crema_d", layout="crema_d")
    assert [r.label for r in m] == ["Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad"]
    assert m.speakers() == m.subjects() == {"1001"}


def shared(rel):
    path = SHARED / rel
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


def test_shared_composite_afew():
    m = build_manifest(shared("composite"), layout="afew")
    assert len(m) == 735 and m.skipped == []
    assert (len(m.by_split("train")), len(m.by_split("val")), len(m.by_split("test"))) == (560, 175, 0)
    assert m.label_counts("train") == dict.fromkeys(CLASSES, 80)
    assert m.label_counts("val") == dict.fromkeys(CLASSES, 25)
    assert all(r.speaker and r.subject for r in m)
    assert (len(m.speakers("train")), len(m.speakers("val"))) == (14, 4)
    assert (len(m.subjects("train")), len(m.subjects("val"))) == (156, 54)
    assert m.speakers("train").isdisjoint(m.speakers("val"))
    assert m.subjects("train").isdisjoint(m.subjects("val"))
    # the csv layout over the same listing agrees with the folders
    assert build_manifest(shared("composite"), layout="csv").records == m.records


def test_shared_crema_d():
    m = build_manifest(shared("real/crema_d"), layout="crema_d")
    assert len(m) == 6 and m.skipped == []
    assert {r.label for r in m} == set(CLASSES) - {"Surprise"}
    assert m.speakers() == {"1001"}


# RAVDESS emotion codes (the EE field of MM-VV-EE-II-SS-RR-AA), as the corpus documents them.
RAVDESS_CODES = {"01": "Neutral", "02": "Neutral",  # 02 is "calm": it joins Neutral
                 "03": "Happy", "04": "Sad", "05": "Angry", "06": "Fear", "07": "Disgust", "08": "Surprise"}


def test_shared_ravdess():
    root = shared("speech/ravdess")
    names = sorted(p.stem for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    fields = [name.split("-") for name in names]
    clips_per_actor = Counter(f[6] for f in fields)
    m = build_manifest(root, layout="ravdess")
    assert len(m) == len(names) and m.skipped == []
    assert len(m) == 1080 and set(clips_per_actor.values()) == {60}  # 18 actors x 60 utterances
    assert m.label_counts() == {**dict.fromkeys(CLASSES, 0), **Counter(RAVDESS_CODES[f[2]] for f in fields)}
    assert m.label_counts()["Neutral"] == 216  # per actor: 4 neutral + 8 calm; 8 for each other emotion
    assert m.speakers() == set(clips_per_actor) == {f"{a:02d}" for a in range(1, 19)}
    split = assign_speaker_splits(m, val_fraction=0.2, seed=0)
    assert (len(split.speakers("train")), len(split.speakers("val"))) == (14, 4)
    for name in ("train", "val"):
        assert len(split.by_split(name)) == sum(clips_per_actor[a] for a in split.speakers(name))
    assert split.speakers("train").isdisjoint(split.speakers("val"))


@pytest.mark.parametrize(
    ("rel", "n_records", "skipped", "speakers"),
    [
        ("real/mead_video_only", 21, 3, {"M030", "W009", "W011"}),
        ("real/mead", 6, 1, {"M030"}),
    ],
)
def test_shared_mead(rel, n_records, skipped, speakers):
    m = build_manifest(shared(rel), layout="mead")
    assert (len(m), len(m.skipped), m.speakers()) == (n_records, skipped, speakers)
    assert all("contempt" in reason for _, reason in m.skipped)
