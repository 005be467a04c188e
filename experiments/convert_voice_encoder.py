"""Convert Resemblyzer's pretrained voice encoder to the plain arrays EmoNet ships.

Source: the ``resemblyzer/pretrained.pt`` inside the PyPI wheel ``Resemblyzer-0.1.4-py3-none-any.whl``
(Apache License 2.0; https://github.com/resemble-ai/Resemblyzer). That file is a PyTorch checkpoint in
the legacy serialisation (a sequence of pickles, then the raw tensor storages). It is read here without
PyTorch and without trusting the pickle: :class:`_CheckpointUnpickler` allows only the three globals a
state dict of float tensors needs (tensor rebuild, float storage, ordered dict) and refuses any other.
Only the LSTM's arrays are kept (the speaker embedding's linear layer and the optimiser state are
dropped); the result is an ordinary ``.npz`` read with ``allow_pickle=False``.

Run:  .venv/bin/pip download --no-deps resemblyzer==0.1.4 -d /tmp/rz
      .venv/bin/python experiments/convert_voice_encoder.py /tmp/rz/Resemblyzer-0.1.4-py3-none-any.whl
Writes preprocessing/weights/voice_encoder_ge2e.npz and prints the SHA-256 of the source and of the result.
"""

import argparse
import collections
import hashlib
import io
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "preprocessing" / "weights" / "voice_encoder_ge2e.npz"
MEMBER = "resemblyzer/pretrained.pt"
STORAGE_DTYPES = {"FloatStorage": np.float32}


class _TensorRef:
    """Where a tensor's values are: a storage key, an element offset, a shape and strides (in elements)."""

    def __init__(self, storage, offset, shape, strides, *_):
        self.storage, self.offset, self.shape, self.strides = storage, offset, tuple(shape), tuple(strides)


class _CheckpointUnpickler(pickle.Unpickler):
    """A pickle reader that builds nothing but tensor references, storage names and ordered dicts."""

    def __init__(self, handle, storages):
        super().__init__(handle)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _TensorRef
        if module == "torch" and name in STORAGE_DTYPES:
            return name
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, saved_id):
        kind, storage_type, key, _location, _size, view = saved_id
        if kind != "storage" or view is not None:
            raise pickle.UnpicklingError(f"unexpected persistent id {saved_id!r}")
        self.storages[key] = storage_type
        return key


def read_state_dict(data):
    """The checkpoint's ``model_state`` as ``{name: float32 array}``, from the bytes of ``pretrained.pt``."""
    handle, storages = io.BytesIO(data), {}
    for _ in range(3):  # magic number, protocol version, system info
        _CheckpointUnpickler(handle, storages).load()
    checkpoint = _CheckpointUnpickler(handle, storages).load()
    keys = _CheckpointUnpickler(handle, storages).load()
    values = {}
    for key in keys:
        dtype = np.dtype(STORAGE_DTYPES[storages[key]])
        (count,) = struct.unpack("<q", handle.read(8))
        values[key] = np.frombuffer(handle.read(count * dtype.itemsize), dtype)
    state = {}
    for name, ref in checkpoint["model_state"].items():
        flat = values[ref.storage]
        state[name] = np.lib.stride_tricks.as_strided(
            flat[ref.offset:], shape=ref.shape, strides=[s * flat.itemsize for s in ref.strides]).copy()
    return state


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="Resemblyzer-0.1.4-py3-none-any.whl (pip download --no-deps)")
    args = parser.parse_args()
    with zipfile.ZipFile(args.wheel) as wheel:
        data = wheel.read(MEMBER)
    state = read_state_dict(data)
    kept = {name: array for name, array in state.items() if name.startswith("lstm.")}
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    partial = TARGET.with_suffix(".partial.npz")
    np.savez_compressed(partial, **kept)
    partial.replace(TARGET)
    print(f"{MEMBER} sha256 {hashlib.sha256(data).hexdigest()}")
    print(f"{TARGET.relative_to(REPO)} sha256 {hashlib.sha256(TARGET.read_bytes()).hexdigest()}"
          f" ({len(kept)} arrays, {sum(a.size for a in kept.values()):,} values)")


if __name__ == "__main__":
    sys.exit(main())
