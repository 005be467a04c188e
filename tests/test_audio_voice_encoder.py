"""The pretrained voice encoder: its NumPy LSTM, its input preparation and its statistics."""

import io
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from preprocessing.audio_voice_encoder import (
    LAYERS,
    MEL_BANDS,
    UNITS,
    WEIGHTS,
    lstm_layers,
    prepared_signal,
    voice_encoder_names,
    voice_encoder_statistics,
)
from preprocessing.media import decode_audio

from conftest import CREMA_D

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments.convert_voice_encoder import _CheckpointUnpickler  # noqa: E402


def speech(name="1001_DFA_ANG_XX.flv"):
    """Real speech: a CREMA-D clip's audio, 16 kHz mono float32."""
    return decode_audio(CREMA_D / name)


def test_the_weights_are_plain_arrays_of_the_encoder_shapes():
    with np.load(WEIGHTS, allow_pickle=False) as arrays:
        assert arrays["lstm.weight_ih_l0"].shape == (4 * UNITS, MEL_BANDS)
        for layer in range(LAYERS):
            assert arrays[f"lstm.weight_hh_l{layer}"].shape == (4 * UNITS, UNITS)
            assert arrays[f"lstm.bias_ih_l{layer}"].shape == (4 * UNITS,)
            assert np.all(np.isfinite(arrays[f"lstm.weight_hh_l{layer}"]))


def test_the_numpy_lstm_equals_keras_lstm_layers_given_the_same_weights():
    """An independent implementation of the recurrence: Keras's LSTM (gates i, f, c, o, one bias) with the
    shipped arrays, on random mel-like frames of two sequences."""
    import keras
    arrays = np.load(WEIGHTS, allow_pickle=False)
    frames = np.random.default_rng(0).gamma(1.0, 0.05, size=(2, 37, MEL_BANDS)).astype(np.float32)
    inputs = keras.Input((None, MEL_BANDS))
    outputs, h = [], inputs
    for layer in range(LAYERS):
        lstm = keras.layers.LSTM(UNITS, return_sequences=True)
        h = lstm(h)
        outputs.append(h)
        lstm.set_weights([arrays[f"lstm.weight_ih_l{layer}"].T, arrays[f"lstm.weight_hh_l{layer}"].T,
                          arrays[f"lstm.bias_ih_l{layer}"] + arrays[f"lstm.bias_hh_l{layer}"]])
    expected = keras.Model(inputs, outputs).predict(frames, verbose=0)
    for ours, theirs in zip(lstm_layers(frames)[0], expected):
        assert ours.shape == (2, 37, UNITS)
        np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_blocks_of_a_sequence_continue_from_the_state_the_last_ended_in(monkeypatch):
    """A long utterance is read in blocks: the hidden states and the statistics equal those of one pass."""
    import preprocessing.audio_voice_encoder as encoder
    frames = np.random.default_rng(1).gamma(1.0, 0.05, size=(1, 50, MEL_BANDS)).astype(np.float32)
    whole, _ = lstm_layers(frames)
    first, states = lstm_layers(frames[:, :23])
    rest, _ = lstm_layers(frames[:, 23:], states)
    for layer in range(LAYERS):
        np.testing.assert_allclose(np.concatenate([first[layer], rest[layer]], axis=1), whole[layer], atol=1e-6)
    y = speech()
    steps = len(encoder.mel_power(encoder.prepared_signal(y)))
    one_pass = voice_encoder_statistics(y)
    monkeypatch.setattr(encoder, "BLOCK_FRAMES", 17)
    assert steps > 5 * 17
    np.testing.assert_allclose(voice_encoder_statistics(y), one_pass, atol=1e-6)
    hidden, _ = lstm_layers(encoder.mel_power(encoder.prepared_signal(y))[None])
    direct = np.concatenate([part for h in hidden for part in (h[0].mean(axis=0), h[0].std(axis=0))])
    np.testing.assert_allclose(one_pass, direct, atol=1e-5)


def test_statistics_of_real_speech_are_named_finite_and_bounded():
    values = voice_encoder_statistics(speech())
    names = voice_encoder_names()
    assert values.shape == (len(names),) == (1536,) and len(set(names)) == len(names)
    assert np.all(np.isfinite(values))
    means = values[[i for i, n in enumerate(names) if "_mean_" in n]]
    spreads = values[[i for i, n in enumerate(names) if "_std_" in n]]
    assert np.all(np.abs(means) < 1) and np.all((spreads >= 0) & (spreads < 1)) and spreads.max() > 0.05


def test_a_quiet_recording_is_raised_so_its_level_does_not_matter():
    y = speech()
    quiet = 0.05 * y
    np.testing.assert_allclose(voice_encoder_statistics(quiet), voice_encoder_statistics(0.5 * quiet), atol=1e-4)
    rms = np.sqrt(np.mean(prepared_signal(quiet) ** 2))
    assert abs(20 * np.log10(rms) - (-30.0)) < 0.1


def test_silence_around_the_speech_is_trimmed():
    y = speech()
    padded = np.concatenate([np.zeros(16000, np.float32), y, np.zeros(16000, np.float32)])
    assert len(prepared_signal(padded)) < len(y) + 3200
    alone = voice_encoder_statistics(y)
    moved = np.linalg.norm(voice_encoder_statistics(padded) - alone)
    other_emotion = np.linalg.norm(voice_encoder_statistics(speech("1001_DFA_HAP_XX.flv")) - alone)
    assert moved < other_emotion / 3


def test_two_emotions_of_one_speaker_differ_more_than_two_renderings_of_one():
    angry, happy = speech("1001_DFA_ANG_XX.flv"), speech("1001_DFA_HAP_XX.flv")
    noisy = angry + np.random.default_rng(1).normal(0, 1e-3, angry.shape).astype(np.float32)
    same = np.linalg.norm(voice_encoder_statistics(angry) - voice_encoder_statistics(noisy))
    other = np.linalg.norm(voice_encoder_statistics(angry) - voice_encoder_statistics(happy))
    assert other > 3 * same


def test_silence_and_a_single_window_do_not_fail():
    for y in (np.zeros(400, np.float32), np.zeros(16000, np.float32), np.full(400, 0.1, np.float32)):
        values = voice_encoder_statistics(y)
        assert values.shape == (1536,) and np.all(np.isfinite(values))


def test_the_converter_refuses_any_global_but_a_tensor_state_dict():
    """A checkpoint that would run code on load is refused by name, and nothing is called."""
    payload = pickle.dumps(print)  # a harmless global standing for any callable
    with pytest.raises(pickle.UnpicklingError, match="refused global builtins.print"):
        _CheckpointUnpickler(io.BytesIO(payload), {}).load()
