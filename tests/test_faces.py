"""Face detection, tracking and cropping on real and generated frames."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from preprocessing import faces, media
from preprocessing.errors import ConfigError

from conftest import CREMA_D, shared


class ScriptedDetector:
    """Test double for an external face model: returns preset boxes by frame brightness marker."""

    def __init__(self, boxes):
        self.boxes = boxes  # frame index -> box or None
        self.calls = []

    def detect(self, image):
        index = int(image[0, 0, 0])  # the test writes the frame index into pixel (0, 0)
        self.calls.append(index)
        return self.boxes.get(index)


def indexed_frames(n, h=120, w=160):
    frames = np.full((n, h, w, 3), 90, np.uint8)
    frames[:, 0, 0, 0] = np.arange(n)
    return frames


@pytest.mark.parametrize("clip", sorted(CREMA_D.glob("*.flv")))
def test_haar_finds_the_face_in_crema_d(clip):
    frames = media.decode_frames(clip, max_frames=20)
    result = faces.crop_faces(frames, crop_size=48)
    assert result.crops.shape == (len(frames), 48, 48, 3) and result.crops.dtype == np.uint8
    assert result.found.mean() > 0.8
    box = np.nanmedian(result.boxes, axis=0)
    h, w = frames.shape[1:3]
    assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h
    assert 0.15 * h < box[3] - box[1] < 0.9 * h


def test_no_face_gives_centre_crops_and_found_false(clip_factory):
    frames = media.decode_frames(clip_factory("pattern.mp4", seconds=1.0, size="160x120"))
    result = faces.crop_faces(frames, crop_size=32)
    assert not result.found.any() and np.isnan(result.boxes).all()
    assert result.crops.shape == (len(frames), 32, 32, 3)


def test_tracking_interpolates_between_detections_and_holds_then_gives_up():
    n = 60
    boxes = {0: np.array([10, 10, 50, 50], np.float32), 10: np.array([30, 10, 70, 50], np.float32)}
    detector = ScriptedDetector(boxes)
    tracked, found = faces.track_faces(indexed_frames(n), detector=detector, detect_every=5, max_gap=8, smooth=1)
    assert detector.calls == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 59]
    np.testing.assert_allclose(tracked[5], [20, 10, 60, 50])          # halfway between the two detections
    assert found[:19].all() and not found[19:].any()                   # held for 8 frames after the last one
    assert np.isnan(tracked[30]).all()


def test_smoothing_averages_jitter():
    boxes = {i: np.array([10 + (4 if i % 2 else 0), 10, 50, 50], np.float32) for i in range(20)}
    tracked, found = faces.track_faces(indexed_frames(20), detector=ScriptedDetector(boxes), detect_every=1,
                                       smooth=5)
    assert found.all() and np.ptp(tracked[3:-3, 0]) < 2.0


def test_crop_near_the_border_is_padded_not_shifted():
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[:40, :40] = 200
    crop = faces.square_crop(frame, np.array([0, 0, 40, 40], np.float32), crop_size=20, margin=0.25)
    assert crop.shape == (20, 20, 3)
    assert crop[10, 10, 0] == 200  # the face stays centred: edge padding fills the outside


def test_empty_clip():
    result = faces.crop_faces(np.zeros((0, 50, 60, 3), np.uint8), crop_size=16)
    assert result.crops.shape == (0, 16, 16, 3) and result.found.shape == (0,) and result.boxes.shape == (0, 4)


@pytest.mark.parametrize("frames,kwargs,match", [
    (np.zeros((3, 10, 10), np.uint8), {}, "uint8 of shape"),
    (np.zeros((3, 10, 10, 3), np.float32), {}, "uint8 of shape"),
    (np.zeros((3, 10, 10, 3), np.uint8), {"crop_size": 4}, "crop_size must be >= 8"),
    (np.zeros((3, 10, 10, 3), np.uint8), {"detector": "dlib"}, "must be one of haar, mtcnn"),
    (np.zeros((3, 10, 10, 3), np.uint8), {"detector": object()}, "must be a name or have a detect"),
    (np.zeros((3, 10, 10, 3), np.uint8), {"margin": -0.1}, "margin must be >= 0"),
    (np.zeros((3, 0, 10, 3), np.uint8), {}, "height and width must be >= 1"),
    (np.zeros((3, 10, 10, 3), np.uint8), {"detect_every": 0}, "detect_every >= 1"),
])
def test_bad_arguments(frames, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        faces.crop_faces(frames, **kwargs)


@pytest.mark.parametrize("image", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                   np.zeros((0, 10, 3), np.uint8)])
def test_haar_detect_rejects_bad_images(image):
    with pytest.raises(ConfigError, match="haar.detect: image"):
        faces.make_detector("haar").detect(image)


def test_importing_faces_does_not_import_tensorflow():
    code = "import sys, preprocessing.faces; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1]).returncode == 0


def test_mtcnn_on_one_real_frame():
    pytest.importorskip("mtcnn")
    frame = media.decode_frames(CREMA_D / "1001_DFA_NEU_XX.flv", max_frames=1)[0]
    box = faces.make_detector("mtcnn").detect(frame)
    h, w = frame.shape[:2]
    assert box is not None and box.dtype == np.float32
    assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h
    assert 0.15 * h < box[3] - box[1] < 0.9 * h


def test_real_portrait_clip_has_faces():
    clip = shared("real", "selfrecorded", "happy.mp4")
    frames = media.decode_frames(clip, max_frames=30)
    assert faces.crop_faces(frames).found.mean() > 0.5


class CountingHaar(faces.HaarDetector):
    """The real Haar detector, counting its full and guided searches."""

    def __init__(self):
        super().__init__()
        self.full, self.near = [], []

    def detect(self, image):
        self.full.append(image)
        return super().detect(image)

    def detect_near(self, image, box):
        self.near.append(image)
        return super().detect_near(image, box)


def test_guided_tracking_stays_on_the_face_of_a_real_clip():
    frames = media.decode_frames(CREMA_D / "1001_DFA_HAP_XX.flv", max_side=320)
    detector = CountingHaar()
    boxes, found = faces.track_faces(frames, detector=detector, detect_every=5)
    assert len(detector.full) == 1 and len(detector.near) >= len(frames) // 5 - 1  # one full search, then guided
    reference = faces.make_detector("haar")
    checked = [(i, reference.detect(frames[i])) for i in range(0, len(frames), 3)]
    checked = [(i, box) for i, box in checked if box is not None]
    assert len(checked) > 10 and all(found[i] for i, _ in checked)
    overlaps = [faces.box_iou(boxes[i], box) for i, box in checked]
    assert np.median(overlaps) > 0.8 and min(overlaps) > 0.6


def test_guided_box_matches_a_full_detection_in_size():
    frames = media.decode_frames(CREMA_D / "1001_DFA_NEU_XX.flv", max_side=320, max_frames=10)
    detector = faces.make_detector("haar")
    full = detector.detect(frames[5])
    near = detector.detect_near(frames[5], detector.detect(frames[0]))
    assert near is not None and near.dtype == np.float32 and faces.box_iou(near, full) > 0.75
    assert 0.9 < (near[2] - near[0]) / (full[2] - full[0]) < 1.1


def test_tracking_redetects_after_a_cut_and_does_not_blend_the_faces():
    first = media.decode_frames(CREMA_D / "1001_DFA_ANG_XX.flv", max_side=320, max_frames=30)
    second = media.decode_frames(CREMA_D / "1001_DFA_SAD_XX.flv", max_side=320, max_frames=30)
    second = np.roll(second, 110, axis=2)  # the same shot, the face 110 px further right
    frames = np.concatenate([first, second[:, :, :]])
    cut = len(first)
    detector = CountingHaar()
    boxes, found = faces.track_faces(frames, detector=detector, detect_every=5)
    assert found.all() and len(detector.full) >= 2  # the guided search missed after the cut: full search again
    reference = faces.make_detector("haar")
    before, after = reference.detect(first[-1]), reference.detect(second[10])
    assert faces.box_iou(before, after) < 0.1
    assert all(faces.box_iou(boxes[i], before) > 0.6 for i in range(cut - 8, cut - 2))
    assert all(faces.box_iou(boxes[i], after) > 0.6 for i in range(cut + 5, len(frames)))
    # every frame is on one face or the other, none on a box sliding between them
    assert all(max(faces.box_iou(b, before), faces.box_iou(b, after)) > 0.5 for b in boxes[cut - 5:cut + 5])


def test_detectors_without_guided_search_still_track():
    boxes = {i: np.array([10, 10, 50, 50], np.float32) for i in range(0, 30, 5)}
    detector = ScriptedDetector(boxes)
    tracked, found = faces.track_faces(indexed_frames(30), detector=detector, detect_every=5)
    assert found.all() and detector.calls == [0, 5, 10, 15, 20, 25, 29]
