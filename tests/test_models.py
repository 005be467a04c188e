"""Tests for emonet.nn (models, resnet, video, layers, io): shapes, ResNet-20 structure, masking,
save/load (old .keras files included), learnability, errors.

Models are small (32x32 crops, 4 frames) and built once per module where they
can be shared; the only fits are on the cheap audio and cached-embedding
models (a fit through the ResNet costs ~15 s of tracing alone).
"""

from pathlib import Path

import keras
import numpy as np
import pytest

from emonet.nn.io import load_model, save_model_atomically
from emonet.nn.layers import BranchPool, FeatureSlice, FrameMask, HasInput, LogProbability
from emonet.nn.models import build_audio_encoder, build_emonet, build_video_encoder, model_inputs
from emonet.nn.names import MODES, VIDEO_INPUTS
from emonet.nn.resnet import build_frame_classifier, build_resnet, build_resnet20
from emonet.nn.video import join_video_model, split_video_model
from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError, ModelError

T, SIZE, E, AUDIO = 4, 32, 16, 24  # frames per clip, crop side (px), embedding size, audio dims
BATCH = 3


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def _inputs(names, *, batch=BATCH, seed=0):
    """Random arrays for the named model inputs; clip i has T - i real frames."""
    rng = np.random.default_rng(seed)
    arrays = {
        "frames": rng.uniform(0, 255, (batch, T, SIZE, SIZE, 3)).astype("float32"),
        "frame_embeddings": rng.normal(size=(batch, T, E)).astype("float32"),
        "frame_mask": (np.arange(T)[None, :] < (T - np.arange(batch) % T)[:, None]).astype("float32"),
        "audio": rng.normal(size=(batch, AUDIO)).astype("float32"),
    }
    return {name: arrays[name] for name in names}


def _small_emonet(mode, video_input, **kwargs):
    return build_emonet(mode=mode, video_input=video_input, n_frames=T, image_size=SIZE,
                        embedding_dim=E, audio_dim=AUDIO, **kwargs)


@pytest.fixture(scope="module")
def fusion_model():
    """The full model (ResNet frames + audio), compiled, shared by several tests."""
    keras.utils.set_random_seed(1)
    model = _small_emonet("fusion", "frames")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.initial_weights = [w.numpy() for w in model.trainable_weights]
    # One tiny end-to-end step (4 clips, padded ones included): gradients flow through
    # TimeDistributed(ResNet-20), the masked LSTMs and both branches. Costs ~15 s of tracing.
    history = model.fit(_inputs(model_inputs("fusion", "frames"), batch=4, seed=9), np.arange(4),
                        epochs=1, batch_size=4, verbose=0)
    model.first_loss = history.history["loss"][0]
    return model


def test_end_to_end_step_updates_every_trainable_weight(fusion_model):
    assert np.isfinite(fusion_model.first_loss)
    assert int(fusion_model.optimizer.iterations.numpy()) == 1
    weights = fusion_model.trainable_weights
    assert len(weights) == len(fusion_model.initial_weights) > 80  # 88: 21 convs, 21 BNs, 3 LSTMs, 9 Dense
    moved = [not np.allclose(w.numpy(), w0) for w, w0 in zip(weights, fusion_model.initial_weights)]
    assert all(moved), [w.path for w, m in zip(weights, moved) if not m]


# --------------------------------------------------------------------------- shapes and names
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("video_input", VIDEO_INPUTS)
def test_emonet_inputs_outputs_and_submodels(mode, video_input, fusion_model):
    model = fusion_model if (mode, video_input) == ("fusion", "frames") else _small_emonet(mode, video_input)
    names = model_inputs(mode, video_input)
    assert tuple(t.name for t in model.inputs) == names
    assert model.output_names == ["emotion"]
    expected_submodels = {"head"} | ({"video_encoder"} if mode != "audio" else set()) | (
        {"audio_encoder"} if mode != "video" else set())
    assert {layer.name for layer in model.layers if isinstance(layer, keras.Model)} == expected_submodels

    probs = model.predict(_inputs(names), verbose=0)
    assert probs.shape == (BATCH, len(CLASSES))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(probs >= 0)


@pytest.mark.parametrize(("mode", "video_input", "expected"), [
    ("fusion", "frames", ("frames", "frame_mask", "audio")),
    ("fusion", "embeddings", ("frame_embeddings", "frame_mask", "audio")),
    ("video", "frames", ("frames", "frame_mask")),
    ("video", "embeddings", ("frame_embeddings", "frame_mask")),
    ("audio", "frames", ("audio",)),
    ("audio", "embeddings", ("audio",)),
])
def test_model_inputs(mode, video_input, expected):
    assert model_inputs(mode, video_input) == expected


def test_dict_with_extra_keys_and_bool_mask_feed_the_model(fusion_model):
    x = _inputs(("frames", "frame_mask", "audio"))
    reference = fusion_model.predict(x, verbose=0)
    extra = dict(x, frame_mask=x["frame_mask"].astype(bool), clip_id=np.arange(BATCH))
    np.testing.assert_allclose(fusion_model.predict(extra, verbose=0), reference, atol=1e-6)


def test_head_is_the_same_across_ablation_modes():
    heads = {mode: _small_emonet(mode, "embeddings").get_layer("head") for mode in MODES}
    structure = {mode: [(type(l).__name__, l.output.shape[-1]) for l in h.layers[1:]]
                 for mode, h in heads.items()}
    assert structure["fusion"] == structure["video"] == structure["audio"]
    assert [n for kind, n in structure["fusion"] if kind == "Dense"] == [256, 128, 64]
    assert [l.rate for l in heads["fusion"].layers if isinstance(l, keras.layers.Dropout)] == [0.5] * 3
    assert heads["fusion"].input_shape == (None, 128 + 128)  # video + audio embeddings


# --------------------------------------------------------------------------- ResNet-20
def test_resnet20_structure():
    encoder = build_resnet20(image_size=64)
    convs = [l for l in encoder.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == 21
    assert sum(l.kernel_size == (3, 3) for l in convs) == 19
    assert sorted(l.name for l in convs if l.kernel_size == (1, 1)) == [
        "frame_encoder_stage2_block1_proj_conv", "frame_encoder_stage3_block1_proj_conv"]
    assert sum(isinstance(l, keras.layers.Add) for l in encoder.layers) == 9
    assert encoder.get_layer("frame_encoder_stage3_block3_out").output.shape == (None, 16, 16, 64)
    assert encoder.input_shape == (None, 64, 64, 3)
    assert encoder.output_shape == (None, 64)
    assert encoder.count_params() == 273_392
    assert all(l.name.startswith("frame_encoder_") for l in encoder.layers[1:])


@pytest.mark.parametrize(("kwargs", "dim", "has_projection"), [
    ({"width": 8, "embedding_dim": 32}, 32, False),
    ({"width": 16, "embedding_dim": 48}, 48, True),
])
def test_resnet20_width_and_embedding_dim(kwargs, dim, has_projection):
    encoder = build_resnet20(image_size=SIZE, **kwargs)
    assert encoder.output_shape == (None, dim)
    assert any(l.name == "frame_encoder_projection" for l in encoder.layers) is has_projection


def test_generic_resnet_stage_count():
    model = build_resnet(stack_sizes=(2, 2), filters=(8, 16), image_size=16, name="tiny")
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == 1 + 2 * 4 + 1
    assert model.output_shape == (None, 16)


def test_frame_classifier_shares_the_frame_encoder():
    encoder = build_resnet20(image_size=SIZE)
    classifier = build_frame_classifier(encoder)
    assert classifier.get_layer("frame_encoder") is encoder
    assert classifier.output_names == ["emotion"]
    frames = np.random.default_rng(0).uniform(0, 255, (5, SIZE, SIZE, 3)).astype("float32")
    probs = classifier.predict(frames, verbose=0)
    assert probs.shape == (5, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


# --------------------------------------------------------------------------- masking
@pytest.mark.parametrize("input_kind", VIDEO_INPUTS)
def test_video_encoder_ignores_padded_frames(input_kind):
    encoder = build_video_encoder(input_kind=input_kind, n_frames=T, image_size=SIZE,
                                  embedding_dim=E, lstm_units=32)
    names = model_inputs("video", input_kind)
    x = _inputs(names)  # clip 0: 4 real frames, clip 1: 3, clip 2: 2
    video = names[0]
    reference = encoder.predict(x, verbose=0)
    assert reference.shape == (BATCH, 32)

    padded = {k: v.copy() for k, v in x.items()}
    rng = np.random.default_rng(7)
    padded[video][1, 3] = rng.uniform(0, 255, padded[video][1, 3].shape)
    padded[video][2, 2:] = 0.0
    np.testing.assert_allclose(encoder.predict(padded, verbose=0), reference, atol=1e-6)

    real = {k: v.copy() for k, v in x.items()}
    real[video][2, 1] = 255.0 - real[video][2, 1] if input_kind == "frames" else -real[video][2, 1]
    changed = encoder.predict(real, verbose=0)
    np.testing.assert_allclose(changed[:2], reference[:2], atol=1e-6)
    assert np.abs(changed[2] - reference[2]).max() > 1e-5


def test_frame_mask_layer_config_round_trip():
    layer = FrameMask(threshold=0.25, name="m")
    clone = FrameMask.from_config(layer.get_config())
    assert clone.threshold == 0.25 and clone.name == "m"
    out = keras.ops.convert_to_numpy(clone(np.array([[0.0, 0.3, 1.0]], "float32")))
    assert out.dtype == bool and out.tolist() == [[False, True, True]]


# --------------------------------------------------------------------------- save / load
def test_save_and_load_round_trip(fusion_model, tmp_path):
    x = _inputs(model_inputs("fusion", "frames"), seed=3)
    before = fusion_model.predict(x, verbose=0)
    path = tmp_path / "emonet.keras"
    fusion_model.save(path)
    loaded = load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, atol=1e-6)
    assert [l.name for l in loaded.layers] == [l.name for l in fusion_model.layers]
    assert loaded.get_layer("video_encoder").get_layer("video_encoder_frames").layer.name == "frame_encoder"
    assert loaded.compiled
    assert int(loaded.optimizer.iterations.numpy()) == int(fusion_model.optimizer.iterations.numpy())
    for saved, restored in zip(fusion_model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())


def test_load_model_refuses_unsafe_lambda(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ModelError, match=r"load_model: cannot load .*lambda\.keras"):
        load_model(path)


@pytest.mark.parametrize(("name", "content", "match"), [
    ("model.h5", b"x", r"load_model: model file must end in \.keras; received: '.*model\.h5'"),
    ("missing.keras", None, r"load_model: model file does not exist: '.*missing\.keras'"),
    ("broken.keras", b"not a zip", r"load_model: cannot load '.*broken\.keras'"),
])
def test_load_model_errors(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=match):
        load_model(path)


# --------------------------------------------------------------------------- custom layers in saved files
LEGACY = Path(__file__).parent / "data" / "legacy"


def _every_layer_model():
    """A small model holding every custom layer (the graph of ``legacy/nn_custom_layers.keras``):
    frame_embeddings (B, 3, 8), frame_mask (B, 3), audio (B, 5) -> emotion (B, 7)."""
    emb = keras.Input((3, 8), name="frame_embeddings")
    mask = keras.Input((3,), name="frame_mask")
    audio = keras.Input((5,), name="audio")
    part = FeatureSlice(start=4, stop=8, name="slice")(emb)
    seq = keras.layers.LSTM(4, name="lstm")(part, mask=FrameMask(threshold=0.5, name="mask")(mask))
    video_logp = LogProbability(name="video_logp")(keras.layers.Dense(7, activation="softmax", name="video_out")(seq))
    audio_logp = LogProbability(floor=1e-3, name="audio_logp")(
        keras.layers.Dense(7, activation="softmax", name="audio_out")(audio))
    pooled = BranchPool(alpha=0.6, name="pool")(
        [video_logp, audio_logp, HasInput(name="has_video")(mask), HasInput(name="has_audio")(audio)])
    return keras.Model({"frame_embeddings": emb, "frame_mask": mask, "audio": audio},
                       keras.layers.Softmax(name="emotion")(pooled), name="legacy_layers")


def _layer_settings(model):
    """(class, settings) of every custom layer of ``model``, by layer name."""
    keys = ("threshold", "floor", "start", "stop", "alpha")
    return {layer.name: (type(layer), {k: v for k, v in layer.get_config().items() if k in keys})
            for layer in model.layers if type(layer).__module__ == "emonet.nn.layers"}


@pytest.mark.parametrize(("cls", "keys"), [
    (FrameMask, {"threshold"}),
    (LogProbability, {"floor"}),
    (FeatureSlice, {"start", "stop"}),
    (HasInput, set()),
    (BranchPool, {"alpha"}),
])
def test_custom_layers_keep_registered_name_and_config_keys(cls, keys):
    assert keras.saving.get_registered_name(cls) == f"emonet>{cls.__name__}"
    layer = cls(start=1, stop=3) if cls is FeatureSlice else cls()
    assert keys <= set(layer.get_config())
    assert keras.saving.get_registered_object(f"emonet>{cls.__name__}") is cls


def test_every_custom_layer_round_trips_through_save_and_load_model(tmp_path):
    model = _every_layer_model()
    assert len({cls for cls, _ in _layer_settings(model).values()}) == 5
    npz = np.load(LEGACY / "nn_custom_layers_io.npz")
    x = {key: npz[key] for key in ("frame_embeddings", "frame_mask", "audio")}
    before = model.predict(x, verbose=0)
    path = save_model_atomically(model, tmp_path / "layers.keras")
    loaded = load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, atol=1e-6)
    assert _layer_settings(loaded) == _layer_settings(model)


def test_keras_file_saved_before_the_redesign_still_loads():
    """``legacy/nn_custom_layers.keras`` was saved by the pre-redesign code (commit e1c61bf, layers then in
    ``emonet.models`` and ``emonet.ensemble``) from the graph of :func:`_every_layer_model`, seed 0;
    ``nn_custom_layers_io.npz`` holds its inputs (clip 3 without frames, clip 2 without audio) and outputs."""
    npz = np.load(LEGACY / "nn_custom_layers_io.npz")
    x = {key: npz[key] for key in ("frame_embeddings", "frame_mask", "audio")}
    loaded = load_model(LEGACY / "nn_custom_layers.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), npz["expected"], atol=1e-6)
    assert _layer_settings(loaded) == _layer_settings(_every_layer_model())


# --------------------------------------------------------------------------- learnability
def _accuracy(model, x, y):
    return float(np.mean(model.predict(x, verbose=0).argmax(axis=1) == y))


def test_audio_mode_learns_labels_carried_by_audio():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(7, AUDIO))

    def make(n):
        y = np.arange(n) % 7
        return {"audio": (rng.normal(size=(n, AUDIO)) + means[y]).astype("float32")}, y

    (x, y), (x_val, y_val) = make(7 * 32), make(7 * 16)
    model = _small_emonet("audio", "embeddings")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    assert _accuracy(model, x_val, y_val) > 0.6  # chance is 1/7


def test_video_mode_learns_labels_carried_by_real_frames_only():
    """Labels live in the real frames only; padded steps carry a decoy class.

    Masking itself is pinned by test_video_encoder_ignores_padded_frames: with this
    signal strength a model that ignores the mask still reaches ~0.66 here.
    """
    rng = np.random.default_rng(1)

    def make(n):
        y = np.arange(n) % 7
        lengths = rng.integers(1, T + 1, size=n)
        mask = (np.arange(T)[None, :] < lengths[:, None]).astype("float32")
        decoy = (y + rng.integers(1, 7, size=n)) % 7
        signal = np.where(mask[:, :, None] > 0, np.eye(7)[y][:, None, :], np.eye(7)[decoy][:, None, :])
        emb = rng.normal(size=(n, T, E))
        emb[:, :, :7] += 2.0 * signal
        return {"frame_embeddings": emb.astype("float32"), "frame_mask": mask}, y

    (x, y), (x_val, y_val) = make(7 * 32), make(7 * 16)
    model = _small_emonet("video", "embeddings")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    assert _accuracy(model, x_val, y_val) > 0.6  # chance is 1/7


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("build", "kwargs", "match"), [
    (build_emonet, {"mode": "x"},
     r"^build_emonet: mode must be one of fusion, video, audio; received: 'x'$"),
    (build_emonet, {"video_input": "pixels"},
     r"^build_emonet: video_input must be one of frames, embeddings; received: 'pixels'$"),
    (build_emonet, {"image_size": 4},
     r"^build_emonet: image_size must be an integer >= 8; received: 4$"),
    (build_emonet, {"n_frames": 0},
     r"^build_emonet: n_frames must be an integer >= 1; received: 0$"),
    (build_emonet, {"head_dropout": 1.0},
     r"^build_emonet: head_dropout must be a number in \[0, 1\); received: 1\.0$"),
    (build_emonet, {"head_units": (64, 0)},
     r"^build_emonet: head_units must be a sequence of positive integers; received: \(64, 0\)$"),
    (build_emonet, {"mode": "audio", "frame_encoder": "fe"},
     r"^build_emonet: frame_encoder is only used with video_input='frames' and a video branch; "
     r"received: mode='audio', video_input='frames'$"),
    (build_resnet20, {"image_size": 7},
     r"^build_resnet20: image_size must be an integer >= 8; received: 7$"),
    (build_resnet20, {"width": 2.5},
     r"^build_resnet20: width must be an integer >= 1; received: 2\.5$"),
    (build_resnet, {"stack_sizes": (3, 3), "filters": (16,)},
     r"^build_resnet: filters must have one entry per stage \(2\); received: \(16,\)$"),
    (build_video_encoder, {"input_kind": "audio"},
     r"^build_video_encoder: input_kind must be one of frames, embeddings; received: 'audio'$"),
    (build_video_encoder, {"n_lstm": 0},
     r"^build_video_encoder: n_lstm must be an integer >= 1; received: 0$"),
    (build_video_encoder, {"frame_encoder": "fe"},
     r"^build_video_encoder: frame_encoder must be a keras.Model or None; received: str$"),
    (build_audio_encoder, {"units": (256, 0)},
     r"^build_audio_encoder: units must be a non-empty sequence of positive integers; received: \(256, 0\)$"),
    (build_audio_encoder, {"dropout": -0.1},
     r"^build_audio_encoder: dropout must be a number in \[0, 1\); received: -0\.1$"),
    (model_inputs, {"mode": "both"},
     r"^model_inputs: mode must be one of fusion, video, audio; received: 'both'$"),
])
def test_bad_arguments(build, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build(**kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"image_size": 64},
     r"^build_video_encoder: frame_encoder input must be \(64, 64, 3\) \(image_size=64\); received: \(32, 32, 3\)$"),
    ({"image_size": SIZE, "embedding_dim": 32},
     r"^build_video_encoder: frame_encoder output must be \(32,\) \(embedding_dim=32\); received: \(64,\)$"),
    ({"input_kind": "embeddings"},
     r"^build_video_encoder: frame_encoder is only used with input_kind='frames'"),
])
def test_video_encoder_rejects_mismatched_frame_encoder(kwargs, match):
    encoder = build_resnet20(image_size=SIZE)
    with pytest.raises(ConfigError, match=match):
        build_video_encoder(frame_encoder=encoder, **kwargs)


def test_frame_classifier_rejects_non_model():
    with pytest.raises(ConfigError, match=r"^build_frame_classifier: frame_encoder must be a keras.Model; received: str$"):
        build_frame_classifier("resnet")


# --------------------------------------------------------------------------- frames form <-> embeddings form
def _perturbed(model, seed, frames):
    """``model`` with every weight moved by N(0, 0.05), so BN statistics, LSTMs and head are all non-trivial,
    and the frame encoder's projection rescaled to unit-variance embeddings of ``frames`` (N, S, S, 3), so the
    LSTMs are not saturated by an untrained encoder's large constant output."""
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(scale=0.05, size=w.shape).astype(w.dtype) for w in model.get_weights()])
    encoder = model.get_layer("video_encoder").get_layer("video_encoder_frames").layer
    emb = encoder.predict(frames, verbose=0)
    projection = encoder.get_layer("frame_encoder_projection")
    kernel, bias = projection.get_weights()
    mean, std = emb.mean(axis=0), emb.std(axis=0) + 1e-6
    projection.set_weights([kernel / std, (bias - mean) / std])
    return model


def test_split_video_model_gives_the_same_probabilities_as_the_frames_model(tmp_path):
    from emonet.features.frames import prepare_faces
    from emonet.inference.trained_run import embed_faces
    crops = np.random.default_rng(2).integers(0, 256, (4 * T, SIZE, SIZE, 3), dtype=np.uint8)
    prepared = np.asarray(prepare_faces(crops, SIZE))
    mask = _inputs(("frame_mask",), batch=4)["frame_mask"]
    mask[3] = 0  # a clip without frames
    x = {"frames": prepared.reshape(4, T, SIZE, SIZE, 3), "frame_mask": mask}
    frames_model = _perturbed(_small_emonet("video", "frames", lstm_units=8), 4, prepared)
    encoder, clip_model = split_video_model(frames_model)
    encoder.save(tmp_path / "frame_encoder.keras")
    clip_model.save(tmp_path / "model.keras")
    encoder, clip_model = load_model(tmp_path / "frame_encoder.keras"), load_model(tmp_path / "model.keras")
    assert [t.name for t in clip_model.inputs] == ["frame_embeddings", "frame_mask"]
    assert encoder.name == "frame_encoder" and encoder.output_shape == (None, E)

    expected = frames_model.predict(x, verbose=0)
    emb = embed_faces(encoder, crops, SIZE).reshape(4, T, E) * mask[..., None]  # the inference path
    got = clip_model.predict({"frame_embeddings": emb, "frame_mask": mask}, verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    other = dict(x, frames=x["frames"][:, ::-1, :, ::-1])  # other frames, same masks
    assert np.abs(frames_model.predict(other, verbose=0) - expected)[:3].max() > 1e-3  # the frames matter

    joined = join_video_model(encoder, clip_model)
    assert [t.name for t in joined.inputs] == ["frames", "frame_mask"]
    np.testing.assert_allclose(joined.predict(x, verbose=0), expected, atol=1e-5)


def test_split_and_join_refuse_the_wrong_form():
    with pytest.raises(ConfigError, match=r"^split_video_model: expected a video model with inputs"):
        split_video_model(_small_emonet("video", "embeddings"))
    with pytest.raises(ConfigError, match=r"^join_video_model: expected a video model with inputs"):
        join_video_model(build_resnet20(image_size=SIZE, embedding_dim=E), _small_emonet("fusion", "embeddings"))
