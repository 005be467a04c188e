"""Constants shared by the whole pipeline, each with its derivation.

Everything that must agree between decoding, feature extraction, the store and
the model lives here, so there is exactly one place to change it.
"""

#: Video frames per second after decoding; ffmpeg's ``fps`` filter resamples
#: every source (23.976, 29.97, 30, 60, variable) to this rate.
FPS = 25

#: Audio sample rate in Hz after decoding (mono, float32).
SAMPLE_RATE = 16000

#: Audio hop in samples: one audio frame per video frame at :data:`FPS`.
HOP_LENGTH = SAMPLE_RATE // FPS  # 640

#: Number of MFCC coefficients.
N_MFCC = 40

#: The seven emotions, in AFEW/EmotiW (alphabetical) order. Class index ``i``
#: always means ``CLASSES[i]``.
CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")

#: Lower-case aliases used by corpora, mapped onto :data:`CLASSES`.
#: Labels that have no AFEW class (``contempt``) are absent and are skipped.
LABEL_ALIASES = {
    "angry": "Angry", "anger": "Angry", "ang": "Angry",
    "disgust": "Disgust", "disgusted": "Disgust", "dis": "Disgust",
    "fear": "Fear", "fearful": "Fear", "fea": "Fear", "afraid": "Fear",
    "happy": "Happy", "happiness": "Happy", "hap": "Happy", "joy": "Happy",
    "neutral": "Neutral", "neu": "Neutral", "calm": "Neutral",
    "sad": "Sad", "sadness": "Sad",
    "surprise": "Surprise", "surprised": "Surprise", "sur": "Surprise",
}

#: Video file suffixes recognised when scanning folders (lower case).
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".flv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp")

#: Audio-only file suffixes recognised when scanning folders (lower case).
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".aac")

#: Still-image file suffixes recognised when scanning folders (lower case); an
#: image is a clip of one frame without audio (:mod:`preprocessing.images`).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def normalise_label(label):
    """Map a corpus label onto :data:`CLASSES`.

    Parameters
    ----------
    label : str
        Any spelling known to :data:`LABEL_ALIASES` (case-insensitive), or a
        canonical class name.

    Returns
    -------
    str or None
        The canonical class name, or ``None`` if the label has no AFEW class
        (e.g. ``contempt``).
    """
    return LABEL_ALIASES.get(str(label).strip().lower())

#: Width of the audio functionals vector before the log-mel statistics were appended (``n_mfcc=40``);
#: today's 3,361 values start with the same 1,475 (preprocessing.audio).
LEGACY_WIDTH = 1475

#: Earlier widths of the audio functionals vector (``n_mfcc=40``), oldest first: 1,475 (MFCC-based
#: functionals), 1,795 (+ log-mel statistics, sessions 7-9), 1,825 (+ prosody statistics, sessions 10-13).
#: Today's 3,361 (+ the voice encoder's statistics) start with each of them, so a model fitted on an
#: earlier width reads that prefix.
EARLIER_WIDTHS = (LEGACY_WIDTH, 1795, 1825)

#: Named blocks of the audio vector a model can read (``model.audio_features``; columns from
#: preprocessing.audio.audio_block): all of it, the hand-made functionals (the 1,825 values before the voice
#: encoder's), or the voice encoder's 1,536 statistics.
AUDIO_BLOCKS = ("all", "functionals", "voice_encoder")
