"""One ffmpeg process per clip: its description, its frames and its audio from a single run.

:func:`decode_clip` starts one ffmpeg that opens the file once, describes it (what a probe
would say, :mod:`preprocessing.av_session`) and writes two outputs: raw RGB frames (25 fps,
scaled inside ffmpeg by the same filters as :func:`preprocessing.media.decode_frames`, sized
from that description) to stdout, and 16 kHz mono float32 samples (as
:func:`preprocessing.media.decode_audio`) to a second pipe passed to ffmpeg as an extra file
descriptor (``pipe:<fd>``). The frames, samples and :class:`~preprocessing.probe.MediaInfo`
are identical to a probe followed by two separate decodes (``tests/test_av_decode.py``, with
ffmpeg 7.0 and 5.1); one process instead of three saves two process starts, two openings of
the file and, for the audio, a second pass over the container (``experiments/bench_extract.py``:
``decode`` against ``decode_probed`` and ``decode_two_processes``, record
``experiments/results/extract.json``).

A clip with only one of the two streams (the described run stops at the missing stream's
``-map``), an audio file (by suffix: probed, then decoded), a caller's probe passed as
``info``, or a platform without ``pass_fds`` (Windows) takes a probe and the one-stream
functions of :mod:`preprocessing.media`, or one process built from ``info``. Damage is judged
per stream by :func:`preprocessing.truncation.judge_damage`, as there; ffmpeg's exit status
and complaints belong to the one process, so a note may name both streams.

Examples
--------
>>> clip = decode_clip("clip.mp4", max_side=320, max_frames=150)   # doctest: +SKIP
>>> clip.frames.shape, clip.audio.shape                            # doctest: +SKIP
((75, 320, 240, 3), (48000,))
"""

import dataclasses
import os
import subprocess
import threading
from pathlib import Path

import ffmpeg
import numpy as np

from . import av_session, media
from .constants import AUDIO_SUFFIXES, FPS, SAMPLE_RATE
from .pipes import pump_stdout, read_all


#: True where an extra pipe can be handed to ffmpeg (``subprocess.Popen(pass_fds=...)``, POSIX).
SINGLE_PROCESS = os.name == "posix"

#: Decoder and filter threads of the one ffmpeg: 1, as OpenCV in the workers, since the
#: worker processes are the parallelism. On composite clips with the machine loaded, one
#: thread decoded in 49 ms per clip (median) against 63 ms with ffmpeg's automatic count;
#: the frames are the same.
DECODE_THREADS = 1


@dataclasses.dataclass
class DecodedClip:
    """A clip's streams as :mod:`preprocessing.media` decodes them.

    Attributes
    ----------
    info : MediaInfo
        What ffmpeg says about the file (the decoding run's own description, or the probe's).
    frames : np.ndarray [shape=(T, H, W, 3), dtype=uint8] or None
        RGB frames at 25 fps (None: no video stream).
    index : np.ndarray [shape=(T,), dtype=int32] or None
        Each kept frame's position in the 25 fps stream (time = index / 25 s).
    audio : np.ndarray [shape=(N,), dtype=float32] or None
        Mono samples in [-1, 1] at ``sample_rate`` Hz (None: no audio stream).
    processes : int
        ffmpeg processes run for the clip: 1 when one described and decoded it; a probe (or a
        described run whose guess of the streams was wrong) and one decode per stream otherwise.
        A probe passed in as ``info`` is not counted.
    """

    info: media.MediaInfo
    frames: np.ndarray | None
    index: np.ndarray | None
    audio: np.ndarray | None
    processes: int


def decode_clip(path, *, max_side=320, size=None, max_frames=None, sample_rate=SAMPLE_RATE, info=None,
                notes=None, single_process=None):
    """Decode a clip's video and audio, with one ffmpeg process when it has both.

    Without ``info`` the decoding ffmpeg describes the clip itself, no probe is run
    (:class:`preprocessing.av_session.DescribedDecode`); with ``info`` the command is built
    from it.

    Parameters
    ----------
    path : str or os.PathLike
    max_side, size, max_frames
        As :func:`preprocessing.media.decode_frames` (longest side in px, exact (width, height)
        in px, cap on kept frames).
    sample_rate : int
        Audio output rate in Hz.
    info : MediaInfo, optional
        A probe result to reuse.
    notes : list of str, optional
        Receives the one-line notes of a clip cut short but kept (see :mod:`preprocessing.media`).
    single_process : bool, optional
        False: a probe then one process per stream (the path of :mod:`preprocessing.media`), for
        comparison. Default: :data:`SINGLE_PROCESS`.

    Returns
    -------
    DecodedClip

    Raises
    ------
    MediaError
        As :func:`preprocessing.media.probe`, :func:`preprocessing.media.decode_frames_with_index` and
        :func:`preprocessing.media.decode_audio`: not media, nothing decodes, or too little of a damaged stream.
    """
    single = SINGLE_PROCESS if single_process is None else single_process
    spent = 0  # ffmpeg processes run before the decode (a probe, a described run that guessed wrong)
    if info is None and single and Path(path).suffix.lower() not in AUDIO_SUFFIXES \
            and av_session.filter_option(media.ffmpeg_binary()):
        run = av_session.DescribedDecode(path, sample_rate=sample_rate, threads=DECODE_THREADS)
        info = run.describe()
        if info.has_video and info.has_audio:
            try:
                return _decode_described(run, path, info, max_side, size, max_frames, sample_rate, notes)
            finally:
                run.abort()  # nothing once ffmpeg has finished; stops it on an error (a video of unknown size)
        run.abort()  # one stream only (its -map has stopped ffmpeg): decode it with what ffmpeg said
        spent = 1
    elif info is None:
        info = media.probe(path)
        spent = 1
    if not (single and info.has_video and info.has_audio):
        frames = index = y = None
        if info.has_video:
            frames, index = media.decode_frames_with_index(path, max_side=max_side, size=size,
                                                           max_frames=max_frames, info=info, notes=notes)
        if info.has_audio:
            y = media.decode_audio(path, sample_rate=sample_rate, info=info, notes=notes)
        return DecodedClip(info, frames, index, y, processes=spent + int(info.has_video) + int(info.has_audio))
    info, (width, height) = media.video_output(path, info, size, max_side)
    source = ffmpeg.input(str(path), threads=DECODE_THREADS)
    expected = None if info.duration is None else int(round(info.duration * FPS))
    picker = media.FramePicker(max_frames, expected)

    def command(audio_fd):
        video = media.rgb_output(source, width, height)
        audio = source.audio.output(f"pipe:{audio_fd}", format="f32le", ac=1, ar=sample_rate)
        return ffmpeg.merge_outputs(video, audio).global_args(
            "-nostdin", "-v", "error", "-filter_threads", str(DECODE_THREADS)).compile(
            cmd=media.ffmpeg_binary())

    returncode, stderr, samples = _run_with_audio_pipe(command, width * height * 3, picker.offer)
    frames, index = media.judged_frames(path, picker, expected, (width, height), returncode=returncode,
                                        stderr=stderr, notes=notes)
    y = media.judged_audio(path, samples, info.duration, sample_rate, returncode=returncode, stderr=stderr,
                           notes=notes)
    return DecodedClip(info, frames, index, y, processes=spent + 1)


def _decode_described(run, path, info, max_side, size, max_frames, sample_rate, notes):
    """The :class:`DecodedClip` of a described run (:class:`~preprocessing.av_session.DescribedDecode`) of a clip
    with video and audio: its filter sized from ``info``, both streams judged as in :mod:`preprocessing.media`."""
    info, (width, height) = media.video_output(path, info, size, max_side)
    expected = None if info.duration is None else int(round(info.duration * FPS))
    picker = media.FramePicker(max_frames, expected)
    returncode, stderr, samples = run.decode(media.rgb_filter(width, height), width * height * 3, picker.offer)
    frames, index = media.judged_frames(path, picker, expected, (width, height), returncode=returncode,
                                        stderr=stderr, notes=notes)
    y = media.judged_audio(path, samples, info.duration, sample_rate, returncode=returncode, stderr=stderr,
                           notes=notes)
    return DecodedClip(info, frames, index, y, processes=1)


def _run_with_audio_pipe(command, chunk_bytes, consume):
    """Run ``command(fd)`` (an ffmpeg argument list writing audio to fd ``fd``), handing each ``chunk_bytes``
    of its stdout to ``consume``.

    The audio pipe and stderr are drained by threads, so ffmpeg never blocks on either.

    Returns
    -------
    returncode : int
    stderr : str
        ffmpeg's error output.
    samples : bytes
        Everything written to the audio pipe.
    """
    read_audio, write_audio = os.pipe()
    try:
        proc = subprocess.Popen(command(write_audio), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, pass_fds=(write_audio,))
    except BaseException:
        os.close(read_audio)
        raise
    finally:
        os.close(write_audio)  # ffmpeg holds the only write end now: EOF when it exits
    errors, samples = [], []
    readers = [threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True),
               threading.Thread(target=lambda: samples.append(read_all(read_audio)), daemon=True)]
    try:
        returncode = pump_stdout(proc, chunk_bytes, consume, readers)
    finally:
        os.close(read_audio)
    return returncode, b"".join(errors).decode("utf-8", "replace"), b"".join(samples)
