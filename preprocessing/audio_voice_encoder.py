"""Statistics of a pretrained speaker encoder's hidden states: what many voices taught a network.

The encoder is the GE2E speaker-verification network of Resemblyzer (Jemine, 2019; Wan et al.,
"Generalized end-to-end loss for speaker verification", 2018): three LSTM layers of 256 units over
40-band mel power spectra (25 ms windows, 10 ms hop, 16 kHz), whose last state, through a linear
layer, is a speaker embedding. It learned from thousands of speakers (LibriSpeech, VoxCeleb 1 and
2), so its hidden states describe a voice the way no corpus of 52 speakers can teach. Its weights
(Apache License 2.0) ship in :data:`WEIGHTS` (``voice_encoder_ge2e.npz``, converted from the
``pretrained.pt`` of the PyPI wheel Resemblyzer 0.1.4 by ``experiments/convert_voice_encoder.py``;
the licence and provenance in ``preprocessing/weights/``); the network runs here in NumPy, so
extraction needs no deep-learning framework.

Values, in vector order (:func:`voice_encoder_names`, 1,536): ``ge2e_lL_mean_KKK`` and
``ge2e_lL_std_KKK`` for layers L = 0, 1, 2: the mean and the standard deviation over the utterance
of each of the 256 hidden units, the whole utterance read as one sequence.

Why: the embedding is trained to ignore what a voice does, but the layers under it keep how it
moves. On six speaker-disjoint folds of the 52 speakers (logistic regression), these values alone
reached 67 / 78 / 71% UAR on RAVDESS / EmoDB / URDU against 53 / 59 / 40% for the 1,825 hand-made
functionals; the embedding itself (256 more values) added nothing (docs/DESIGN.md, "A pretrained
voice encoder").

Before the network, the signal is trimmed of leading and trailing silence (more than 35 dB under
its peak) and raised (never lowered) to -30 dBFS RMS, as Resemblyzer prepares its input.
"""

from functools import lru_cache
from pathlib import Path

import librosa
import numpy as np

from preprocessing.constants import SAMPLE_RATE
from preprocessing.errors import ModelError

#: The encoder's weights: ``lstm.weight_ih_l{L}`` (1024, in), ``lstm.weight_hh_l{L}`` (1024, 256),
#: ``lstm.bias_ih_l{L}``, ``lstm.bias_hh_l{L}`` (1024,) for L = 0..2 (gates in the order input, forget,
#: cell, output). (The embedding's linear layer is not used, and not shipped.)
WEIGHTS = Path(__file__).resolve().parent / "weights" / "voice_encoder_ge2e.npz"
LAYERS = 3
UNITS = 256
MEL_BANDS = 40
MEL_WINDOW = 400      # 25 ms at 16 kHz
MEL_HOP = 160         # 10 ms
TRIM_TOP_DB = 35.0
TARGET_DBFS = -30.0
BLOCK_FRAMES = 1000   # frames the LSTM reads per block (10 s): bounds the hidden states held at once


def voice_encoder_names():
    """Names of :func:`voice_encoder_statistics`'s values (1,536), in vector order."""
    names = []
    for layer in range(LAYERS):
        names += [f"ge2e_l{layer}_{stat}_{k:03d}" for stat in ("mean", "std") for k in range(UNITS)]
    return names


@lru_cache(maxsize=1)
def _weights():
    """The encoder's arrays (float32), read once per process (no pickle: a plain ``.npz``)."""
    if not WEIGHTS.is_file():
        raise ModelError(f"{WEIGHTS}: the voice encoder's weights are missing (reinstall EmoNet)")
    with np.load(WEIGHTS, allow_pickle=False) as arrays:
        return {name: arrays[name].astype(np.float32) for name in arrays.files}


def prepared_signal(y):
    """``y`` (n,) 16 kHz float -> trimmed of outer silence and raised to -30 dBFS RMS (float32)."""
    y = np.asarray(y, np.float32)
    if y.size >= MEL_WINDOW and np.any(y):
        y, _ = librosa.effects.trim(y, top_db=TRIM_TOP_DB)
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0
    if rms > 0:
        y = y * np.float32(max(1.0, 10.0 ** ((TARGET_DBFS - 20.0 * np.log10(rms)) / 20.0)))
    return y


def mel_power(y):
    """(frames, 40) mel power spectrum of a prepared signal, as the encoder was trained on (not log)."""
    power = librosa.feature.melspectrogram(y=np.asarray(y, np.float32), sr=SAMPLE_RATE, n_fft=MEL_WINDOW,
                                           hop_length=MEL_HOP, n_mels=MEL_BANDS)
    return power.T.astype(np.float32)


@lru_cache(maxsize=LAYERS)
def _layer_arrays(layer):
    """Input weights (in, 1024), recurrent weights (256, 1024) and bias (1024,) of one LSTM layer, the gate
    columns reordered to input, forget, output, cell (the three sigmoid gates side by side)."""
    weights = _weights()
    order = np.concatenate([np.arange(0, 512), np.arange(768, 1024), np.arange(512, 768)])
    bias = weights[f"lstm.bias_ih_l{layer}"] + weights[f"lstm.bias_hh_l{layer}"]
    return (np.ascontiguousarray(weights[f"lstm.weight_ih_l{layer}"][order].T),
            np.ascontiguousarray(weights[f"lstm.weight_hh_l{layer}"][order].T), bias[order])


def lstm_layers(frames, states=None):
    """Hidden states of the three LSTM layers for a batch of sequences, from ``states`` (zeros if None).

    Parameters
    ----------
    frames : np.ndarray [shape=(batch, T, 40), dtype=float32]
        Mel power frames (:func:`mel_power`).
    states : list of 3 (h, c), optional
        Each layer's state before the first frame, (batch, 256) float32 each: the state a previous
        block of the same sequences ended in (the ``states`` of its call).

    Returns
    -------
    hidden : list of 3 np.ndarray [shape=(batch, T, 256), dtype=float32]
        Each layer's hidden state at every frame (the input of the next layer).
    states : list of 3 (h, c)
        Each layer's state after the last frame.
    """
    inputs, hidden_states, end_states = np.asarray(frames, np.float32), [], []
    batch, steps = inputs.shape[:2]
    for layer in range(LAYERS):
        kernel, recurrent, bias = _layer_arrays(layer)
        projected = inputs @ kernel + bias                                   # (batch, T, 1024)
        if states is None:
            h, c = np.zeros((batch, UNITS), np.float32), np.zeros((batch, UNITS), np.float32)
        else:
            h, c = states[layer][0], states[layer][1].copy()
        gates = np.empty((batch, 4 * UNITS), np.float32)
        hidden = np.empty((batch, steps, UNITS), np.float32)
        for t in range(steps):
            np.matmul(h, recurrent, out=gates)
            gates += projected[:, t]
            sigmoids = gates[:, :3 * UNITS]                                   # input, forget, output
            np.tanh(0.5 * sigmoids, out=sigmoids)
            sigmoids += 1.0
            sigmoids *= 0.5
            cell = np.tanh(gates[:, 3 * UNITS:])
            c *= gates[:, UNITS:2 * UNITS]
            c += gates[:, :UNITS] * cell
            h = gates[:, 2 * UNITS:3 * UNITS] * np.tanh(c)
            hidden[:, t] = h
        hidden_states.append(hidden)
        end_states.append((h, c))
        inputs = hidden
    return hidden_states, end_states


def voice_encoder_statistics(y):
    """The 1,536 values of :func:`voice_encoder_names` for one utterance.

    The utterance is read as one sequence, :data:`BLOCK_FRAMES` frames (10 s) at a time, each block
    starting from the state the one before ended in: the same values as one pass, in memory that
    does not grow with the utterance's length (one pass over an hour held 5 GiB of hidden states).

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,), dtype=float32]
        Finite mono samples at :data:`~preprocessing.constants.SAMPLE_RATE`, at least one
        25 ms window long (callers pad, as :func:`preprocessing.audio_frames.pad_to_window`).

    Returns
    -------
    np.ndarray [shape=(1536,), dtype=float64]
        Per layer the mean and the standard deviation of each hidden unit (in (-1, 1) and [0, 1)).
    """
    mel = mel_power(prepared_signal(y))
    sums, squares = np.zeros((LAYERS, UNITS)), np.zeros((LAYERS, UNITS))
    states = None
    for start in range(0, len(mel), BLOCK_FRAMES):
        hidden, states = lstm_layers(mel[None, start:start + BLOCK_FRAMES], states)
        for layer, values in enumerate(hidden):
            sums[layer] += values[0].sum(axis=0, dtype=np.float64)
            squares[layer] += np.square(values[0], dtype=np.float64).sum(axis=0)
    mean = sums / len(mel)
    std = np.sqrt(np.maximum(squares / len(mel) - mean ** 2, 0.0))
    return np.concatenate([part for layer in range(LAYERS) for part in (mean[layer], std[layer])])
