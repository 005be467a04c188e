"""One ffmpeg process per clip: the same frames and samples as the two separate decodes."""

import numpy as np
import pytest

from preprocessing import av_decode, media
from preprocessing.errors import MediaError
from preprocessing.extraction import ExtractParams, extract_clip

from conftest import CREMA_D, shared

pytestmark = pytest.mark.skipif(not av_decode.SINGLE_PROCESS, reason="no extra pipe for ffmpeg on this platform")


@pytest.mark.parametrize("name", ["1001_DFA_ANG_XX.flv", "1001_DFA_SAD_XX.flv"])
def test_one_process_gives_what_two_processes_give_on_a_real_clip(name):
    clip = CREMA_D / name
    one = av_decode.decode_clip(clip, max_side=320, max_frames=40)
    two = av_decode.decode_clip(clip, max_side=320, max_frames=40, single_process=False)
    assert (one.processes, two.processes) == (1, 2)
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
def test_a_single_stream_takes_one_process(clip_factory, audio, video):
    clip = clip_factory(f"single_{audio}_{video}.mp4", seconds=1.0, audio=audio, video=video)
    decoded = av_decode.decode_clip(clip)
    assert decoded.processes == 1
    assert (decoded.frames is not None) == video and (decoded.audio is not None) == audio


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
