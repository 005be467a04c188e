"""The extraction job end to end: real ffmpeg, real HDF5, local processes and Dask, bad input, kill -9."""

import logging
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from emonet.cli import main
from preprocessing.constants import FPS
from preprocessing.datasets import build_manifest
from preprocessing.errors import StoreError
from preprocessing.extraction import ExtractParams
from preprocessing.files import leftover_temporaries
from preprocessing.runner import run_extraction
from preprocessing.store import FeatureStore

from conftest import CREMA_D, descendants, left_after, make_clip, running

GOOD = {  # relpath -> make_clip kwargs
    "Train_AFEW/Angry/a 23976.mp4": {"fps": "24000/1001", "seconds": 2.0},
    "Train_AFEW/Happy/h_60fps.mkv": {"fps": 60, "seconds": 1.6},
    "Train_AFEW/Sad/s_30fps.avi": {"fps": 30, "seconds": 2.4, "vcodec": "mpeg4", "acodec": "pcm_s16le"},
    "Train_AFEW/Fear/vidéo_sans_son.mp4": {"audio": False, "seconds": 1.2},
    "Train_AFEW/Neutral/speech_only.wav": {"video": False, "acodec": "pcm_s16le", "seconds": 1.0},
    "Train_AFEW/Sad/sound_only.mkv": {"video": False, "seconds": 1.0},
    "Val_AFEW/Surprise/v.mov": {"seconds": 1.0, "size": "320x240"},
}


def _write_bad(root):
    bad = {
        "Val_AFEW/Angry/zero.mp4": b"",
        "Val_AFEW/Angry/text.mp4": b"I am a text file, not a video\n",
        "Val_AFEW/Disgust/corrupt.avi": np.random.default_rng(1).bytes(40_000),
    }
    for relpath, data in bad.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(data)
    source = (root / "Train_AFEW/Angry/a 23976.mp4").read_bytes()
    (root / "Val_AFEW/Disgust/truncated.mp4").write_bytes(source[: len(source) // 2])
    return list(bad) + ["Val_AFEW/Disgust/truncated.mp4"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("afew")
    for relpath, kwargs in GOOD.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        make_clip(root / relpath, **kwargs)
    bad = _write_bad(root)
    return root, bad


@pytest.fixture(scope="module")
def extracted(dataset, tmp_path_factory):
    root, bad = dataset
    out = tmp_path_factory.mktemp("store") / "features.h5"
    params = ExtractParams(crop_size=32, max_frames=100)
    records = []
    collect = logging.Handler(logging.INFO)
    collect.emit = records.append
    runner_log = logging.getLogger("preprocessing.runner")
    level = runner_log.level
    runner_log.setLevel(logging.INFO)
    runner_log.addHandler(collect)
    try:
        summary = run_extraction(build_manifest(root, layout="afew"), out, params, workers=2, progress=False)
    finally:
        runner_log.removeHandler(collect)
        runner_log.setLevel(level)
    return out, summary, records, bad


def test_summary_counts_and_failures_are_recorded(extracted):
    out, summary, records, bad = extracted
    messages = [r.getMessage() for r in records]
    assert (summary.done, summary.skipped, summary.failed) == (len(GOOD), 0, len(bad))
    with FeatureStore(out) as store:
        assert len(store) == len(GOOD)
        failures = store.failures()
        assert sorted(f["relpath"] for f in failures.values()) == sorted(bad)
    skips = [m for m in messages if m.startswith("skipping")]
    for relpath in bad:
        line = next(m for m in skips if relpath.split("/")[-1] in m)
        assert "\n" not in line
    assert any("zero.mp4: empty file" in m for m in skips)
    assert any("truncated.mp4: not a readable media file" in m and "moov atom not found" in m for m in skips)
    assert sum("not a readable media file" in m for m in skips) == 3


def test_failures_are_warnings_and_notes_are_info(extracted):
    _, summary, records, _ = extracted
    levels = {r.getMessage().split(":")[0]: set() for r in records}
    for r in records:
        levels[r.getMessage().split(":")[0]].add(r.levelname)
    assert levels == {"skipping": {"WARNING"}, "note": {"INFO"}}
    assert sum(r.levelname == "WARNING" for r in records) == summary.failed


def test_frame_counts_follow_25_fps(extracted):
    out, *_ = extracted
    with FeatureStore(out) as store:
        for relpath, kwargs in GOOD.items():
            attrs = store.attrs(relpath.replace("/", "|"))
            if kwargs.get("video", True):
                assert abs(attrs["n_frames"] - kwargs["seconds"] * FPS) <= 1, relpath
            clip = store.clip(relpath.replace("/", "|"))
            assert clip["faces"].dtype == np.uint8 and clip["faces"].shape[1:] == (32, 32, 3)
            assert clip["mfcc"].shape[1] == 40
            assert clip["audio_functionals"].shape == (len(store.audio_feature_names),)
            assert np.isfinite(clip["audio_functionals"][()]).all()


def test_audio_only_and_video_only_are_flagged_not_failed(extracted):
    out, _, records, _ = extracted
    messages = [r.getMessage() for r in records]
    with FeatureStore(out) as store:
        silent_film = store.attrs("Train_AFEW|Fear|vidéo_sans_son.mp4")
        speech = store.attrs("Train_AFEW|Neutral|speech_only.wav")
        assert silent_film["has_audio"] == 0 and silent_film["audio_silent"] == 1
        assert not store.clip("Train_AFEW|Fear|vidéo_sans_son.mp4")["audio_functionals"][()].any()
        assert speech["has_video"] == 0 and store.clip("Train_AFEW|Neutral|speech_only.wav")["faces"].shape[0] == 0
        assert speech["label"] == "Neutral" and speech["split"] == "train"
    assert any("vidéo_sans_son.mp4" in m and "no audio stream" in m for m in messages)
    # a sound file has no picture by nature: no note for it (a speech corpus would get one per file)
    assert not any("speech_only.wav" in m for m in messages)
    assert any("sound_only.mkv" in m and "no video stream (audio-only file)" in m for m in messages)


def test_rerun_skips_done_and_retries_failures(extracted, dataset):
    out, *_ = extracted
    root, bad = dataset
    summary = run_extraction(build_manifest(root, layout="afew"), out, ExtractParams(crop_size=32, max_frames=100),
                             workers=0, progress=False)
    assert (summary.done, summary.skipped, summary.failed) == (0, len(GOOD), len(bad))


def test_a_complete_store_is_shared_without_the_writer_lock(extracted, dataset):
    """Two runs starting on one complete store: the second must not fail on the first one's lock."""
    import fcntl
    out, *_ = extracted
    root, bad = dataset
    good_only = [r for r in build_manifest(root, layout="afew") if r.relpath in GOOD]
    with open(str(out) + ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        summary = run_extraction(good_only, out, ExtractParams(crop_size=32, max_frames=100), workers=0,
                                 progress=False)
        assert (summary.done, summary.skipped, summary.failed) == (0, len(GOOD), 0)
        with pytest.raises(StoreError, match="another extraction job"):   # failed clips to retry: needs the lock
            run_extraction(build_manifest(root, layout="afew"), out, ExtractParams(crop_size=32, max_frames=100),
                           workers=0, progress=False)
        with pytest.raises(StoreError, match="another extraction job"):   # other parameters: the writer reports it
            run_extraction(good_only, out, ExtractParams(crop_size=48, max_frames=100), workers=0,
                           progress=False)


def test_other_parameters_are_refused(extracted, dataset, capsys):
    out, *_ = extracted
    root, _ = dataset
    status = main(["extract", str(root), "--out", str(out), "--crop-size", "48", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and "crop_size: store has 32, requested 48" in err[-1]


def test_dask_local_cluster(dataset, tmp_path):
    distributed = pytest.importorskip("distributed")
    root, bad = dataset
    out = tmp_path / "dask.h5"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) \
            as cluster:
        status = main(["extract", str(root), "--out", str(out), "--crop-size", "32", "--max-frames", "100",
                       "--scheduler", cluster.scheduler_address, "--no-progress"])
    assert status == 1  # the bad files failed; everything else is stored
    with FeatureStore(out) as store:
        assert len(store) == len(GOOD) and len(store.failures()) == len(bad)


@pytest.mark.parametrize("args,match", [
    (lambda tmp: [str(tmp / "no_such_dataset"), "--out", str(tmp / "f.h5")], "no_such_dataset"),
    (lambda tmp: [str(CREMA_D), "--layout", "crema_d", "--out", str(tmp / "missing_dir" / "f.h5")],
     "does not exist"),
    (lambda tmp: [str(CREMA_D), "--layout", "crema_d", "--out", str(tmp)], "is a directory"),
    (lambda tmp: [str(CREMA_D), "--layout", "crema_d", "--out", "/proc/emonet_test.h5"], "cannot write the store"),
    (lambda tmp: [str(CREMA_D), "--layout", "crema_d", "--out", str(tmp / "f.h5"), "--workers", "-1"],
     "--workers"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, args, match):
    status = main(["extract"] + args(tmp_path))
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and match in err[0] and err[0].startswith("emonet extract: error:")


def test_crema_d_faces_are_found(tmp_path, capsys):
    out = tmp_path / "crema.h5"
    status = main(["extract", str(CREMA_D), "--layout", "crema_d", "--out", str(out), "--workers", "2",
                   "--no-progress"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "done 6, skipped 0" in printed and "failed 0" in printed
    with FeatureStore(out) as store:
        rows = store.index()
        assert {r["label"] for r in rows} == {"Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad"}
        assert all(r["face_rate"] > 0.8 and r["has_audio"] and not r["audio_silent"] for r in rows)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_mid_job_then_resume(tmp_path):
    root = tmp_path / "data"
    for i in range(14):
        make_clip(root / "Train_AFEW" / ("Happy" if i % 2 else "Sad") / f"c{i:02d}.mp4", seconds=1.0, size="96x72")
    out = tmp_path / "f.h5"
    cmd = [sys.executable, "-m", "emonet.cli", "extract", str(root), "--out", str(out), "--workers", "2",
           "--crop-size", "16", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "f.h5.pending").exists():
        time.sleep(0.05)
    while time.time() < deadline and len(list((tmp_path / "f.h5.pending").glob("*.h5"))) < 3:
        time.sleep(0.05)
    helpers = descendants(proc.pid)  # the fork server, its two workers, the resource tracker
    assert len(helpers) >= 3
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with FeatureStore(out) as store:  # the committed store opens after the kill
        assert len(store) < 14
    assert left_after(lambda: [p for p in helpers if running(p)]) == []  # a killed job leaves no process behind
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-800:]
    assert "failed 0" in finished.stdout
    with FeatureStore(out) as store:
        assert len(store) == 14
        for key in store.keys():
            assert store.clip(key)["faces"][()].shape[0] == 25
    assert not (tmp_path / "f.h5.pending").exists()
    assert leftover_temporaries(out) == []  # no temporary copy of the store is left by the killed commit



def test_the_fork_server_preloads_modules_that_exist():
    """The fork server skips a preload module it cannot import, silently: a wrong name would only make
    every worker warm up by itself again (about 2 s of CPU each)."""
    import importlib.util

    from preprocessing.runner import FORKSERVER_PRELOAD
    assert FORKSERVER_PRELOAD[0] == "__main__"
    assert all(importlib.util.find_spec(name) is not None for name in FORKSERVER_PRELOAD[1:])
