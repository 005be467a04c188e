"""A trained run folder, loaded for inference: reducer, frame encoder, clip model.

The folder's layout is :class:`emonet.experiment.rundir.RunDir`'s. Everything loads in
Keras safe mode; nothing is unpickled.
"""

import dataclasses

import numpy as np

from preprocessing.constants import CLASSES
from preprocessing.errors import ModelError

from emonet.experiment.rundir import RunDir
from emonet.features.embedding import embed_faces, read_embedding_cache, reduce_audio
from emonet.features.datasets import sequence_batch
from emonet.features.frames import sample_indices, still_views
from emonet.features.reducer_apply import FittedReducer
from emonet.nn.io import load_model
from emonet.nn.models import modes_needing
from emonet.nn.temperature import tempered
# the shipped model's folder, also importable from here as before runtime.py held it
from emonet.inference.runtime import SHIPPED_MODEL_DIR, shipped_model_dir  # noqa: F401


#: Clips per clip-model call in :meth:`TrainedRun.predict`.
PREDICT_BATCH = 64

#: Clips embedded per frame-encoder call when a store is classified (photos are one frame each).
EMBED_CLIPS_PER_CALL = 256


class TrainedRun:
    """The inference parts of a run directory.

    Parameters
    ----------
    run_dir : str or os.PathLike
    model_name : str
        "model" (the run's own mode) or "ablation/audio", "ablation/video".

    Raises
    ------
    ModelError
        Missing directory or files.
    """

    def __init__(self, run_dir, *, model_name="model"):
        self.run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.run_dir = self.run.path
        self.config = self.run.config
        self.mode = self.config.model.mode if model_name == "model" else model_name.split("/")[-1]
        self.model_path = self.run.model_file(model_name)
        if not self.model_path.is_file():
            raise ModelError(f"{self.run_dir}: run is incomplete, {self.model_path.name} is missing "
                             f"(training not finished?)")
        self.model = load_model(self.model_path, compile=False)
        #: the temperature the model's probabilities are read with (``train.calibrate``), or None
        self.temperature = self.run.temperature() if model_name == "model" else None
        self.needs_video, self.needs_audio = modes_needing(self.mode)
        # the transform alone, without scikit-learn (its import was a quarter of a one-clip prediction)
        self.reducer = FittedReducer.load(self.run.reducer_path) if self.needs_audio else None
        self.frame_encoder = load_model(self.run.frame_encoder_path, compile=False) if self.needs_video else None
        self.image_size = self.config.model.image_size
        self.n_frames = self.config.model.n_frames
        #: views a still image is read in (``model.still_views``): 1 = its crop, 10 = crops and mirror images
        self.still_views = self.config.model.still_views
        #: speed factors of the audio copies the voice also hears (``model.test_audio_speeds``; () = none)
        self.test_audio_speeds = tuple(self.config.model.test_audio_speeds) if self.needs_audio else ()

    @property
    def extract_params(self):
        """The extraction settings the run was trained with (dict for ExtractParams)."""
        return dataclasses.asdict(self.config.extract)

    def encode_faces(self, crops):
        """Face crops (T, S, S, 3) uint8 -> per-frame embeddings (T, E) float32."""
        return embed_faces(self.frame_encoder, crops, self.image_size)

    def encode_stills(self, crops, n_views=None):
        """Still faces (N, S, S, 3) uint8 -> embeddings (N, E) float32: each the mean over its
        ``n_views`` (default :attr:`still_views`) views (:func:`~emonet.features.frames.still_views`).
        The face expert is linear in the embedding, so this averages its logits over the views."""
        n_views = self.still_views if n_views is None else n_views
        if n_views == 1 or len(crops) == 0:
            return self.encode_faces(crops)
        views = np.concatenate([still_views(crop, n_views) for crop in crops])
        return self._encode_in_clip_shape(views).reshape(len(crops), n_views, -1).mean(axis=1)

    def _encode_in_clip_shape(self, crops):
        """:meth:`encode_faces`, with fewer than ``n_frames`` crops padded to ``n_frames`` (zeros, dropped from the
        result), so the encoder sees the batch shape of a clip's frames (no retracing for short clips)."""
        n = len(crops)
        if 0 < n < self.n_frames:
            crops = np.concatenate([crops, np.zeros((self.n_frames - n, *crops.shape[1:]), crops.dtype)])
        return self.encode_faces(crops)[:n]

    def encode_clip_faces(self, crops):
        """A clip's face crops (T, S, S, 3) uint8 -> embeddings (min(T, n_frames), E) float32 of the frames the
        clip model reads.

        :meth:`inputs` samples ``n_frames`` frames at the centres of equal segments of the clip
        (:func:`~emonet.features.frames.sample_indices`); only those are embedded, in that
        order, so the model's input is the one it gets from every frame's embedding, at a
        fraction of the cost (16 of ~75-150 frames per clip). The crops are padded to
        ``n_frames`` so the encoder sees one batch shape (no retracing for short clips).
        A clip of one face frame is a still: :meth:`encode_stills`.
        """
        if len(crops) == 1 and self.still_views > 1:
            return self.encode_stills(crops)
        index, mask = sample_indices(len(crops), self.n_frames)
        return self._encode_in_clip_shape(crops[index[mask > 0]])

    def reduce_audio(self, functionals, has_audio):
        """Audio functionals (n, D) -> reduced (n, d) float32; see :func:`reduce_audio`."""
        return reduce_audio(self.reducer, functionals, has_audio)

    def inputs(self, embeddings, functionals, has_audio):
        """The model's input dict for a batch of clips (centred frame sampling)."""
        batch = {}
        if self.needs_video:
            batch["frame_embeddings"], batch["frame_mask"] = sequence_batch(embeddings, self.n_frames)
        if self.needs_audio:
            batch["audio"] = self.reduce_audio(functionals, has_audio)
        return batch

    def predict(self, embeddings, functionals, has_audio, *, audio_copies=None):
        """Class probabilities (n, 7) for clips given their embeddings and audio functionals.

        ``audio_copies``: per clip, the functionals [shape=(K, D)] of the clip played at the run's
        :attr:`test_audio_speeds` (``audio_speed_functionals``), or None. A clip with audio and
        copies gets the mean over itself and its K copies (the same frames each time); the others
        (and every clip of a run without test speeds) their own probabilities. Each reading is
        :func:`~emonet.nn.temperature.tempered` by :attr:`temperature` first, when the run has one.
        """
        readings = self.readings(embeddings, functionals, has_audio, audio_copies=audio_copies)
        if self.temperature is not None:
            readings = [tempered(reading, self.temperature).astype(np.float32) for reading in readings]
        if len(readings) == 1:
            return readings[0]
        return (np.sum(readings, axis=0, dtype=np.float64) / len(readings)).astype(np.float32)

    def readings(self, embeddings, functionals, has_audio, *, audio_copies=None):
        """The model's own probabilities (never tempered) of each reading of each clip: a list of
        1 + K arrays [shape=(n, 7)], the clips themselves then their K speed copies (see :meth:`predict`;
        a clip without copies repeats its own probabilities), or one array when no clip has copies."""
        n = len(functionals) if functionals is not None else len(embeddings)
        if n == 0:
            return [np.zeros((0, len(CLASSES)), np.float32)]
        proba = self._predict_once(embeddings, functionals, has_audio)
        if not self.test_audio_speeds or audio_copies is None:
            return [proba]
        has_audio = np.asarray(has_audio, bool)
        rows = [i for i, copies in enumerate(audio_copies) if copies is not None and has_audio[i]]
        if not rows:
            return [proba]
        copies = np.stack([audio_copies[i] for i in rows], axis=1)  # (K, rows, D)
        if len(copies) != len(self.test_audio_speeds):
            raise ModelError(f"{self.run_dir}: {len(copies)} audio copies for the "
                             f"{len(self.test_audio_speeds)} test_audio_speeds of the run")
        frames = None if embeddings is None else [embeddings[i] for i in rows]
        readings = [proba]
        for copy in copies:
            reading = proba.copy()
            reading[rows] = self._predict_once(frames, copy, has_audio[rows])
            readings.append(reading)
        return readings

    def _predict_once(self, embeddings, functionals, has_audio):
        """Class probabilities (n, 7) of one pass: predict_on_batch per PREDICT_BATCH clips, the batches (and
        numbers) of model.predict(batch_size=64) without its per-call set-up (about 0.2 s a call on CPU)."""
        inputs = self.inputs(embeddings, functionals, has_audio)
        n = len(next(iter(inputs.values())))
        parts = [self.model.predict_on_batch({k: v[i:i + PREDICT_BATCH] for k, v in inputs.items()})
                 for i in range(0, n, PREDICT_BATCH)]
        return np.concatenate([np.asarray(p) for p in parts])

    def store_embeddings(self, store, keys):
        """Per-frame embeddings of store clips: from the run's cache when it has them, else computed; a clip of
        one face frame read in :attr:`still_views` views."""
        if not self.needs_video:
            return [np.zeros((0, 1), np.float32) for _ in keys]
        # stills (one face frame) are read in views, as encode_clip_faces reads them: never from the cache
        stills = [] if self.still_views == 1 else [k for k in keys if store.clip(k)["faces"].shape[0] == 1]
        cached = read_embedding_cache(self.run.embeddings_path, store.path, keys)
        skip = set(cached) | set(stills)
        missing = [k for k in keys if k not in skip]
        for start in range(0, len(missing), EMBED_CLIPS_PER_CALL):  # many short clips (photos): few model calls
            chunk = missing[start:start + EMBED_CLIPS_PER_CALL]
            faces = [store.clip(k)["faces"][()] for k in chunk]
            ends = np.cumsum([len(f) for f in faces])[:-1]
            cached.update(zip(chunk, np.split(self.encode_faces(np.concatenate(faces)), ends)))
        for start in range(0, len(stills), EMBED_CLIPS_PER_CALL):
            chunk = stills[start:start + EMBED_CLIPS_PER_CALL]
            crops = np.stack([store.clip(k)["faces"][0] for k in chunk])
            cached.update(zip(chunk, self.encode_stills(crops)[:, None]))
        return [cached[k] for k in keys]
