"""What a one-clip ``emonet predict`` imports in its main process, and the BLAS limit of the extraction workers.

The main process only embeds and classifies: the extraction stack (librosa, numba), scikit-learn
and Keras's optional integrations (pandas, matplotlib) stay out of it; they cost seconds of start-up.
"""

import json
import subprocess
import sys

import pytest

from threadpoolctl import threadpool_info

from preprocessing.threads import one_blas_thread

from conftest import CREMA_D, REPO, left_after, session_members

PROBE = """
import json, sys
from emonet.cli import main
code = main(["predict", sys.argv[1], "--no-progress", "--workers", "1"])
loaded = {m: m in sys.modules for m in ("librosa", "numba", "sklearn", "pandas", "matplotlib", "tensorflow")}
import pandas  # held back only while TensorFlow loaded: importable afterwards
print(json.dumps({"code": code, "loaded": loaded}))
"""


def test_a_prediction_process_imports_neither_extraction_nor_sklearn():
    out = subprocess.run([sys.executable, "-c", PROBE, str(CREMA_D / "1001_DFA_HAP_XX.flv")], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-800:]
    lines = out.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["code"] == 0 and "1001_DFA_HAP_XX.flv" in lines[-2]  # the table row of the clip
    assert report["loaded"] == {"librosa": False, "numba": False, "sklearn": False, "pandas": False,
                                "matplotlib": False, "tensorflow": True}


def test_one_blas_thread_first_and_later_calls():
    import numpy  # noqa: F401 - its OpenBLAS is one of the pools
    before = [pool["num_threads"] for pool in threadpool_info()]
    for _ in range(3):  # the first call searches the libraries, the later ones reuse what it found
        with one_blas_thread():
            assert all(pool["num_threads"] == 1 for pool in threadpool_info())
        assert [pool["num_threads"] for pool in threadpool_info()] == before



@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_command_exits_at_once_with_its_output_written_and_no_helper_left(tmp_path):
    """`emonet predict` as a command ends its process once the answer is written (runtime.exit_now): the
    JSON file is whole, the table is on stdout, and nothing it started keeps running after it."""
    out = tmp_path / "one.json"
    clip = str(CREMA_D / "1001_DFA_HAP_XX.flv")
    proc = subprocess.Popen([sys.executable, "-m", "emonet.cli", "predict", clip, "-f", "json", "-o", str(out),
                             "--no-progress"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # its session id is its pid
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-800:]
    assert b"leaked" not in err and b"Warning" not in err, err[-800:]  # the helpers' semaphores were released
    assert [row["emotion"] for row in json.loads(out.read_text())] == ["Happy"]
    assert left_after(lambda: session_members(proc.pid)) == []  # helpers, ffmpeg, fork server: all ended with it
    table = subprocess.run([sys.executable, "-m", "emonet.cli", "predict", clip, "--no-progress"], cwd=REPO,
                           capture_output=True, text=True, timeout=600)
    assert table.returncode == 0 and "1001_DFA_HAP_XX.flv" in table.stdout and "Happy" in table.stdout

