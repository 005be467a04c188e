"""``model.audio_features``: a voice that reads one block of the audio vector (the reducer's ``first_feature``)."""

import numpy as np
import pytest

from emonet.experiment.config import load_config, resolve_config
from emonet.features.embedding import audio_width_read, reduce_audio
from emonet.features.reducer import AudioReducer
from emonet.features.reducer_apply import FittedReducer
from emonet.features.reducer_checks import ReducerError
from preprocessing.audio import audio_block, feature_names
from preprocessing.audio_voice_encoder import voice_encoder_names
from preprocessing.errors import ConfigError

WIDTH = len(feature_names())
ENCODER = audio_block("voice_encoder")


def test_the_blocks_split_the_vector_where_the_voice_encoders_names_start():
    names = feature_names()
    assert audio_block("all") == (0, WIDTH) and audio_block("functionals") == (0, ENCODER[0])
    assert names[ENCODER[0]:ENCODER[1]] == voice_encoder_names() and ENCODER[1] == WIDTH
    with pytest.raises(ConfigError, match="audio block must be one of all, functionals, voice_encoder; received 'mfcc'"):
        audio_block("mfcc")


def wide_clips(n=140, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(7), n // 7)
    return rng.normal(size=(n, WIDTH)) + y[:, None] * 0.1, y


def test_a_reducer_of_the_encoder_block_reads_its_columns_and_keeps_its_place_when_saved(tmp_path):
    x, y = wide_clips()
    first, stop = ENCODER
    reducer = AudioReducer(mode="none", first_feature=first).fit(x[:, first:stop], y)
    expected = reducer.transform(x[:5, first:stop])
    np.testing.assert_allclose(reduce_audio(reducer, x[:5], np.ones(5, bool)), expected, atol=1e-5)
    reducer.save(tmp_path / "reducer.npz")
    for loaded in (AudioReducer.load(tmp_path / "reducer.npz"), FittedReducer.load(tmp_path / "reducer.npz")):
        assert loaded.first_feature == first and audio_width_read(loaded) == WIDTH
        np.testing.assert_allclose(reduce_audio(loaded, x[:5], np.ones(5, bool)), expected, atol=1e-5)
    older = np.zeros((2, 1825))  # a store of sessions 10-13: no encoder block
    assert not reduce_audio(reducer, older, np.zeros(2, bool)).any()  # photos and silent clips: no audio needed
    with pytest.raises(ReducerError, match="1825 features, but AudioReducer is expecting 1536"):
        reduce_audio(reducer, older, np.ones(2, bool))


def test_a_reducer_saved_before_blocks_existed_reads_from_the_first_column(tmp_path):
    x, y = wide_clips()
    arrays = AudioReducer(mode="none").fit(x[:, :1825], y).to_arrays()
    del arrays["first_feature"]
    loaded = AudioReducer.from_arrays(arrays)
    assert loaded.first_feature == 0 and audio_width_read(loaded) == 1825
    with pytest.raises(ReducerError, match="first_feature: must be an integer >= 0; received -1"):
        AudioReducer(mode="none", first_feature=-1).fit(x, y)


def test_the_config_names_an_unknown_block(tmp_path):
    with pytest.raises(ConfigError, match="model.audio_features must be one of all, functionals, voice_encoder"):
        resolve_config({"data": {"root": str(tmp_path)}, "model": {"audio_features": "encoder"}})


@pytest.mark.slow
def test_an_audio_run_trained_on_the_encoder_block_alone(audio_run, tmp_path):
    """The tones corpus (label only in the sound): a voice reading only the encoder's statistics learns it,
    and its reducer reads columns 1,825-3,360 of the stored vectors wherever the run is used."""
    from emonet.inference.trained_run import TrainedRun
    from emonet.training.trainer import train
    from preprocessing.store import FeatureStore
    from stripes_corpus import run_config
    _, root = audio_run
    shape = {"audio_units": [24], "head_units": [], "audio_features": "voice_encoder", "reducer": "none"}
    run_dir = train(load_config(run_config(tmp_path, root, "audio", "tones_encoder", model_overrides=shape)))
    run = TrainedRun(run_dir)
    assert run.reducer.first_feature == ENCODER[0] and run.reducer.n_features_in_ == ENCODER[1] - ENCODER[0]
    with FeatureStore(tmp_path / "tones_encoder.h5") as store:
        index = [r for r in store.index() if r["split"] == "val"]
        functionals = np.stack([store.clip(r["key"])["audio_functionals"][()] for r in index])
        labels = [r["label"] for r in index]
    proba = run.predict(None, functionals, np.ones(len(index), bool))
    from preprocessing.constants import CLASSES
    accuracy = np.mean([CLASSES[k] == label for k, label in zip(proba.argmax(1), labels)])
    assert accuracy >= 0.5  # 4 classes, chance 0.25
    narrow = functionals[:, :1825]  # the same clips stored by sessions 10-13
    with pytest.raises(Exception, match="1825 features, but AudioReducer is expecting 1536"):
        run.predict(None, narrow, np.ones(len(index), bool))
