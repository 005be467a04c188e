"""Frame-sequence streams for end-to-end training (emonet.features.datasets.sequence_dataset) on a tiny written store."""

import numpy as np
import pytest

from emonet.features.datasets import sequence_dataset
from emonet.features.frames import TARGET_MEAN, prepare_faces, sample_indices
from emonet.features.tables import SplitTable
from preprocessing.store import ClipFeatures, FeatureStore, clip_key
from preprocessing.store_writer import StoreWriter

CROP, SIZE, T = 16, 12, 5  # stored crop side, frame side fed to the CNN (px), frames per clip


def _faces(seed, n):
    """``n`` different random face crops (n, CROP, CROP, 3) uint8."""
    return np.random.default_rng(seed).integers(0, 256, (n, CROP, CROP, 3), dtype=np.uint8)


#: clip name -> stored face crops: long (10 frames), short (3 of T), empty, one image repeated 8 times
CLIPS = {
    "a_long": _faces(1, 10),
    "b_short": _faces(2, 3),
    "c_empty": np.zeros((0, CROP, CROP, 3), np.uint8),
    "d_still": np.repeat(_faces(3, 1), 8, axis=0),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Path and training SplitTable of a store holding CLIPS (keys sort in CLIPS order)."""
    path = tmp_path_factory.mktemp("sequences") / "s.h5"
    with StoreWriter(path, params={"crop_size": CROP}, versions={}, audio_feature_names=["f0"]) as writer:
        for i, (name, faces) in enumerate(CLIPS.items()):
            writer.write_clip(ClipFeatures(
                key=clip_key(f"Train_AFEW/Happy/{name}.mp4"),
                arrays={"faces": faces, "face_found": np.ones(len(faces), bool),
                        "audio_functionals": np.zeros(1, np.float32)},
                attrs={"label": "Happy", "label_index": i, "split": "train", "n_frames": len(faces),
                       "has_audio": False, "audio_silent": True, "speaker": "", "subject": "", "source": name}))
    with FeatureStore(path) as opened:
        table = SplitTable(opened, "train")
    assert [k.split("|")[-1] for k in table.keys] == [f"{name}.mp4" for name in CLIPS]
    return path, table


def _clips(path, table, **kwargs):
    """One pass of a sequence_dataset, unbatched: frames (n, T, S, S, 3), masks (n, T), labels (n,)."""
    kwargs = {"n_frames": T, "image_size": SIZE, "batch_size": 3, **kwargs}
    batches = list(sequence_dataset(path, table, **kwargs).as_numpy_iterator())
    frames = np.concatenate([x["frames"] for x, _ in batches])
    masks = np.concatenate([x["frame_mask"] for x, _ in batches])
    return frames, masks, np.concatenate([y for _, y in batches])


def _prepared(name):
    return np.asarray(prepare_faces(CLIPS[name], SIZE))


def test_batches_have_the_model_input_shapes(store):
    path, table = store
    batches = list(sequence_dataset(path, table, n_frames=T, image_size=SIZE, batch_size=3, augment=True,
                                    seed=0).as_numpy_iterator())
    assert [len(y) for _, y in batches] == [3, 1]
    x, y = batches[0]
    assert set(x) == {"frames", "frame_mask"}
    assert x["frames"].shape == (3, T, SIZE, SIZE, 3) and x["frames"].dtype == np.float32
    assert x["frame_mask"].shape == (3, T) and x["frame_mask"].dtype == np.float32 and y.dtype == np.int64
    assert 0 <= x["frames"].min() and x["frames"].max() <= 255


def test_validation_is_centred_ordered_and_masks_padding(store):
    path, table = store
    frames, masks, labels = _clips(path, table, training=False, augment=True)  # never augmented
    np.testing.assert_array_equal(labels, [0, 1, 2, 3])
    centred, _ = sample_indices(10, T)
    np.testing.assert_allclose(frames[0], _prepared("a_long")[centred], atol=1e-4)
    np.testing.assert_array_equal(masks, [[1] * 5, [1, 1, 1, 0, 0], [0] * 5, [1] * 5])
    np.testing.assert_allclose(frames[1, :3], _prepared("b_short"), atol=1e-4)
    assert (frames[1, 3:] == TARGET_MEAN).all() and (frames[2] == TARGET_MEAN).all()


def test_training_draws_one_frame_per_segment_and_new_offsets_every_epoch(store):
    path, table = store
    dataset = sequence_dataset(path, table, n_frames=T, image_size=SIZE, batch_size=4, augment=False, seed=3)
    candidates = _prepared("a_long")
    picks = []
    for _ in range(4):  # epochs
        x, y = next(iter(dataset))
        row = int(np.flatnonzero(y.numpy() == 0)[0])  # clips are shuffled
        frames = x["frames"].numpy()[row]
        index = [int(np.argmin(np.abs(candidates - f).reshape(10, -1).max(axis=1))) for f in frames]
        np.testing.assert_allclose(frames, candidates[index], atol=1e-4)  # real stored frames
        assert all(2 * s <= i < 2 * s + 2 for s, i in enumerate(index))  # one per segment of 2 frames
        picks.append(tuple(index))
    assert len(set(picks)) > 1


def test_augmentation_is_one_transform_per_clip(store):
    path, table = store
    plain, _, _ = _clips(path, table, augment=False, seed=0, training=False)
    first, masks, labels = _clips(path, table, augment=True, seed=0)
    second, _, labels2 = _clips(path, table, augment=True, seed=0, epoch=1)
    still = first[int(np.flatnonzero(labels == 3)[0])]  # d_still: the same image in every frame
    for frame in still[1:]:
        np.testing.assert_allclose(frame, still[0], atol=1e-4)
    assert np.abs(still[0] - plain[3, 0]).max() > 10  # but transformed
    assert np.abs(second[int(np.flatnonzero(labels2 == 3)[0])][0] - still[0]).max() > 10  # anew every epoch
    short = first[int(np.flatnonzero(labels == 1)[0])]
    assert (short[3:] == TARGET_MEAN).all() and masks[labels == 1].sum() == 3  # padding stays blank


def test_a_resumed_stream_continues_where_it_stopped(store):
    path, table = store
    dataset = sequence_dataset(path, table, n_frames=T, image_size=SIZE, batch_size=4, augment=True, seed=5)
    next(iter(dataset))  # epoch 0
    epoch1 = next(iter(dataset))
    resumed = next(iter(sequence_dataset(path, table, n_frames=T, image_size=SIZE, batch_size=4, augment=True,
                                         seed=5, epoch=1)))
    np.testing.assert_array_equal(epoch1[1], resumed[1])
    np.testing.assert_allclose(epoch1[0]["frames"], resumed[0]["frames"])


@pytest.fixture(scope="module")
def still_store(tmp_path_factory):
    """A store of six one-frame clips (still images) with soft labels, and its training table."""
    path = tmp_path_factory.mktemp("stills") / "s.h5"
    with StoreWriter(path, params={"crop_size": CROP}, versions={}, audio_feature_names=["f0"]) as writer:
        for i in range(6):
            votes = np.zeros(7, np.float32)
            votes[i % 7], votes[(i + 1) % 7] = 0.75, 0.25
            writer.write_clip(ClipFeatures(
                key=clip_key(f"FER2013Train/face{i}.png"),
                arrays={"faces": np.full((1, CROP, CROP, 3), 40 * i, np.uint8), "face_found": np.ones(1, bool),
                        "audio_functionals": np.zeros(1, np.float32)},
                attrs={"label": None, "label_index": i % 7, "split": "train", "n_frames": 1, "has_audio": False,
                       "audio_silent": True, "speaker": "", "subject": "", "source": f"face{i}.png",
                       "soft_label": votes}))
    with FeatureStore(path) as opened:
        table = SplitTable(opened, "train")
    assert table.soft_labels is not None
    return path, table


def test_still_images_stream_every_face_once_per_epoch_reshuffled_with_their_votes(still_store):
    from emonet.features.datasets import frame_dataset
    path, table = still_store
    dataset = frame_dataset(path, table, frames_per_clip=1, image_size=SIZE, batch_size=4, augment=False, seed=0,
                            soft_labels=True)
    epochs = []
    for _ in range(2):
        batches = list(dataset.as_numpy_iterator())
        frames = np.concatenate([x for x, _ in batches])
        votes = np.concatenate([y for _, y in batches])
        assert frames.shape == (6, SIZE, SIZE, 3) and votes.shape == (6, 7)
        order = [int(np.argmax(v)) for v in votes]        # face i carries 0.75 on class i
        assert sorted(order) == list(range(6))
        np.testing.assert_allclose(votes.sum(axis=1), 1.0)
        epochs.append(order)
    assert epochs[0] != epochs[1]  # a new order every epoch


def test_a_mixed_stream_keeps_every_still_once_per_pass_and_adds_one_hot_clip_frames(still_store, store):
    from emonet.features.datasets import frame_dataset, mix_frame_datasets
    still_path, still_table = still_store
    clip_path, clip_table = store
    options = dict(image_size=SIZE, batch_size=2, augment=False, seed=0)
    main = frame_dataset(still_path, still_table, frames_per_clip=1, soft_labels=True, **options)
    extra = frame_dataset(clip_path, clip_table, frames_per_clip=4, **options)
    mixed = mix_frame_datasets(main, extra, share=0.5, seed=3, n_classes=7, soft_labels=True)
    for _ in range(2):
        batches = list(mixed.as_numpy_iterator())
        labels = np.concatenate([y for _, y in batches])
        assert labels.shape[1] == 7 and np.allclose(labels.sum(axis=1), 1.0)
        from_stills = labels[labels.max(axis=1) == 0.75]   # the stills carry 0.75 / 0.25 votes
        from_clips = labels[labels.max(axis=1) == 1.0]     # the clips' labels became one-hot rows
        assert sorted(np.argmax(from_stills, axis=1)) == list(range(6))  # every still exactly once
        assert len(from_stills) + len(from_clips) == len(labels) and len(from_clips) > 0
        assert set(np.argmax(from_clips, axis=1)) <= {0, 1, 3}  # clip c_empty (label 2) has no frame


def test_frames_can_be_drawn_from_the_second_half_of_each_clip_only(store):
    from emonet.features.datasets import frame_dataset
    path, table = store
    long_only = table.subset(np.array([k.endswith("a_long.mp4") for k in table.keys]))
    dataset = frame_dataset(path, long_only, frames_per_clip=40, image_size=SIZE, batch_size=40, augment=False,
                            seed=0, first_fraction=0.5)
    frames = np.concatenate([x for x, _ in dataset.as_numpy_iterator()])
    prepared = _prepared("a_long")
    drawn = {int(np.argmin([np.abs(f - p).sum() for p in prepared])) for f in frames}
    assert drawn == {5, 6, 7, 8, 9}  # 40 draws over the last 5 of 10 frames, never the first half
