"""What a prediction needs before its model: TensorFlow imported quietly, the device, the shipped model.

Importing this module is cheap (no NumPy, no TensorFlow): the command line and the helper
processes of :mod:`emonet.inference.workers` read the shipped model's folder and a run's
extraction settings before (or without) TensorFlow loads.
"""

import contextlib
import dataclasses
import logging
import os
import re
import sys
import tempfile
from pathlib import Path

from preprocessing.errors import ModelError

#: TensorFlow's C++ log threshold (``TF_CPP_MIN_LOG_LEVEL``) unless the user set one: 3 keeps
#: fatal lines only. Its INFO/WARNING/ERROR lines at start-up (oneDNN, CPU instructions, CUDA
#: plugins registered twice) are noise to a user; errors that matter reach us as exceptions.
#: ``TF_CPP_MIN_LOG_LEVEL=0 emonet predict ...`` shows them all again.
TF_MIN_LOG_LEVEL = "3"

# One line of TensorFlow's C++ log (absl format): severity letter, MMDD, time, thread, file:line].
_NATIVE_LOG_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]+:\d+\] ")
_ABSL_PRE_INIT_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def tf_log_level():
    """The effective ``TF_CPP_MIN_LOG_LEVEL`` (0 = everything, 3 = fatal only)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def below_tf_log_level(line, level):
    """Whether a line written to stderr is a TensorFlow C++ log line that ``level`` hides."""
    if line.rstrip("\n") == _ABSL_PRE_INIT_NOTICE:
        return level >= 1
    match = _NATIVE_LOG_LINE.match(line)
    return bool(match) and "IWEF".index(match.group(1)) < level


@contextlib.contextmanager
def _native_log_filtered():
    """Hold back what is written to file descriptor 2 in the block; then replay it minus hidden TF lines.

    TensorFlow prints a few lines (the oneDNN notice, each preceded by absl's
    "before absl::InitializeLog()" warning) while it loads, before it reads
    ``TF_CPP_MIN_LOG_LEVEL``; this applies that setting to them too. Anything else
    (Python warnings, other libraries' messages, fatal lines) is written out unchanged.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no file descriptor 2 (embedded interpreters): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            level = tf_log_level()
            kept = [line for line in held.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not below_tf_log_level(line, level)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


#: Packages Keras imports at start-up only for optional integrations: pandas (DataFrames given to
#: ``fit``), matplotlib (``keras.visualization``), scikit-learn (``keras.wrappers``), each behind a
#: ``try: import ... except ImportError``. A process that only predicts (:func:`predict_only`) holds them
#: back while TensorFlow loads: its import took 2.4-3.5 s instead of 3.8-6.1 s (2 cores, load 4-5,
#: alternating runs). They stay importable afterwards; only those Keras integrations are off.
KERAS_OPTIONAL = ("pandas", "matplotlib", "sklearn")

_PREDICT_ONLY = []  # non-empty once predict_only() has been called in this process


def predict_only():
    """Declare this process one that only predicts (``emonet predict``): :func:`import_tensorflow` then loads
    TensorFlow without Keras's optional integrations (:data:`KERAS_OPTIONAL`). Not for a library user's
    process, whose own Keras code may want them."""
    _PREDICT_ONLY.append(True)


@contextlib.contextmanager
def _held_back(names):
    """In the block, ``import NAME`` raises ImportError for each of ``names`` (not yet imported); restored after."""
    names = [name for name in names if name not in sys.modules]
    for name in names:
        sys.modules[name] = None
    try:
        yield
    finally:
        for name in names:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def import_tensorflow():
    """TensorFlow, imported without its start-up notices on stderr (see :data:`TF_MIN_LOG_LEVEL`).

    Call it before anything imports TensorFlow or Keras (the CLI and :func:`emonet.load_model`
    do); once TensorFlow is loaded it only returns the module. In a prediction-only process
    (:func:`predict_only`) Keras's optional integrations are left out. Sets ``TF_CPP_MIN_LOG_LEVEL``
    to :data:`TF_MIN_LOG_LEVEL` unless it is set; oneDNN stays on (turning it off with
    ``TF_ENABLE_ONEDNN_OPTS=0`` would silence the notice too, but makes the frame encoder
    1.5-2 times slower on CPU).
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_MIN_LOG_LEVEL)
    with _native_log_filtered(), _held_back(KERAS_OPTIONAL if _PREDICT_ONLY else ()):
        import tensorflow as tf
        tf.config.list_physical_devices()  # device discovery (CUDA on a GPU install) logs here too
    return tf


def compute_device():
    """Where Keras runs a model: ``"CPU"`` or ``"GPU: <name>"`` (the first GPU TensorFlow sees)."""
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU: {details.get('device_name', gpus[0].name)}"


#: The shipped model, ``emonet-base`` (MODEL_CARD.md there): a run folder inside the package.
SHIPPED_MODEL_DIR = Path(__file__).resolve().parents[1] / "pretrained" / "emonet-base"


def is_shipped_model(model):
    """Whether a model argument means the shipped model: None (no model named), the path of its folder, or
    the name ``emonet-base`` (:data:`emonet.experiment.config.SHIPPED_MODEL_NAME`) where no such folder is."""
    from emonet.experiment.config import SHIPPED_MODEL_NAME
    if model is None or (str(model) == SHIPPED_MODEL_NAME and not Path(model).exists()):
        return True
    return Path(model).resolve() == SHIPPED_MODEL_DIR.resolve()


def shipped_model_dir():
    """The folder of the shipped model; ModelError if this installation lacks it."""
    if not (SHIPPED_MODEL_DIR / "model.keras").is_file():
        raise ModelError(f"{SHIPPED_MODEL_DIR}: the shipped model emonet-base is missing from this installation; "
                         f"pass --model RUN (a run folder written by emonet train)")
    return SHIPPED_MODEL_DIR


def params_for_prediction(extract_settings, test_audio_speeds=(), *, mode="audio"):
    """Extraction settings (an ``ExtractParams``) for classifying clips with a run trained on ``extract_settings``.

    ``extract_settings`` is the run's ``extract`` section as a dict. The speed-perturbed copies of
    its ``extract.audio_speeds`` are training material, so they are replaced by the run's
    ``model.test_audio_speeds`` (``test_audio_speeds``): the copies its voice also hears at prediction
    (none by default). A run of ``mode`` "fusion" gets them only for clips without a face, where
    the voice decides alone.
    """
    from preprocessing.extraction import ExtractParams
    return dataclasses.replace(ExtractParams(**extract_settings), audio_speeds=tuple(test_audio_speeds),
                               speed_copies_without_face_only=bool(test_audio_speeds) and mode == "fusion")


def folder_prediction_params(folder):
    """:func:`params_for_prediction` of the run in ``folder``, read without loading its model (no TensorFlow)."""
    from emonet.experiment.rundir import RunDir
    config = RunDir(folder).config
    return params_for_prediction(dataclasses.asdict(config.extract), config.model.test_audio_speeds,
                                 mode=config.model.mode)


def exit_now(status):
    """End the process with ``status`` once the output streams and the log are flushed (``emonet predict``).

    Skips the interpreter's teardown: TensorFlow's, and joining idle helper processes (they end
    with this process, :mod:`preprocessing.lifetime`); every file ``predict`` writes is complete
    before it returns. About 1.3 s of a one-clip prediction (experiments/bench_startup.py).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    release_helper_semaphores()
    os._exit(status)


def release_helper_semaphores():
    """Unlink the named semaphores of this process's multiprocessing queues and locks, as a normal exit does.

    The helpers' queues (``spawn`` context) register their semaphores with multiprocessing's
    resource tracker, a separate process; skipped, it warns on stderr after we are gone ("There
    appear to be 5 leaked semaphore objects"). Runs the finalizers a normal exit runs first
    (``multiprocessing.util._run_finalizers(0)``: unlink the semaphores, close the queue feeders),
    not the ones that wait for feeder threads or helper processes.
    """
    from multiprocessing import util
    util._run_finalizers(0)
