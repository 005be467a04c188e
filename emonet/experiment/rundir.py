"""A run folder: where it is, what it records about the machine and the code, the random seeds."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from preprocessing.jobs import library_versions


def run_directory(cfg):
    """``<output_dir>/<name>-seed<seed>``: the seed names the output folder."""
    return Path(cfg["output_dir"]) / f"{cfg['name']}-seed{cfg['seed']}"


def set_seeds(seed):
    """Seed Python, NumPy and TensorFlow (through Keras) for repeatable runs."""
    import keras
    keras.utils.set_random_seed(seed)


def git_commit():
    """The project's git commit (with ``-dirty`` when there are local changes), or "unknown"."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True,
                               timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if commit.returncode:
        return "unknown"
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def write_versions(run_dir):
    import keras
    import sklearn
    import tensorflow as tf
    versions = {**library_versions(), "tensorflow": tf.__version__, "keras": keras.__version__,
                "scikit-learn": sklearn.__version__, "git_commit": git_commit(),
                "machine": f"{platform.machine()} {os.cpu_count()} cpus", "argv": sys.argv}
    (run_dir / "versions.json").write_text(json.dumps(versions, indent=2))
