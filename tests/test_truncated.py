"""Files cut short: kept for what decodes (with a note naming the file), rejected when too little is left.

The fixtures are real truncations of a 4 s testsrc + sine MP4 (``+faststart``: the index
comes first, as in a download cut short). The check runs with the wheel's ffmpeg and,
when one exists, with the system ffmpeg through ``EMONET_FFMPEG``: the decision must
not depend on how loudly a build reports the damage.
"""


import numpy as np
import pytest

from preprocessing import media
from preprocessing.errors import MediaError
from preprocessing.extraction import ExtractParams, extract_clip

from conftest import make_clip

SECONDS = 4.0


def _mdat_start(data):
    """Byte offset where the media data of an MP4 begins (after ftyp and moov)."""
    pos = 0
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        if kind == b"mdat":
            return pos + 8
        pos += size
    raise AssertionError("no mdat box")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("cut") / "whole.mp4"
    make_clip(path, seconds=SECONDS, size="160x120", extra=("-movflags", "+faststart"))
    return path


def _cut(source, tmp_path, name, keep):
    """Copy of ``source`` keeping the first ``keep(data)`` bytes."""
    data = source.read_bytes()
    path = tmp_path / name
    path.write_bytes(data[:keep(data)])
    return path


def test_cut_to_60_percent_keeps_what_decodes(source, tmp_path, which_ffmpeg):
    path = _cut(source, tmp_path, "cut60.mp4", lambda d: len(d) * 6 // 10)
    arrays, attrs, notes = extract_clip(path, ExtractParams())
    n = len(arrays["faces"])
    assert 0.25 * SECONDS * 25 <= n < 0.9 * SECONDS * 25
    assert np.array_equal(arrays["frame_index"], np.arange(n))
    cut = [note for note in notes if note.startswith("cut short:")]
    assert cut and all(str(path) in note and "\n" not in note for note in cut)
    assert any(f"video {n} of {int(SECONDS * 25)} frames decoded" in note for note in cut)
    assert attrs["has_audio"] and not attrs["audio_silent"]


def test_clean_file_has_no_note(source, which_ffmpeg):
    _, _, notes = extract_clip(source, ExtractParams())
    assert not [note for note in notes if "cut short" in note or "decoder errors" in note]


@pytest.mark.parametrize("name,keep,match", [
    ("cut5.mp4", lambda d: len(d) * 5 // 100, "not a readable media file"),  # the index itself is cut
    ("cut_index_only.mp4", lambda d: _mdat_start(d) + (len(d) - _mdat_start(d)) // 20, "truncated or corrupt"),
])
def test_too_little_left_is_rejected_in_one_line(source, tmp_path, which_ffmpeg, name, keep, match):
    path = _cut(source, tmp_path, name, keep)
    with pytest.raises(MediaError, match=match) as caught:
        extract_clip(path, ExtractParams())
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_without_notes_the_cut_is_logged(source, tmp_path, caplog):
    path = _cut(source, tmp_path, "cut60_log.mp4", lambda d: len(d) * 6 // 10)
    with caplog.at_level("WARNING", logger="preprocessing.truncation"):
        frames = media.decode_frames(path, max_side=64)
    assert 25 <= len(frames) < 90
    assert any(record.getMessage().startswith(f"cut short: {path}: video") for record in caplog.records)
