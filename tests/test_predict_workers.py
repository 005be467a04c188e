"""Pipelined prediction: helper processes extract while the model classifies; the same answers as serial.

On the six bundled CREMA-D clips (real face and voice) plus a file that cannot be decoded,
with the shipped model.
"""

import csv
import shutil
import signal
import subprocess
import sys
import time

import pytest

import emonet
from emonet.cli import main
from emonet.inference.predict import predict_clips
from emonet.inference.workers import ExtractionFeed, check_workers, default_workers, feed_helper_start
from preprocessing.errors import EmonetError

from conftest import CREMA_D, descendants, left_after, running

CLIPS = sorted(CREMA_D.glob("*.flv"))


@pytest.fixture(scope="module")
def clips_and_a_broken_one(tmp_path_factory):
    """The CREMA-D clips with a file that is no video third from the start (its failure keeps its place)."""
    folder = tmp_path_factory.mktemp("clips")
    for clip in CLIPS:
        shutil.copy(clip, folder / clip.name)
    broken = folder / "1001_BROKEN.flv"
    broken.write_bytes(b"not a video at all" * 100)
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def run():
    return emonet.load_model().run


def test_default_workers_and_bad_values():
    assert 1 <= default_workers() <= 2
    assert check_workers(None) == default_workers() and check_workers(0) == 0
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(EmonetError, match="--workers must be an integer >= 0"):
            check_workers(bad)


@pytest.mark.slow
@pytest.mark.parametrize("workers, batch_size", [(1, 2), (2, 16)])
def test_helpers_give_the_serial_results_in_order_with_the_same_failure(run, clips_and_a_broken_one, workers,
                                                                         batch_size):
    paths = clips_and_a_broken_one
    serial, serial_failures = predict_clips(paths, run, batch_size=batch_size, progress=False, workers=0)
    batches = []
    piped, piped_failures = predict_clips(paths, run, batch_size=batch_size, progress=False, workers=workers,
                                          on_batch=batches.append)
    assert [r["clip"] for r in serial] == [str(p) for p in paths if "BROKEN" not in p.name]
    assert piped == serial  # clips, order, labels, probabilities, has_audio, face_rate: all equal
    assert len(piped_failures) == 1 and piped_failures == serial_failures
    assert piped_failures[0][0].endswith("1001_BROKEN.flv")
    assert [len(b) for b in batches] == [batch_size] * (len(serial) // batch_size) + (
        [len(serial) % batch_size] if len(serial) % batch_size else [])


def test_extraction_helpers_run_opencv_on_one_thread():
    """As the extraction job's workers: two helpers and the model share the cores, so each helper's OpenCV
    keeps to one thread (the library default, one per core, doubled the CPU per clip on 2 cores)."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    import cv2
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=feed_helper_start,
                             initargs=(os.getpid(),)) as pool:
        assert pool.submit(cv2.getNumThreads).result() == 1


def test_the_feed_keeps_the_order_of_the_clips(clips_and_a_broken_one):
    from preprocessing.extraction import ExtractParams
    paths = clips_and_a_broken_one
    with ExtractionFeed(paths, ExtractParams(max_frames=8), workers=2, ahead=3) as feed:
        outcomes = list(feed)
    assert [p for p, _ in outcomes] == paths
    assert [o[0] for _, o in outcomes] == ["error" if "BROKEN" in p.name else "ok" for p in paths]
    assert all(o[1]["faces"].shape[1:] == (64, 64, 3) for _, o in outcomes if o[0] == "ok")


@pytest.mark.slow
def test_cli_with_helpers_writes_what_the_serial_cli_writes(clips_and_a_broken_one, tmp_path, capsys):
    folder = clips_and_a_broken_one[0].parent
    outputs = {}
    for workers in ("0", "2"):
        out = tmp_path / f"w{workers}.csv"
        assert main(["predict", str(folder), "-f", "csv", "-o", str(out), "--workers", workers, "--batch-size", "4",
                     "--no-progress"]) == 1  # one clip failed: exit 1, the others written
        err = capsys.readouterr().err
        assert "1 of 7 clips failed: 1001_BROKEN.flv" in err and "skipping" in err
        outputs[workers] = out.read_text()
    assert outputs["0"] == outputs["2"]
    assert len(list(csv.DictReader(outputs["2"].splitlines()))) == 6


@pytest.mark.slow
def test_resume_with_helpers_skips_what_the_journal_holds(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert main(["predict", *map(str, CLIPS[:2]), "-f", "json", "-o", str(out), "--workers", "1",
                 "--no-progress"]) == 0
    assert main(["predict", *map(str, CLIPS), "-f", "json", "-o", str(out), "--resume", "--workers", "2",
                 "--no-progress"]) == 0
    assert "resuming" in capsys.readouterr().err and len(emonet_rows(out)) == 6


def emonet_rows(path):
    import json
    return json.loads(path.read_text())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_predict_leaves_no_helper_behind(tmp_path):
    """SIGKILL of `emonet predict -j 2` mid-batch: its helper processes end with it."""
    clips = []
    for copy in range(4):
        for clip in CLIPS:
            clips.append(tmp_path / f"{copy}_{clip.name}")
            shutil.copy(clip, clips[-1])
    proc = subprocess.Popen([sys.executable, "-m", "emonet.cli", "predict", *map(str, clips), "--workers", "2",
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    helpers = []
    while time.time() < deadline and proc.poll() is None and len(helpers) < 2:
        helpers = [p for p in descendants(proc.pid) if running(p)]
        time.sleep(0.1)
    assert proc.poll() is None and len(helpers) >= 2, "the helpers never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert left_after(lambda: [p for p in helpers if running(p)]) == []
