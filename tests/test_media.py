"""Decoding with the real ffmpeg: 25 fps whatever the source, sizes, caps, audio, bad input."""

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from preprocessing import media
from preprocessing.constants import FPS, SAMPLE_RATE
from preprocessing.errors import MediaError

from conftest import CREMA_D, shared


@pytest.mark.parametrize("fps", [30, "24000/1001", 60, "30000/1001", 25, 12])
def test_frames_are_resampled_to_25_fps(clip_factory, fps):
    clip = clip_factory(f"rate_{str(fps).replace('/', '_')}.mp4", seconds=2.0, fps=fps)
    frames = media.decode_frames(clip)
    assert abs(len(frames) - 2.0 * FPS) <= 1
    assert frames.dtype == np.uint8 and frames.shape[1:] == (120, 160, 3)


@pytest.mark.parametrize("name,kwargs", [
    ("c.mkv", {"vcodec": "libx264"}),
    ("c.avi", {"vcodec": "mpeg4", "acodec": "pcm_s16le"}),
    ("c.webm", {"vcodec": "libvpx", "acodec": "libopus"}),
    ("c.mov", {"vcodec": "libx264"}),
    ("c.flv", {"vcodec": "flv", "acodec": "mp3"}),
])
def test_common_containers(clip_factory, name, kwargs):
    clip = clip_factory(name, seconds=1.5, size="320x240", **kwargs)
    info = media.probe(clip)
    assert info.has_video and info.has_audio and (info.width, info.height) == (320, 240)
    assert abs(info.duration - 1.5) < 0.1
    frames = media.decode_frames(clip, max_side=160)
    assert frames.shape[1:] == (120, 160, 3)
    assert abs(len(frames) - 1.5 * FPS) <= 1


@pytest.mark.parametrize("size,max_side,expected", [
    ("640x480", 320, (240, 320)), ("480x640", 320, (320, 240)), ("160x120", 320, (120, 160)),
    ("1280x720", 64, (36, 64)),
])
def test_resize_keeps_aspect_and_never_upscales(clip_factory, size, max_side, expected):
    clip = clip_factory(f"size_{size}.mp4", seconds=0.5, size=size, audio=False)
    assert media.decode_frames(clip, max_side=max_side).shape[1:3] == expected


def test_exact_size(clip_factory):
    clip = clip_factory("exact.mp4", seconds=0.5, audio=False)
    assert media.decode_frames(clip, size=(48, 32)).shape[1:] == (32, 48, 3)


def test_rotation_metadata_is_applied(clip_factory, tmp_path):
    source = clip_factory("rot_src.mp4", seconds=1.0, size="320x240")
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([media.ffmpeg_binary(), "-v", "error", "-display_rotation", "90", "-i", str(source),
                    "-c", "copy", str(rotated)], check=True)
    info = media.probe(rotated)
    assert info.rotation in (90, 270) and (info.width, info.height) == (240, 320)
    assert media.decode_frames(rotated).shape[1:] == (320, 240, 3)


@pytest.mark.parametrize("n_total,n_keep", [(10, 20), (100, 10), (151, 150), (7, 3)])
def test_uniform_indices(n_total, n_keep):
    idx = media.uniform_indices(n_total, n_keep)
    assert len(idx) == min(n_total, n_keep)
    assert np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < n_total


def test_frame_cap_samples_the_whole_clip(clip_factory):
    clip = clip_factory("long.mp4", seconds=8.0, size="64x48", audio=False)
    frames, index = media.decode_frames_with_index(clip, max_frames=40)
    assert len(frames) == 40
    assert index[0] < 5 and index[-1] > 8 * FPS - 10
    assert np.all(np.diff(index) >= 4)


def test_frame_cap_without_known_duration(clip_factory, tmp_path):
    """A raw H.264 stream has no container duration: stride doubling keeps memory bounded."""
    source = clip_factory("long_raw_src.mp4", seconds=6.0, size="64x48", audio=False)
    raw = tmp_path / "clip.h264"
    subprocess.run([media.ffmpeg_binary(), "-v", "error", "-i", str(source), "-c", "copy", "-f", "h264",
                    str(raw)], check=True)
    info = dataclasses.replace(media.probe(raw), duration=None)
    frames, index = media.decode_frames_with_index(raw, max_frames=32, info=info)
    assert 16 <= len(frames) <= 32
    assert index[-1] > 4 * FPS


def test_audio_is_16k_mono_float(clip_factory):
    clip = clip_factory("audio.mp4", seconds=2.0)
    y = media.decode_audio(clip)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 2.0 * SAMPLE_RATE) < 0.05 * SAMPLE_RATE
    assert 0.1 < np.abs(y).max() <= 1.0


def test_crema_d_flv_vp6_mp3():
    clip = CREMA_D / "1001_DFA_ANG_XX.flv"
    info = media.probe(clip)
    assert (info.video_codec, info.audio_codec) == ("vp6f", "mp3")
    assert abs(info.fps - 29.97) < 0.01
    frames = media.decode_frames(clip)
    assert frames.shape[1:] == (240, 320, 3)
    assert abs(len(frames) - info.duration * FPS) <= 1


def test_real_1080p_h264():
    clip = shared("real", "mead", "M030_sad_3_001.mp4")
    info = media.probe(clip)
    assert (info.width, info.height) == (1920, 1080)
    frames = media.decode_frames(clip, max_side=320, max_frames=20)
    assert frames.shape == (20, 180, 320, 3)


def _truncated(tmp_path, clip_factory):
    """Index intact, 10 % of the media data left: too little to keep (a cut to 2/3 is kept, see test_truncated)."""
    source = clip_factory("to_truncate.mp4", seconds=3.0, size="320x240", audio=False,
                          extra=("-movflags", "+faststart"))
    data = source.read_bytes()
    mdat = data.index(b"mdat") + 4
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: mdat + (len(data) - mdat) // 10])
    return path


def _moov_at_end_truncated(tmp_path, clip_factory):
    data = clip_factory("to_truncate2.mp4", seconds=3.0, size="320x240").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    return path


def _write(name, data):
    def make(tmp_path, clip_factory):
        path = tmp_path / name
        path.write_bytes(data)
        return path
    return make


@pytest.mark.parametrize("make,match", [
    (lambda tmp, cf: tmp / "missing.mp4", "no such file"),
    (_write("zero.mp4", b""), "empty file"),
    (_write("text.mp4", b"this is not a video\n"), "not a readable media file"),
    (_write("junk.avi", np.random.default_rng(0).bytes(50_000)), "not a readable media file"),
    (lambda tmp, cf: tmp, "is a directory"),
    (_truncated, "truncated or corrupt"),
    (_moov_at_end_truncated, "not a readable media file"),
])
def test_bad_input_is_one_line_naming_the_file(tmp_path, clip_factory, make, match):
    path = make(tmp_path, clip_factory)
    with pytest.raises(MediaError, match=match) as caught:
        media.probe(path)
        media.decode_frames(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message


def test_audio_only_and_video_only(clip_factory):
    audio_only = clip_factory("speech.wav", video=False, acodec="pcm_s16le")
    video_only = clip_factory("silent_film.mp4", audio=False)
    assert not media.probe(audio_only).has_video
    with pytest.raises(MediaError, match="no video stream"):
        media.decode_frames(audio_only)
    with pytest.raises(MediaError, match="no audio stream"):
        media.decode_audio(video_only)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(clip_factory, tmp_path):
    path = tmp_path / "locked.mp4"
    shutil.copy(clip_factory("lock_src.mp4", seconds=0.5), path)
    path.chmod(0)
    with pytest.raises(MediaError, match="cannot be read"):
        media.probe(path)


def test_dangling_symlink(tmp_path):
    link = tmp_path / "gone.mp4"
    link.symlink_to(tmp_path / "deleted.mp4")
    with pytest.raises(MediaError, match="no such file"):
        media.probe(link)


def _fake_ffmpeg(folder, script="#!/bin/sh\necho 'ffmpeg version fake'\n"):
    folder.mkdir(exist_ok=True)
    path = folder / "ffmpeg"
    path.write_text(script)
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("make,match", [
    (lambda tmp: tmp / "nope", "no such file"),
    (lambda tmp: _fake_ffmpeg(tmp / "bin", "#!/bin/sh\necho 'not it'\n"), "not an ffmpeg"),
    (lambda tmp: _fake_ffmpeg(tmp / "bin", "#!/bin/sh\necho broken >&2\nexit 3\n"),
     "not a working ffmpeg .*exited 3: broken"),
])
def test_ffmpeg_override_is_validated(monkeypatch, tmp_path, make, match):
    path = make(tmp_path)
    monkeypatch.setenv(media.FFMPEG_ENV, str(path))
    with pytest.raises(MediaError, match=f"^EMONET_FFMPEG={path}: {match}") as caught:
        media.ffmpeg_binary()
    assert "\n" not in str(caught.value)


def test_ffmpeg_override_is_used(monkeypatch, tmp_path):
    fake = _fake_ffmpeg(tmp_path / "bin")
    monkeypatch.setenv(media.FFMPEG_ENV, str(fake))
    assert media.ffmpeg_binary() == str(fake)


def test_wheel_ffmpeg_wins_over_path_and_path_is_the_fallback(monkeypatch, tmp_path):
    from preprocessing import probe
    fake = _fake_ffmpeg(tmp_path / "bin")
    monkeypatch.delenv(media.FFMPEG_ENV, raising=False)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ.get('PATH', '')}")
    wheel = probe._wheel_ffmpeg()
    assert wheel and media.ffmpeg_binary() == wheel
    monkeypatch.setattr(probe, "_wheel_ffmpeg", lambda: None)
    probe._resolve_ffmpeg.cache_clear()
    try:
        assert media.ffmpeg_binary() == str(fake)
    finally:
        probe._resolve_ffmpeg.cache_clear()


def test_ffmpeg_binary_prints_from_the_command_line():
    """The Makefile's check: importing and printing works in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", "import preprocessing.media as m; print(m.ffmpeg_binary())"],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == media.ffmpeg_binary() and "imageio_ffmpeg" in out.stdout
