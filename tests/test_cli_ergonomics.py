"""emonet's command line as a user meets it: a fast --help, quiet start-up, outputs that survive a kill.

The parser is checked by what it imports (not by a timing); TensorFlow's start-up lines
and the kill-and-resume cycle by running the real ``emonet predict`` in a subprocess on
the bundled CREMA-D clips with the shipped model.
"""

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from emonet.cli import build_parser, main
from emonet.inference.journal import OutputJournal, journal_path, read_output
from emonet.inference.predict import OUTPUT_FIELDS, _below_tf_log_level, format_rows
from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError

from conftest import CREMA_D, REPO

HEAVY_MODULES = ("numpy", "scipy", "librosa", "tensorflow", "keras", "cv2", "h5py", "sklearn")
VERBS = ("extract", "train", "evaluate", "predict")
#: How each verb's help starts its examples.
EXAMPLES_HEADING = "examples:"
#: Lines TensorFlow prints at start-up that a user must not see.
TF_NOISE = ("E0000", "W0000", "I0000", "WARNING: All log messages before absl")


def emonet_command(*args):
    return [sys.executable, "-m", "emonet.cli", *map(str, args)]


def output_row(clip, emotion="Happy", face_rate=0.5, has_audio=True):
    return {"clip": clip, "emotion": emotion, **{c: float(c == emotion) for c in CLASSES},
            "has_audio": has_audio, "face_rate": face_rate}


@pytest.fixture()
def clip_folder(tmp_path):
    """The six bundled CREMA-D clips, copied into a folder of their own."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for clip in sorted(CREMA_D.glob("*.flv")):
        shutil.copy(clip, folder / clip.name)
    return folder


# --------------------------------------------------------------------------- help: cheap, with examples


def test_building_the_parser_imports_no_heavy_module():
    code = ("import sys, emonet.cli; emonet.cli.build_parser(); "
            f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_shows_examples_and_defaults(verb, capsys):
    with pytest.raises(SystemExit) as done:
        main([verb, "--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0
    assert f"\n{EXAMPLES_HEADING}\n  emonet {verb} " in text  # the epilog kept as written, not re-wrapped
    assert "(default: " in text


def test_extract_defaults_are_the_extraction_settings():
    from preprocessing.extraction import ExtractParams

    args = build_parser().parse_args(["extract", "data", "-o", "out.h5"])
    params = ExtractParams()
    assert (args.crop_size, args.max_frames, args.margin, args.detector) == (
        params.crop_size, params.max_frames, params.margin, params.detector)


# --------------------------------------------------------------------------- TensorFlow start-up lines


@pytest.mark.parametrize("line, level, hidden", [
    ("I0000 00:00:1796035479.844681   18654 port.cc:153] oneDNN custom operations are on.", 3, True),
    ("I0000 00:00:1796035479.844681   18654 port.cc:153] oneDNN custom operations are on.", 0, False),
    ("W1130 10:00:01.844681   18654 cpu_feature_guard.cc:227] rebuild TensorFlow", 2, True),
    ("E0000 00:00:1796035479.844681   18654 cuda_dnn.cc:8310] Unable to register cuDNN factory", 3, True),
    ("E0000 00:00:1796035479.844681   18654 cuda_dnn.cc:8310] Unable to register cuDNN factory", 2, False),
    ("F0000 00:00:1796035479.844681   18654 x.cc:1] Check failed", 3, False),
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n", 3, True),
    ("skipping clip.mp4: no video stream", 3, False),
    ("/x/y.py:3: UserWarning: something", 3, False),
])
def test_tensorflow_lines_are_hidden_by_its_own_log_level(line, level, hidden):
    assert _below_tf_log_level(line, level) is hidden


def test_predict_prints_no_tensorflow_start_up_lines_and_names_the_device():
    done = subprocess.run(emonet_command("predict", CREMA_D / "1001_DFA_HAP_XX.flv", "--no-progress"),
                          capture_output=True, text=True, cwd=REPO,
                          env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert done.returncode == 0, done.stderr
    err = done.stderr.splitlines()
    noise = [line for line in err if line.startswith(TF_NOISE) or "oneDNN" in line or "cpu_feature_guard" in line]
    assert noise == [], done.stderr
    devices = [line.split(" on ", 1)[1] for line in err if line.startswith("model emonet-base (fusion) on ")]
    assert len(devices) == 1 and (devices[0] == "CPU" or devices[0].startswith("GPU: ")), done.stderr  # once
    assert "1001_DFA_HAP_XX.flv" in done.stdout


def test_tensorflow_python_warnings_follow_the_native_log_level():
    """The command holds TensorFlow's Python warnings (retracing hints) back as it does its C++ log, and shows
    them again when the user asks for TensorFlow's log (TF_CPP_MIN_LOG_LEVEL=0)."""
    probe = ("import logging; from emonet.cli_logging import configure_logging; configure_logging(); "
             "import tensorflow as tf; tf.get_logger().warning('retracing hint'); "
             "print(logging.getLogger('tensorflow').getEffectiveLevel())")
    for level, shown in (("3", False), ("0", True)):
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": level})
        assert done.returncode == 0, done.stderr
        assert ("retracing hint" in done.stderr) is shown, (level, done.stderr)


# --------------------------------------------------------------------------- the same fields in JSON and CSV


def test_json_and_csv_carry_the_same_fields_and_clip_names():
    rows = [output_row("a/happy.mp4"), output_row("b/x.jpg", "Sad", face_rate=None, has_audio=False)]
    as_json = json.loads(format_rows(rows, "json"))
    as_csv = list(csv.DictReader(io.StringIO(format_rows(rows, "csv"))))
    assert [list(r) for r in as_json] == [list(OUTPUT_FIELDS)] * 2
    assert list(as_csv[0]) == list(OUTPUT_FIELDS)
    assert [r["clip"] for r in as_json] == [r["clip"] for r in as_csv] == ["a/happy.mp4", "b/x.jpg"]
    assert as_json[1]["face_rate"] is None and as_csv[1]["face_rate"] == ""


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_an_output_reads_back_as_the_rows_it_was_written_from(fmt, tmp_path):
    rows = [output_row("a/happy.mp4"), output_row("b/x.jpg", "Sad", face_rate=None, has_audio=False)]
    out = tmp_path / f"out.{fmt}"
    out.write_text(format_rows(rows, fmt) + "\n")
    assert read_output(out, fmt) == rows


@pytest.mark.parametrize("fmt, text, message", [
    ("json", "[{\"clip\": \"a.mp4\"}]", "not an output of emonet predict --format json .missing fields: Angry"),
    ("json", "{", "not an output of emonet predict --format json"),
    ("csv", "clip,emotion\na.mp4,Happy\n", "not an output of emonet predict --format csv .missing fields"),
    ("table", "", "--resume needs --format json or csv"),
])
def test_an_output_that_cannot_be_read_back_is_one_named_error(fmt, text, message, tmp_path):
    out = tmp_path / "out.txt"
    out.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_output(out, fmt)


# --------------------------------------------------------------------------- the journal


def test_a_torn_last_line_is_dropped_and_the_journal_carries_on(tmp_path):
    out = tmp_path / "out.json"
    journal_path(out).write_text(json.dumps(output_row("a.mp4")) + "\n" + json.dumps(output_row("b.mp4"))[:30])
    journal = OutputJournal.open(out, "json", resume=True)
    assert journal.done == {"a.mp4"}
    journal.append([output_row("c.mp4", "Sad")])
    assert [r["clip"] for r in journal.finish()] == ["a.mp4", "c.mp4"]
    assert [r["clip"] for r in json.loads(out.read_text())] == ["a.mp4", "c.mp4"]
    assert not journal_path(out).exists()


def test_an_interrupted_journal_is_kept_unless_resumed(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("old content\n")
    journal = OutputJournal.open(out, "csv")
    journal.append([output_row("a.mp4")])
    assert journal.close() and out.read_text() == "old content\n"  # replaced only at the end
    with pytest.raises(ConfigError, match=r"out.csv.partial: holds the predictions of an interrupted run; "
                                          r"pass --resume"):
        OutputJournal.open(out, "csv")
    empty = OutputJournal.open(tmp_path / "other.csv", "csv")
    assert not empty.close() and not journal_path(tmp_path / "other.csv").exists()  # nothing to resume


def test_a_line_that_is_no_prediction_is_refused(tmp_path):
    out = tmp_path / "out.csv"
    journal_path(out).write_text("{\"clip\": \"a.mp4\"}\n" + json.dumps(output_row("b.mp4")) + "\n")
    with pytest.raises(ConfigError, match="out.csv.partial: line 1 is not a prediction of emonet predict"):
        OutputJournal.open(out, "csv", resume=True)


@pytest.mark.parametrize("args, message", [
    (["--resume"], "--resume needs -o FILE and --format json or csv"),
    (["--resume", "-o", "out.txt"], "--resume needs -o FILE and --format json or csv"),
    (["--batch-size", "0"], "--batch-size must be >= 1; received 0"),
])
def test_resume_and_batch_size_errors_are_one_line(args, message, capsys):
    assert main(["predict", str(CREMA_D), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_resuming_a_finished_output_classifies_nothing_and_loads_no_model(clip_folder, tmp_path):
    out = tmp_path / "out.json"
    names = sorted(p.name for p in clip_folder.iterdir())
    out.write_text(format_rows([output_row(n) for n in names], "json") + "\n")
    code = ("import sys; from emonet.cli import main; status = main(sys.argv[1:]); "
            "assert 'tensorflow' not in sys.modules; sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code, "predict", str(clip_folder), "-f", "json", "-o", str(out),
                           "--resume"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "6 of 6 clips done, classifying 0" in done.stderr
    assert [r["clip"] for r in json.loads(out.read_text())] == names


# --------------------------------------------------------------------------- kill -9 mid-batch, then --resume


def _complete_rows(path):
    """Rows of the complete lines of a journal (what a reader may count on after a kill)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    return [json.loads(line) for line in data[:data.rfind(b"\n") + 1].decode().splitlines()]


@pytest.mark.parametrize("fmt", ["csv", pytest.param("json", marks=pytest.mark.slow)])
def test_a_killed_predict_keeps_its_rows_and_resume_completes_them(fmt, clip_folder, tmp_path):
    out = tmp_path / f"predictions.{fmt}"
    args = emonet_command("predict", clip_folder, "-f", fmt, "-o", out, "--batch-size", "1", "--no-progress")
    partial = journal_path(out)
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # its own group: ffmpeg children die with it
    try:
        deadline = time.monotonic() + 120
        while not _complete_rows(partial) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "predict finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    kept = _complete_rows(partial)  # valid JSON Lines, whole rows, the output file not yet written
    assert len(kept) >= 1 and all(list(r) == list(OUTPUT_FIELDS) for r in kept)
    assert not out.exists()

    again = subprocess.run(args, cwd=REPO, capture_output=True, text=True)  # without --resume: refused
    assert again.returncode == 2 and "pass --resume" in again.stderr

    resumed = subprocess.run(args + ["--resume"], cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(kept)} of 6 clips done" in resumed.stderr
    rows = read_output(out, fmt)
    assert sorted(r["clip"] for r in rows) == sorted(p.name for p in clip_folder.iterdir())  # each exactly once
    assert [r["clip"] for r in rows[:len(kept)]] == [r["clip"] for r in kept]
    assert not partial.exists()


# --------------------------------------------------------------------------- the GPU install


def test_gpu_requirements_are_the_cpu_ones_with_tensorflows_cuda_build():
    from packaging.requirements import Requirement

    def requirements(name):
        return [Requirement(line) for line in (REPO / name).read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    cpu, gpu = requirements("requirements.txt"), requirements("requirements-gpu.txt")
    tf_cpu = next(r for r in cpu if r.name == "tensorflow-cpu")
    assert [str(r) for r in gpu[1:]] == [str(r) for r in cpu if r is not tf_cpu]
    pinned = next(iter(gpu[0].specifier)).version
    assert (gpu[0].name, gpu[0].extras, str(gpu[0].specifier)) == ("tensorflow", {"and-cuda"}, f"=={pinned}")
    assert tf_cpu.specifier.contains(pinned)  # a version the CPU install accepts too
