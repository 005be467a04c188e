"""A real Dask cluster: `dask scheduler` and two `dask worker` processes over TCP on 127.0.0.1,
`emonet extract --scheduler` on real and generated clips, one worker SIGKILLed while it runs a
clip. Every clip must end up stored exactly once, none recorded as failed, the store readable.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from preprocessing.files import leftover_temporaries
from preprocessing.store import FeatureStore

from conftest import CREMA_D, make_clip

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow

DASK = Path(sys.executable).with_name("dask")
CREMA_LABELS = {"ANG": "Angry", "DIS": "Disgust", "FEA": "Fear", "HAP": "Happy", "NEU": "Neutral", "SAD": "Sad"}
N_GENERATED = 18


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, log):
    """A process in its own session (so its whole tree - nanny, worker, ffmpeg - can be killed),
    started in the log folder: workers import the installed package, not the checkout."""
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=Path(log.name).parent)


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def dataset(tmp_path):
    """The six real CREMA-D clips and ``N_GENERATED`` generated ones, in the AFEW layout."""
    root = tmp_path / "data"
    for clip in sorted(CREMA_D.glob("*.flv")):
        label = CREMA_LABELS[clip.stem.split("_")[2]]
        (root / "Train_AFEW" / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, root / "Train_AFEW" / label / clip.name)
    for i in range(N_GENERATED):
        label = list(CREMA_LABELS.values())[i % 6]
        make_clip(root / "Val_AFEW" / label / f"gen{i:02d}.mp4", seconds=1.0 + 0.05 * i, size="160x120")
    return root, sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def cluster(tmp_path):
    """Scheduler and workers "w0", "w1" as separate OS processes; yields (address, {name: Popen})."""
    if not DASK.exists():
        pytest.skip(f"no `dask` command beside {sys.executable}")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "dask"
    logs.mkdir()
    procs = {}
    try:
        with open(logs / "scheduler.log", "w") as log:
            procs["scheduler"] = start([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                        "--no-dashboard"], log)
        for name in ("w0", "w1"):
            with open(logs / f"{name}.log", "w") as log:
                procs[name] = start([str(DASK), "worker", address, "--name", name, "--nthreads", "1",
                                     "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard",
                                     "--local-directory", str(logs / name)], log)
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, procs
    finally:
        for proc in reversed(procs.values()):
            stop(proc)


def test_killed_worker_every_clip_stored_once(dataset, cluster, tmp_path):
    root, relpaths = dataset
    address, procs = cluster
    out = tmp_path / "features.h5"
    cmd = [sys.executable, "-m", "emonet.cli", "extract", str(root), "--out", str(out), "--crop-size", "32",
           "--scheduler", address, "--no-progress"]
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed_while_running = None
    with distributed.Client(address, timeout="30s") as client:
        deadline = time.time() + 120
        while time.time() < deadline and killed_while_running is None and job.poll() is None:
            workers = client.scheduler_info()["workers"]
            victim = next((addr for addr, info in workers.items() if info.get("name") == "w1"), None)
            running = client.processing(workers=[victim]).get(victim, []) if victim else []
            stored = len(list(Path(str(out) + ".pending").glob("*.h5")))
            if running and stored >= 2:  # mid-run: some clips done, and w1 holds a clip right now
                os.killpg(procs["w1"].pid, signal.SIGKILL)
                procs["w1"].wait()
                killed_while_running = list(running)
            else:
                time.sleep(0.05)
        stdout, stderr = job.communicate(timeout=240)
        survivors = [info.get("name") for info in client.scheduler_info()["workers"].values()]
    assert killed_while_running, f"worker w1 was never seen running a clip before the job ended: {stderr[-800:]}"
    assert procs["w1"].returncode == -signal.SIGKILL and survivors == ["w0"]
    assert job.returncode == 0, stderr[-1500:]
    # the writer handled each clip once: done == clips, no failure recorded for the lost task
    assert f"done {len(relpaths)}, skipped 0 (already stored), failed 0" in stdout, stdout + stderr[-800:]
    with FeatureStore(out) as store:
        keys = store.keys()
        assert keys == sorted(r.replace("/", "|") for r in relpaths)
        assert store.failures() == {}
        for key in keys:
            attrs = store.attrs(key)
            faces = store.clip(key)["faces"][()]
            assert faces.shape == (attrs["n_frames"], 32, 32, 3) and attrs["n_frames"] >= 25
            assert attrs["has_audio"] == 1
    assert not Path(str(out) + ".pending").exists() and leftover_temporaries(out) == []
