"""The HDF5 feature store: round trip, resume, parameter check, locking, and kill -9 safety."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from preprocessing.errors import StoreError
from preprocessing.files import leftover_temporaries
from preprocessing.store import ClipFeatures, FeatureStore, clip_key
from preprocessing.store_writer import StoreWriter

PARAMS = {"crop_size": 8, "fps": 25}
NAMES = ["f0", "f1", "f2"]


def clip(i, n_frames=5):
    rng = np.random.default_rng(i)
    return ClipFeatures(
        key=clip_key(f"Train_AFEW/Happy/clip {i} é.mp4"),
        arrays={"faces": rng.integers(0, 255, (n_frames, 8, 8, 3), dtype=np.uint8),
                "face_found": np.ones(n_frames, bool), "audio_functionals": rng.normal(size=3).astype(np.float32)},
        attrs={"label": "Happy", "label_index": 3, "split": "train", "n_frames": n_frames, "speaker": None},
    )


def writer(path, params=PARAMS):
    return StoreWriter(path, params=params, versions={"numpy": np.__version__}, audio_feature_names=NAMES)


def test_round_trip_and_lazy_reading(tmp_path):
    path = tmp_path / "f.h5"
    with writer(path) as w:
        for i in range(3):
            w.write_clip(clip(i))
        w.write_failure("bad.mp4", relpath="bad.mp4", source="/x/bad.mp4", reason="/x/bad.mp4: empty file (0 bytes)")
    assert not (tmp_path / "f.h5.pending").exists()
    with FeatureStore(path) as s:
        assert len(s) == 3 and s.audio_feature_names == NAMES and s.params == PARAMS
        key = clip(1).key
        assert key == "Train_AFEW|Happy|clip 1 é.mp4" and key in s
        faces = s.clip(key)["faces"]
        assert isinstance(faces, h5py.Dataset) and faces.compression == "gzip"
        np.testing.assert_array_equal(faces[2:4], clip(1).arrays["faces"][2:4])
        assert s.attrs(key)["label"] == "Happy" and s.attrs(key)["speaker"] == ""
        assert s.failures()["bad.mp4"]["reason"].endswith("empty file (0 bytes)")
        assert [r["key"] for r in s.index(split="train")] == s.keys()


def test_resume_skips_done_clips_and_success_clears_failure(tmp_path):
    path = tmp_path / "f.h5"
    with writer(path) as w:
        w.write_clip(clip(0))
        w.write_failure(clip(1).key, relpath="r", source="s", reason="broken")
    with writer(path) as w:
        assert w.done == {clip(0).key}
        w.write_clip(clip(1))
    with FeatureStore(path) as s:
        assert len(s) == 2 and s.failures() == {}


def test_other_parameters_are_refused(tmp_path):
    path = tmp_path / "f.h5"
    writer(path).close()
    with pytest.raises(StoreError, match="crop_size: store has 8, requested 16"):
        writer(path, params={"crop_size": 16, "fps": 25})


def test_one_writer_at_a_time(tmp_path):
    path = tmp_path / "f.h5"
    with writer(path):
        with pytest.raises(StoreError, match="another extraction job"):
            writer(path)


@pytest.mark.parametrize("setup,match", [
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: None, "does not exist"),
])
def test_unwritable_output(tmp_path, setup, match):
    target = tmp_path / "f.h5" if match != "does not exist" else tmp_path / "missing" / "f.h5"
    setup(target)
    with pytest.raises(StoreError, match=match):
        writer(target)


def test_not_a_store(tmp_path):
    path = tmp_path / "f.h5"
    path.write_text("hello")
    with pytest.raises(StoreError, match="not a readable HDF5"):
        FeatureStore(path)
    with pytest.raises(StoreError, match="no such feature store"):
        FeatureStore(tmp_path / "none.h5")


KILLED_MID_WRITE = textwrap.dedent("""
    import os, signal, sys
    from preprocessing.files import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_bytes(open(sys.argv[1], "rb").read() if os.path.exists(sys.argv[1]) else b"partial")
        os.kill(os.getpid(), signal.SIGKILL)   # killed before os.replace, like a commit under kill -9
""")


def test_temporaries_of_a_killed_writer_are_removed_and_others_kept(tmp_path):
    path, other = tmp_path / "f.h5", tmp_path / "f.v2.h5"
    writer(path).close()
    for target in (path, other):
        killed = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(target)], timeout=60)
        assert killed.returncode == -signal.SIGKILL
    left = leftover_temporaries(path)
    assert len(left) == 1 and len(leftover_temporaries(other)) == 1 and not other.exists()
    with writer(path) as w:
        assert w.done == set() and leftover_temporaries(path) == []
    assert len(leftover_temporaries(other)) == 1  # another store's temporary is not this writer's business


def test_store_files_get_the_mode_a_plain_open_gives(tmp_path):
    path = tmp_path / "f.h5"
    with writer(path) as w:
        w.write_clip(clip(0))
    (tmp_path / "plain").write_bytes(b"")
    assert path.stat().st_mode == (tmp_path / "plain").stat().st_mode


WRITER_LOOP = textwrap.dedent("""
    import sys, numpy as np
    sys.path.insert(0, {tests!r})
    from preprocessing import store_writer as store_mod
    from test_store import clip, writer
    store_mod.MIN_COMMIT_BYTES = 1          # commit all the time: the riskiest schedule
    store_mod.COMMIT_RATIO = 0.0
    with writer({path!r}) as w:
        for i in range(400):
            if clip(i).key not in w.done:
                w.write_clip(clip(i, n_frames=40))
                print(i, flush=True)
""")


def test_kill_9_at_any_moment_leaves_a_readable_store_and_resume_completes(tmp_path):
    path = tmp_path / "f.h5"
    script = WRITER_LOOP.format(tests=os.path.dirname(__file__), path=str(path))
    rng = np.random.default_rng(0)
    counts = []
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0 + rng.uniform(0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with FeatureStore(path) as s:  # opens and reads after every kill
            counts.append(len(s))
            for key in s.keys()[-3:]:
                assert s.clip(key)["faces"].shape == (40, 8, 8, 3)
                s.clip(key)["faces"][()]
    assert counts == sorted(counts)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-500:]
    with FeatureStore(path) as s:
        assert len(s) == 400
        assert json.loads(h5py.File(path, "r").attrs["params"]) == PARAMS
        for i in (0, 199, 399):
            np.testing.assert_array_equal(s.clip(clip(i).key)["faces"][()], clip(i, n_frames=40).arrays["faces"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.h5", "f.h5.lock"]  # no temporary copy is left


def _write_bytes():
    """Bytes this process has caused to be written to storage so far (Linux /proc/self/io)."""
    with open("/proc/self/io") as f:
        return int(dict(line.split(": ") for line in f.read().splitlines())["write_bytes"])


def test_commit_copies_keep_bytes_written_under_three_times_the_store(tmp_path, monkeypatch):
    """Every commit rewrites the store: the schedule must keep shards + copies <= 3x the final size."""
    from preprocessing import store_writer
    if not os.path.exists("/proc/self/io"):
        pytest.skip("needs Linux /proc/self/io")
    monkeypatch.setattr(store_writer, "MIN_COMMIT_BYTES", 256 * 1024)  # many commits on a 10 MB store
    path, n = tmp_path / "f.h5", 150
    before = _write_bytes()
    with writer(path) as w:
        w.expect(n)
        for i in range(n):
            faces = np.random.default_rng(i).integers(0, 255, (20, 32, 32, 3), dtype=np.uint8)  # 61 KB, incompressible
            w.write_clip(ClipFeatures(key=f"c{i:03d}", arrays={"faces": faces}, attrs={"label": "Sad"}))
            if i == n // 2:
                with FeatureStore(path) as s:
                    assert len(s) > 0   # intermediate commits still happen
    written = _write_bytes() - before
    if written == 0:
        pytest.skip("write_bytes not accounted on this file system")
    with FeatureStore(path) as s:
        assert len(s) == n
    assert written <= 3.0 * path.stat().st_size, (written, path.stat().st_size)


@pytest.mark.parametrize("libdeflate", [True, False], ids=["libdeflate", "zlib"])
@pytest.mark.parametrize("shape,dtype", [((40, 8, 8, 3), np.uint8), ((16, 4, 4, 3), np.uint8), ((1, 8, 8, 3), np.uint8),
                                         ((17, 3, 2), np.int16), ((33, 5, 5, 3), bool)])
def test_chunks_compressed_by_the_writer_read_back_as_gzip_datasets(tmp_path, monkeypatch, libdeflate, shape, dtype):
    """Chunks compressed in Python (libdeflate, or zlib without it) and written directly: any HDF5 reader
    sees a chunked shuffle+gzip dataset and gets the array back, edge chunk included."""
    from preprocessing import chunk_deflate
    if libdeflate and chunk_deflate.deflate is None:
        pytest.skip("the deflate wheel is not installed")
    if not libdeflate:
        monkeypatch.setattr(chunk_deflate, "deflate", None)
    array = np.random.default_rng(0).integers(0, 200, shape).astype(dtype)
    array[: shape[0] // 2] = array[0]  # compressible rows too
    with h5py.File(tmp_path / "c.h5", "w") as f:
        chunk_deflate.create_compressed(f, "x", array)
    with h5py.File(tmp_path / "c.h5", "r") as f:
        x = f["x"]
        assert (x.compression, x.shuffle, x.chunks) == ("gzip", True, (min(16, shape[0]),) + shape[1:])
        assert x.dtype == array.dtype
        np.testing.assert_array_equal(x[()], array)
        np.testing.assert_array_equal(x[-1:], array[-1:])


def test_an_append_that_fails_leaves_the_shards_for_the_next_commit(tmp_path, monkeypatch):
    """The next store is built while clips arrive; if appending a shard to it fails, the copy is dropped
    and the shards (durable) are merged by the next commit."""
    from preprocessing import store_writer
    path = tmp_path / "f.h5"
    real = store_writer._merge_shards
    with writer(path) as w:
        w.write_clip(clip(0))
        monkeypatch.setattr(store_writer, "_merge_shards", lambda dst, shards: (_ for _ in ()).throw(OSError("disk")))
        with pytest.raises(OSError, match="disk"):
            w.write_clip(clip(1))
        assert leftover_temporaries(path) == []  # the copy being built is gone
        monkeypatch.setattr(store_writer, "_merge_shards", real)
        w.write_clip(clip(2))
    with FeatureStore(path) as s:
        assert sorted(s.keys()) == sorted(clip(i).key for i in range(3))
        np.testing.assert_array_equal(s.clip(clip(1).key)["faces"][()], clip(1).arrays["faces"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.h5", "f.h5.lock"]


def test_a_store_with_another_audio_vector_width_is_refused_by_name(tmp_path):
    """A store of 1,795 functionals (before the prosody statistics) is not appended to with 1,825."""
    path = tmp_path / "old.h5"
    with StoreWriter(path, params={"fps": 25}, versions={}, audio_feature_names=[f"f{i}" for i in range(1795)]):
        pass
    with pytest.raises(StoreError, match=r"old\.h5: store holds 1795 audio functionals per clip, this version computes 1825"):
        StoreWriter(path, params={"fps": 25}, versions={}, audio_feature_names=[f"f{i}" for i in range(1825)])
