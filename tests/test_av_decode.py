"""One ffmpeg process per clip, describing the clip itself: the same frames, samples and MediaInfo as a
probe followed by two separate decodes, whichever ffmpeg build runs."""

import subprocess

import numpy as np
import pytest

from preprocessing import av_decode, av_session, media
from preprocessing.errors import MediaError
from preprocessing.extraction import ExtractParams, extract_clip

from conftest import CREMA_D, shared

pytestmark = pytest.mark.skipif(not av_decode.SINGLE_PROCESS, reason="no extra pipe for ffmpeg on this platform")


@pytest.mark.parametrize("name", ["1001_DFA_ANG_XX.flv", "1001_DFA_SAD_XX.flv"])
def test_one_process_gives_what_two_processes_give_on_a_real_clip(name):
    clip = CREMA_D / name
    one = av_decode.decode_clip(clip, max_side=320, max_frames=40)
    two = av_decode.decode_clip(clip, max_side=320, max_frames=40, single_process=False)
    assert (one.processes, two.processes) == (1, 3)  # no probe / a probe and one decode per stream
    assert one.info == two.info == media.probe(clip)
    assert one.frames.shape == (40, 240, 320, 3) and one.audio.dtype == np.float32
    assert np.array_equal(one.frames, two.frames) and np.array_equal(one.index, two.index)
    assert np.array_equal(one.audio, two.audio)
    assert np.array_equal(one.audio, media.decode_audio(clip))
    assert abs(len(one.audio) / 16000 - one.info.duration) < 0.1


def test_one_process_on_a_1080p_clip_with_audio():
    clip = shared("real", "mead", "disgusted.mp4")
    one = av_decode.decode_clip(clip, max_side=160, max_frames=10)
    two = av_decode.decode_clip(clip, max_side=160, max_frames=10, single_process=False)
    assert np.array_equal(one.frames, two.frames) and np.array_equal(one.audio, two.audio)


@pytest.mark.parametrize("audio,video", [(False, True), (True, False)])
def test_a_single_stream_takes_one_decode_after_the_description(clip_factory, audio, video):
    clip = clip_factory(f"single_{audio}_{video}.mp4", seconds=1.0, audio=audio, video=video)
    decoded = av_decode.decode_clip(clip)
    assert decoded.processes == 2  # the described run stops at the missing stream; one decode follows
    assert (decoded.frames is not None) == video and (decoded.audio is not None) == audio
    assert decoded.info == media.probe(clip)
    two = av_decode.decode_clip(clip, single_process=False)
    assert (decoded.frames is None or np.array_equal(decoded.frames, two.frames))
    assert (decoded.audio is None or np.array_equal(decoded.audio, two.audio))


def test_extract_clip_stores_the_single_decode(clip_factory):
    clip = clip_factory("both.mp4", seconds=1.5, size="160x120")
    arrays, attrs, notes = extract_clip(clip, ExtractParams())
    one = av_decode.decode_clip(clip, max_side=ExtractParams().analysis_side, max_frames=ExtractParams().max_frames)
    assert np.array_equal(arrays["frame_index"], one.index) and attrs["has_audio"] and attrs["has_video"]
    assert not [note for note in notes if "cut short" in note or "decoder errors" in note]


def test_a_broken_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(MediaError) as info:
        av_decode.decode_clip(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("single_process", [True, False])
def test_a_real_clip_cut_short_is_kept_and_said_whatever_the_process_layout(single_process):
    clip = shared("real", "mead", "sad.mp4")  # cut short: 111 of 157 frames; one ffmpeg reports nothing
    notes = []
    decoded = av_decode.decode_clip(clip, notes=notes, single_process=single_process)
    assert len(decoded.frames) == 111
    assert any(note.startswith(f"cut short: {clip}: video 111 of 157 frames") for note in notes)
    assert any(note.startswith(f"cut short: {clip}: audio") for note in notes)


def test_each_build_reads_its_filter_from_a_pipe(which_ffmpeg):
    assert av_session.filter_option(which_ffmpeg) in ("-/filter:v", "-filter_script:v")
    clip = CREMA_D / "1001_DFA_HAP_XX.flv"  # FLV, VP6 video, MP3 audio
    one = av_decode.decode_clip(clip, max_side=320, max_frames=30)
    two = av_decode.decode_clip(clip, max_side=320, max_frames=30, single_process=False)
    assert one.processes == 1 and one.info == two.info and one.info.video_codec == "vp6f"
    assert np.array_equal(one.frames, two.frames) and np.array_equal(one.audio, two.audio)


@pytest.fixture(scope="module")
def rotated(clip_factory, tmp_path_factory):
    """A 320x240 clip with audio shown turned by 90 degrees (display matrix; made by the wheel's ffmpeg 7)."""
    source = clip_factory("rot_av_src.mp4", seconds=1.0, size="320x240")
    path = tmp_path_factory.mktemp("rot") / "rotated_av.mp4"
    subprocess.run([media.ffmpeg_binary(), "-v", "error", "-display_rotation", "90", "-i", str(source),
                    "-c", "copy", str(path)], check=True)
    return path


def test_a_portrait_clip_is_described_and_rotated(rotated, which_ffmpeg):
    one = av_decode.decode_clip(rotated, max_side=160)
    assert one.processes == 1 and one.info.rotation in (90, 270) and one.info == media.probe(rotated)
    assert one.frames.shape[1:] == (160, 120, 3)
    two = av_decode.decode_clip(rotated, max_side=160, single_process=False)
    assert np.array_equal(one.frames, two.frames) and np.array_equal(one.audio, two.audio)


def test_a_cut_file_gets_the_same_notes_as_with_a_probe(clip_factory, tmp_path, which_ffmpeg):
    data = clip_factory("to_cut_av.mp4", seconds=4.0, size="160x120",
                        extra=("-movflags", "+faststart")).read_bytes()
    path = tmp_path / "cut60_av.mp4"
    path.write_bytes(data[:len(data) * 6 // 10])
    described, probed = [], []
    one = av_decode.decode_clip(path, notes=described)
    two = av_decode.decode_clip(path, notes=probed, info=media.probe(path))  # one process told what to decode
    assert (one.processes, two.processes) == (1, 1) and len(one.frames) == len(two.frames) < 90
    assert described and all(note.startswith(f"cut short: {path}: ") for note in described)
    assert _parts(described) == _parts(probed)


def _parts(notes):
    """Each note as (what was decoded, set of ffmpeg's complaints): ffmpeg 7's threads may order them differently."""
    return [(note.split(" (")[0], set(note.split(" (", 1)[1].rstrip(")").split(" | "))) for note in notes]


def test_an_audio_file_is_probed_then_decoded(tmp_path):
    wav = tmp_path / "speech.wav"
    subprocess.run([media.ffmpeg_binary(), "-v", "error", "-f", "lavfi", "-i", "sine=frequency=300:duration=1",
                    str(wav)], check=True)
    decoded = av_decode.decode_clip(wav)
    assert decoded.processes == 2 and decoded.frames is None and len(decoded.audio) == 16000


def test_a_directory_or_empty_file_is_refused_before_ffmpeg(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path, match in ((tmp_path, "is a directory"), (empty, "empty file")):
        with pytest.raises(MediaError, match=match):
            av_decode.decode_clip(path)
