"""Per-window timelines, subtitles and the annotated video, on real clips with the shipped model.

The main clip is 60 s made at test time from two bundled CREMA-D clips: the HAP clip
looped for 30 s, then the ANG clip for 30 s (320x240, 25 fps, AAC audio); the shipped
model calls the first Happy and the second Angry.
"""

import csv
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from emonet.cli import main
from emonet.inference.annotate import annotate_video
from emonet.inference.subtitles import format_subtitles
from emonet.inference.timeline import predict_timeline
from preprocessing.constants import CLASSES
from preprocessing.media import decode_audio, decode_frames, ffmpeg_binary, iter_audio, iter_frames, probe

from conftest import CREMA_D

HAPPY, ANGRY = CREMA_D / "1001_DFA_HAP_XX.flv", CREMA_D / "1001_DFA_ANG_XX.flv"
SIZE = (320, 240)


def _ffmpeg(*args):
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", *map(str, args)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def mixed_clip(tmp_path_factory):
    """60 s: the HAP clip looped for 30 s, then the ANG clip for 30 s (mp4, H.264 + AAC)."""
    folder = tmp_path_factory.mktemp("timeline")
    parts = []
    for source in (HAPPY, ANGRY):  # FLV cannot be looped by ffmpeg's demuxer: an mp4 copy first
        parts.append(folder / f"{source.stem}.mp4")
        _ffmpeg("-i", source, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", parts[-1])
    out = folder / "happy_then_angry.mp4"
    chains = ";".join(f"[{i}:v]trim=0:30,setpts=PTS-STARTPTS,scale={SIZE[0]}:{SIZE[1]},fps=25[v{i}];"
                      f"[{i}:a]atrim=0:30,asetpts=PTS-STARTPTS[a{i}]" for i in range(2))
    _ffmpeg("-stream_loop", "-1", "-i", parts[0], "-stream_loop", "-1", "-i", parts[1],
            "-filter_complex", f"{chains};[v0][a0][v1][a1]concat=n=2:v=1:a=1[v][a]", "-map", "[v]", "-map", "[a]",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", out)
    return out


@pytest.fixture(scope="module")
def model():
    import emonet
    return emonet.load_model()


@pytest.fixture(scope="module")
def timeline(mixed_clip, model):
    return predict_timeline(mixed_clip, model, window=2.0, hop=1.0, keep_track=True)


def _majority(rows):
    labels = [r["emotion"] for r in rows]
    return max(set(labels), key=labels.count)


@pytest.mark.slow
def test_the_timeline_follows_the_change_of_emotion_halfway(timeline):
    first = [r for r in timeline.rows if r["end"] <= 30]
    second = [r for r in timeline.rows if r["start"] >= 30]
    assert len(first) >= 25 and len(second) >= 25
    assert _majority(first) == "Happy" and _majority(second) == "Angry"


@pytest.mark.slow
def test_windows_step_by_the_hop_and_boxes_lie_inside_the_frame(timeline):
    rows = timeline.rows
    assert 59.5 <= timeline.duration <= 60.5 and len(rows) == 59  # [0, 2) ... [58, 60)
    assert [r["start"] for r in rows] == [float(k) for k in range(59)]
    assert all(r["end"] - r["start"] == pytest.approx(2.0) for r in rows)
    for r in rows:
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert r["emotion"] == max(CLASSES, key=r["probabilities"].get)
        assert 0.9 <= r["face_rate"] <= 1.0  # a frontal face in every frame
        assert 0 <= r["x"] and 0 <= r["y"] and r["w"] > 20 and r["h"] > 20
        assert r["x"] + r["w"] <= SIZE[0] and r["y"] + r["h"] <= SIZE[1]
    weights = np.array([r["end"] - r["start"] for r in rows])
    mean = {c: float(weights @ [r["probabilities"][c] for r in rows] / weights.sum()) for c in CLASSES}
    assert timeline.probabilities == pytest.approx(mean) and timeline.emotion == max(mean, key=mean.get)


def test_a_window_samples_half_the_model_frame_budget():
    from emonet.inference.timeline import sampling_rate, window_frames
    assert window_frames(16) == 8 and window_frames(15) == 8 and window_frames(1) == 1
    assert sampling_rate(2.0, 16) == 4 and sampling_rate(1.0, 16) == 8 and sampling_rate(0.1, 16) == 25  # 25: the cap


class CountingDetector:
    """The real Haar detector, counting its full and guided searches."""

    def __init__(self):
        from preprocessing.faces import make_detector
        self.haar, self.full, self.near = make_detector("haar"), 0, 0

    def detect(self, image):
        self.full += 1
        return self.haar.detect(image)

    def detect_near(self, image, box):
        self.near += 1
        return self.haar.detect_near(image, box)


@pytest.mark.slow
def test_each_sampled_frame_is_searched_for_a_face_once_however_many_steps_hold_it(mixed_clip):
    """Steps overlap by their tracking context; the guided search follows the face across them."""
    from fractions import Fraction

    from emonet.inference.face_steps import FaceParams, detection_stride, step_frames, video_steps
    rate, counting = Fraction(4), CountingDetector()
    params = FaceParams(crop_size=64, margin=0.1, detect_every=5, detector="haar")
    steps = list(video_steps(mixed_clip, rate=rate, size=SIZE, scale=(1.0, 1.0), params=params, detector=counting))
    found = np.concatenate([f for _, _, f in steps])
    assert abs(len(found) - 240) <= 1 and found.all()  # 60 s at 4 fps, a face in every frame
    assert [len(f) for _, _, f in steps[:-1]] == [step_frames(rate, 5)] * (len(steps) - 1) and len(steps) >= 4
    probes = len(found) // detection_stride(rate, 5) + 1  # one detection every 2 s, and the last frame
    assert counting.full == 1 and counting.near <= probes  # one full search, at the first frame


@pytest.mark.slow
def test_a_clip_shorter_than_its_window_in_long_windows_has_one_row(model):
    """10 s windows sample 0.8 frames per second: the 1.9 s clip has 2 frames (shorter than the box smoothing)."""
    t = predict_timeline(HAPPY, model, window=10.0)
    assert len(t.rows) == 1 and t.rows[0]["face_rate"] == 1.0 and t.rows[0]["end"] == pytest.approx(1.9, abs=0.1)
    assert len(predict_timeline(HAPPY, model, window=10.0, keep_track=True).track_boxes) == 2


def _parse_subtitles(text, fmt):
    """(start s, end s, text) per cue; checks the layout of SubRip / WebVTT on the way."""
    blocks = text.strip("\n").split("\n\n")
    if fmt == "vtt":
        assert blocks.pop(0) == "WEBVTT"
    sep = "," if fmt == "srt" else r"\."
    stamp = rf"(\d\d):(\d\d):(\d\d){sep}(\d\d\d)"
    cues = []
    for number, block in enumerate(blocks, 1):
        lines = block.split("\n")
        if fmt == "srt":
            assert lines.pop(0) == str(number)
        match = re.fullmatch(rf"{stamp} --> {stamp}", lines[0])
        assert match, lines[0]
        h0, m0, s0, ms0, h1, m1, s1, ms1 = map(int, match.groups())
        assert len(lines) == 2 and re.fullmatch(r"(Angry|Disgust|Fear|Happy|Neutral|Sad|Surprise) [01]\.\d\d", lines[1])
        cues.append((h0 * 3600 + m0 * 60 + s0 + ms0 / 1000, h1 * 3600 + m1 * 60 + s1 + ms1 / 1000, lines[1]))
    return cues


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_parse_with_increasing_back_to_back_cues(timeline, fmt):
    cues = _parse_subtitles(format_subtitles(timeline.rows, fmt), fmt)
    assert len(cues) == len(timeline.rows)
    assert all(start < end for start, end, _ in cues)
    assert all(a[1] == b[0] for a, b in zip(cues, cues[1:]))  # each cue ends where the next starts
    assert cues[0][0] == 0 and cues[-1][1] == pytest.approx(timeline.rows[-1]["end"])
    assert cues[10][2].split()[0] == timeline.rows[10]["emotion"]


def _count_frames(path):
    return sum(len(block) for block in iter_frames(path, fps=None, max_side=64, block=256))


@pytest.mark.slow
def test_the_annotated_video_keeps_every_frame_and_the_audio(timeline, mixed_clip, tmp_path):
    out = annotate_video(mixed_clip, timeline, tmp_path / "annotated.mp4")
    assert abs(_count_frames(out) - _count_frames(mixed_clip)) <= 2
    info = probe(out)
    assert info.has_audio and (info.width, info.height) == SIZE
    assert [p.name for p in tmp_path.iterdir()] == ["annotated.mp4"]  # no temporary left behind


@pytest.mark.slow
def test_cli_writes_subtitles_and_an_annotated_video_of_a_29_97_fps_clip(tmp_path, capsys):
    srt, video = tmp_path / "happy.srt", tmp_path / "happy_annotated.mp4"
    assert main(["predict", str(HAPPY), "--window", "1", "--hop", "0.5", "-f", "srt", "-o", str(srt),
                 "--annotate", str(video), "--no-progress"]) == 0
    cues = _parse_subtitles(srt.read_text(), "srt")
    assert len(cues) == 3 and cues[-1][1] == pytest.approx(probe(HAPPY).duration, abs=0.05)  # 1.87 s
    assert abs(_count_frames(video) - _count_frames(HAPPY)) <= 2 and probe(video).has_audio
    assert "1001_DFA_HAP_XX.flv: " in capsys.readouterr().err  # the clip label


@pytest.mark.slow
def test_cli_rows_of_several_clips_carry_the_clip_name(tmp_path):
    out = tmp_path / "timeline.csv"
    assert main(["predict", str(HAPPY), str(ANGRY), "--window", "1", "-f", "csv", "-o", str(out),
                 "--no-progress"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert {r["clip"] for r in rows} == {HAPPY.name, ANGRY.name}
    assert list(rows[0]) == ["clip", "level", "start", "end", "emotion", *CLASSES, "x", "y", "w", "h", "face_rate"]
    happy = [r for r in rows if r["clip"] == HAPPY.name]
    assert [(r["level"], float(r["start"])) for r in happy] == [("window", 0.0), ("window", 1.0), ("clip", 0.0)]


@pytest.mark.slow
def test_csv_holds_the_clip_label_as_json_does(tmp_path, capsys):
    out = tmp_path / "timeline.csv"
    assert main(["predict", str(ANGRY), "--window", "1", "-f", "csv", "-o", str(out), "--no-progress"]) == 0
    clip_row = [r for r in csv.DictReader(out.open()) if r["level"] == "clip"]
    assert main(["predict", str(ANGRY), "--window", "1", "-f", "json", "--no-progress"]) == 0
    clip = json.loads(capsys.readouterr().out)[0]
    assert len(clip_row) == 1 and clip_row[0]["emotion"] == clip["emotion"]
    assert float(clip_row[0]["end"]) == pytest.approx(clip["duration"], abs=1e-3)
    assert all(float(clip_row[0][c]) == pytest.approx(clip[c], abs=1e-4) for c in CLASSES)
    assert float(clip_row[0]["face_rate"]) == pytest.approx(clip["face_rate"], abs=1e-4) and clip_row[0]["x"] == ""


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_of_several_clips_are_one_file_each_beside_the_output(fmt, tmp_path, capsys):
    out = tmp_path / f"subs.{fmt}"
    assert main(["predict", str(HAPPY), str(ANGRY), "--window", "1", "-f", fmt, "-o", str(out), "--no-progress"]) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(f"subs.{clip.stem}.{fmt}" for clip in (HAPPY, ANGRY))
    for clip in (HAPPY, ANGRY):
        cues = _parse_subtitles((tmp_path / f"subs.{clip.stem}.{fmt}").read_text(), fmt)
        duration = probe(clip).duration  # 1.87 and 2.24 s: two windows, a tail shorter than half a hop dropped
        assert len(cues) == 2 and duration - 0.5 < cues[-1][1] < duration + 0.05
    assert capsys.readouterr().out == ""


def test_subtitle_files_keep_clips_apart():
    from emonet.inference.subtitles import subtitle_paths
    paths = subtitle_paths(Path("out/subs.srt"), ["a.mp4", "talks/b.mp4", "c.mp4", "c.wav"])
    assert [p.as_posix() for p in paths] == ["out/subs.a.srt", "out/subs.talks_b.srt", "out/subs.c.mp4.srt",
                                             "out/subs.c.wav.srt"]


@pytest.mark.slow
def test_helper_processes_give_the_timeline_of_this_process(model, mixed_clip):
    """workers=0 (all here) and workers=1 (video and audio read by two helper processes): the same rows."""
    kwargs = dict(window=1.5, hop=0.5, keep_track=True, batch_size=7)
    here = predict_timeline(mixed_clip, model, workers=0, **kwargs)
    helped = predict_timeline(mixed_clip, model, workers=1, **kwargs)
    assert len(here.rows) == len(helped.rows) > 100
    assert here.rows == helped.rows and here.probabilities == helped.probabilities
    assert np.array_equal(here.track_boxes, helped.track_boxes, equal_nan=True)


def test_a_helper_stream_stopped_early_does_not_leak_into_the_next():
    from emonet.inference.window_streams import TimelineHelpers, audio_windows
    with TimelineHelpers() as helpers:
        first = helpers.audio.stream(ANGRY, window=0.5, hop=0.1, n_mfcc=13)
        next(first)  # read one message, then abandon the stream
        again = list(helpers.audio.stream(HAPPY, window=0.5, hop=0.25, n_mfcc=13))
    here = list(audio_windows(HAPPY, window=0.5, hop=0.25, n_mfcc=13))
    assert [seen for seen, _ in again] == [seen for seen, _ in here]
    assert [[k for k, *_ in ready] for _, ready in again] == [[k for k, *_ in ready] for _, ready in here]
    assert all(np.array_equal(a[1], b[1]) for (_, ra), (_, rb) in zip(again, here) for a, b in zip(ra, rb))


@pytest.mark.slow
def test_json_holds_the_clip_label_and_its_rule(capsys):
    assert main(["predict", str(ANGRY), "--window", "3", "-f", "json", "--no-progress"]) == 0
    clips = json.loads(capsys.readouterr().out)
    assert len(clips) == 1 and clips[0]["clip_rule"].startswith("mean of the window probabilities")
    assert clips[0]["clip"] == ANGRY.name and clips[0]["emotion"] == "Angry" and len(clips[0]["windows"]) == 1
    window = clips[0]["windows"][0]
    assert list(window) == ["start", "end", "emotion", *CLASSES, "x", "y", "w", "h", "face_rate"]  # the CSV's
    assert window["end"] == pytest.approx(2.24, abs=0.05)  # the clip is shorter than the window
    assert clips[0]["Angry"] == pytest.approx(window["Angry"])  # one window: the clip label is its own


BAD_ARGUMENTS = [
    (["--window", "0"], "--window must be > 0 seconds; received 0.0"),
    (["--window", "-2"], "--window must be > 0 seconds"),
    (["--window", "nan"], "--window must be a finite number of seconds"),
    (["--window", "2", "--hop", "3"], "--hop must be <= --window"),
    (["--window", "2", "--hop", "0"], "--hop must be > 0 seconds"),
    (["--hop", "1"], "--hop needs --window"),
    (["-f", "srt"], "--format srt needs --window"),
    (["--window", "2", "--annotate", "{tmp}/missing/out.mp4"], "folder {tmp}/missing does not exist"),
    (["--annotate", "{tmp}"], "--annotate output is a folder"),
]


@pytest.mark.parametrize("extra, message", BAD_ARGUMENTS)
def test_bad_values_fail_in_one_line_before_any_work(extra, message, tmp_path, capsys):
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    assert main(["predict", str(HAPPY), *extra, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.replace("{tmp}", str(tmp_path)) in err[0]


def _unwritable_folder(tmp_path):
    """A folder this user cannot write into: a read-only one, or for root (who writes anywhere) /proc/self."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    if not os.access(folder, os.W_OK):
        return folder
    if Path("/proc/self").is_dir() and not os.access("/proc/self", os.W_OK):
        return Path("/proc/self")
    pytest.skip("no unwritable folder for this user")


def test_an_unwritable_annotate_folder_fails_in_one_line(tmp_path, capsys):
    folder = _unwritable_folder(tmp_path)
    assert main(["predict", str(HAPPY), "--annotate", str(folder / "out.mp4"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"folder {folder} is not writable" in err[0]


@pytest.mark.parametrize("extra, message", [
    (["--annotate", "{tmp}/out.mp4"], "--annotate draws on a single input video; received 2 clips"),
    (["--window", "1", "-f", "vtt"], "--format vtt of 2 clips needs -o FILE (one subtitle file per clip"),
])
def test_one_clip_options_refuse_several_clips(extra, message, tmp_path, capsys):
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    assert main(["predict", str(HAPPY), str(ANGRY), *extra, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_annotate_refuses_to_overwrite_its_input_or_draw_on_audio(clip_factory, capsys):
    tone = clip_factory("tone.wav", video=False)
    for clip, target, message in [(HAPPY, HAPPY, "--annotate would overwrite the input video"),
                                  (tone, tone.with_name("tone.mp4"), "--annotate needs a video")]:
        assert main(["predict", str(clip), "--annotate", str(target), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]


@pytest.mark.parametrize("block", [1, 7, 1000])
def test_streamed_frames_and_samples_equal_the_whole_decode(block):
    frames = np.concatenate(list(iter_frames(HAPPY, max_side=160, block=block)))
    assert np.array_equal(frames, decode_frames(HAPPY, max_side=160))
    blocks = list(iter_audio(HAPPY, block_seconds=0.3))
    assert all(len(b) == 4800 for b in blocks[:-1])
    assert np.array_equal(np.concatenate(blocks), decode_audio(HAPPY))


def test_streaming_at_a_lower_rate_keeps_one_frame_per_period():
    n = sum(len(b) for b in iter_frames(HAPPY, fps="8", max_side=64, block=4))
    assert abs(n - 8 * probe(HAPPY).duration) <= 1
