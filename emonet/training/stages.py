"""The stages before the clip models: the audio reducer, stage one (the frame encoder), the embedding cache.

Every stage reads a :class:`emonet.training.context.RunContext` and writes into its run
folder; a stage whose output exists is skipped (resume), except the reducer, which is
fitted again in seconds.
"""

import time
import warnings
from pathlib import Path

import numpy as np

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError
from preprocessing.store import FeatureStore

from emonet.evaluation.metrics import uar
from emonet.features.datasets import frame_dataset, mix_frame_datasets
from emonet.experiment.config import SHIPPED_MODEL_NAME
from emonet.experiment.rundir import RunDir
from emonet.features.embedding import (ReducedAudio, embed_faces, read_embedding_cache, reduce_audio,
                                      write_embedding_cache)
from emonet.features.frames import prepare_faces, sample_indices
from emonet.features.reducer import AudioReducer
from emonet.features.tables import SplitTable, audio_matrix, audio_speed_matrix, clip_frames
from emonet.inference.runtime import shipped_model_dir
from emonet.nn.experts import face_expert_weights, softmax_weights
from emonet.nn.io import load_model, save_model_atomically
from emonet.nn.names import OUTPUT_NAME
from emonet.nn.resnet import build_frame_classifier, build_resnet20

#: Frames per validation clip scored in stage one (centred segment sampling).
VAL_FRAMES_PER_CLIP = 4

#: Frames drawn per ``data.mix_store`` clip per pass over it (the pass repeats as long as stage one needs).
MIX_FRAMES_PER_PASS = 4


def initial_frame_classifier(model_cfg):
    """Stage one's starting point: ResNet-20 + softmax, random or from ``model.frame_encoder_init``.

    The init is a run folder (its ``frame_encoder.keras``; the softmax layer too when the run has
    one for frames: a ``frames`` run's, or the face expert of a model with video experts), a
    ``.keras`` frame encoder, or ``emonet-base``: the shipped model's frame CNN and face expert.
    Its input must be (image_size, image_size, 3) and its output (embedding_dim,).

    Returns
    -------
    keras.Model
        (B, S, S, 3) float32 -> (B, 7) probabilities; its ``frame_encoder`` layer is the encoder.
    """
    init = model_cfg.frame_encoder_init
    if not init:
        return build_frame_classifier(build_resnet20(image_size=model_cfg.image_size,
                                                     embedding_dim=model_cfg.embedding_dim))
    path, head = (shipped_model_dir() if init == SHIPPED_MODEL_NAME else Path(init)), None
    if path.is_dir():
        run = RunDir(path)
        encoder = load_model(run.frame_encoder_path, compile=False)
        head = frame_softmax(run)
    elif path.is_file():
        encoder = load_model(path, compile=False)
    else:
        raise ConfigError(f"{path}: model.frame_encoder_init is neither a run folder nor a .keras file")
    want_in, want_out = (model_cfg.image_size, model_cfg.image_size, 3), (model_cfg.embedding_dim,)
    if tuple(encoder.input_shape[1:]) != want_in or tuple(encoder.output_shape[1:]) != want_out:
        raise ConfigError(f"{path}: frame encoder maps {tuple(encoder.input_shape[1:])} -> "
                          f"{tuple(encoder.output_shape[1:])}, but this run needs {want_in} -> {want_out} "
                          f"(model.image_size, model.embedding_dim)")
    encoder.name = "frame_encoder"
    classifier = build_frame_classifier(encoder)
    if head is not None:
        classifier.get_layer(OUTPUT_NAME).set_weights(list(head))
    return classifier


def frame_softmax(run):
    """(kernel (E, C), bias (C,)) of the softmax ``run`` applies to single frames, or None when it has none:
    a ``frames`` run's frame classifier, or the face expert of a model with video experts (emonet-base)."""
    if not run.model_file("model").is_file() or run.config.model.mode not in ("frames", "video", "fusion"):
        return None
    model = load_model(run.model_file("model"), compile=False)
    return softmax_weights(model) if run.config.model.mode == "frames" else face_expert_weights(model)


class ReducerStage:
    """The audio reducer, fitted on the training clips with audio (``reducer.npz``, ``reducer_warnings.json``)."""

    def __init__(self, context):
        self.context = context

    def run(self):
        """Fit and save the reducer.

        Returns
        -------
        emonet.features.embedding.ReducedAudio
            ``(train [shape=(n_train, d)], val [shape=(n_val, d)])`` float32: reduced audio functionals
            of the training and validation clips (zeros without audio), and with ``extract.audio_speeds``
            the training clips' speed-perturbed copies ``train_speeds`` [shape=(K, n_train, d)].
        """
        ctx, model_cfg = self.context, self.context.cfg.model
        train_x = audio_matrix(ctx.store, ctx.train_table.keys)
        val_x = audio_matrix(ctx.store, ctx.val_table.keys)
        has = ctx.train_table.has_audio
        first, stop = audio_columns(model_cfg.audio_features, train_x.shape[1], ctx.store.path)
        reducer = AudioReducer(n_components=model_cfg.audio_dim, mode=model_cfg.reducer,
                               shrinkage=model_cfg.reducer_shrinkage, whiten=model_cfg.reducer_whiten,
                               first_feature=first)
        with warnings.catch_warnings(record=True):  # caps are logged from reducer.warnings_ below
            warnings.simplefilter("always")
            reducer.fit(train_x[has][:, first:stop], ctx.train_table.labels[has])
        for message in reducer.warnings_:
            ctx.log.info(f"reducer: {message}")
        reducer.save(ctx.run.reducer_path)
        ctx.run.write_json(ctx.run.reducer_warnings_path, reducer.warnings_)
        ctx.log.info(f"audio reducer ({model_cfg.reducer}, {model_cfg.audio_features}: columns {first}-{stop - 1}): "
                     f"{stop - first} -> {reducer.n_components_} dims (fitted on {int(has.sum())} training clips)")
        train_speeds = None
        if ctx.cfg.extract.audio_speeds:  # speed-perturbed training copies; the reducer never sees them
            speeds = audio_speed_matrix(ctx.store, ctx.train_table.keys, has)
            train_speeds = np.stack([reduce_audio(reducer, x, has) for x in speeds])
            ctx.log.info(f"audio: {len(speeds)} speed-perturbed copies per training clip "
                         f"(speeds {list(ctx.cfg.extract.audio_speeds)})")
        return ReducedAudio(reduce_audio(reducer, train_x, ctx.train_table.has_audio),
                            reduce_audio(reducer, val_x, ctx.val_table.has_audio), train_speeds)


def audio_columns(block, width, store_path):
    """(first, stop) columns of ``model.audio_features`` ``block`` in a store's audio vectors of ``width`` values;
    ``all`` is the whole stored vector. ConfigError naming the store when it is too narrow for the block."""
    if block == "all":
        return 0, width
    from preprocessing.audio import audio_block
    first, stop = audio_block(block)
    if width < stop:
        raise ConfigError(f"{store_path}: holds {width} audio values per clip; model.audio_features: {block} needs "
                          f"{stop} (an older EmoNet extracted it; extract it again to a new store)")
    return first, stop


class FrameEncoderStage:
    """Stage one of the two-stage schedule: ResNet-20 + softmax on single face frames (``stages/frames``).

    Each epoch draws ``train.frames_per_clip`` frames per training clip (augmented); validation
    scores :data:`VAL_FRAMES_PER_CLIP` centred frames per clip, averaged per clip. Early stopping
    uses half the run's patience (at least 3). The best epoch's encoder is ``frame_encoder.keras``.
    """

    def __init__(self, context):
        self.context = context
        #: the trained frame classifier (encoder + softmax), once :meth:`run` has trained it
        self.classifier = None

    def run(self):
        """Train (or load, on resume) the frame encoder: (B, S, S, 3) float32 -> (B, E)."""
        ctx = self.context
        model_cfg, train = ctx.cfg.model, ctx.cfg.train
        target = ctx.run.frame_encoder_path
        if target.exists():
            ctx.log.info("frames: frame encoder already trained (resume)")
            return load_model(target, compile=False)
        soft = bool(train.soft_labels and ctx.train_table.soft_labels is not None)
        classifier = initial_frame_classifier(model_cfg)
        if not train.frame_epochs:  # no stage one: the starting CNN as it is (e.g. emonet-base's, frozen)
            self.classifier = classifier
            encoder = classifier.get_layer("frame_encoder")
            stage_dir = ctx.run.stage("frames")
            stage_dir.path.mkdir(parents=True, exist_ok=True)
            save_model_atomically(classifier, stage_dir.best_path)  # what a resumed frames run reads
            save_model_atomically(encoder, target)
            ctx.log.info("frames: train.frame_epochs is 0, the frame encoder is kept as it starts "
                         f"({model_cfg.frame_encoder_init or 'random weights'})")
            return encoder
        patience = 0 if train.keep == "last" else max(3, train.patience // 2)
        loop = ctx.stage_loop(classifier, "frames", epochs=train.frame_epochs, patience=patience, soft_labels=soft)
        classifier = loop.resume_model(classifier)
        if loop.done:
            best = loop.kept_model()
        else:
            dataset = self.training_frames(soft)
            val_frames = self.val_frames()

            def score(model):
                proba = np.asarray(model.predict(val_frames, batch_size=256, verbose=0))
                clip_proba = proba.reshape(len(ctx.val_table), VAL_FRAMES_PER_CLIP, -1).mean(axis=1)
                return uar(ctx.val_table.labels, clip_proba.argmax(axis=1))

            best = loop.fit(classifier, dataset, score, class_weight=ctx.class_weight, shuffle=False)
        self.classifier = best
        encoder = best.get_layer("frame_encoder")
        save_model_atomically(encoder, target)
        ctx.log.info(f"frames: best val UAR {loop.state['best_uar']:.3f} at epoch {loop.state['best_epoch']}")
        return encoder

    def training_frames(self, soft):
        """The training stream of stage one: this run's frames, mixed with ``data.mix_store``'s when set."""
        ctx = self.context
        model_cfg, train, data = ctx.cfg.model, ctx.cfg.train, ctx.cfg.data
        options = dict(image_size=model_cfg.image_size, batch_size=train.batch_size, augment=train.augment,
                       seed=ctx.cfg.seed, augment_policy=train.augment_policy)
        dataset = frame_dataset(ctx.store.path, ctx.train_table, frames_per_clip=train.frames_per_clip,
                                soft_labels=soft, **options)
        if not data.mix_store:
            return dataset
        with FeatureStore(data.mix_store) as mix_store:
            mix_table, _ = SplitTable(mix_store, data.train_split, labelled=False).labelled_part()
        ctx.log.info(f"frames: {data.mix_share:.0%} of the batches from {len(mix_table)} {data.train_split} clips "
                     f"of {data.mix_store}")
        extra = frame_dataset(data.mix_store, mix_table, frames_per_clip=MIX_FRAMES_PER_PASS, soft_labels=False,
                              first_fraction=data.mix_from, **options)
        return mix_frame_datasets(dataset, extra, share=data.mix_share, seed=ctx.cfg.seed,
                                  n_classes=len(CLASSES), soft_labels=soft)

    def val_frames(self):
        """:data:`VAL_FRAMES_PER_CLIP` centred face crops per validation clip, ready for the CNN.

        Returns
        -------
        np.ndarray [shape=(n_val * VAL_FRAMES_PER_CLIP, S, S, 3), dtype=float32]
        """
        ctx = self.context
        crops = []
        for key in ctx.val_table.keys:
            faces = ctx.store.clip(key)["faces"]
            index, _ = sample_indices(faces.shape[0], VAL_FRAMES_PER_CLIP)
            picked = faces[()][index] if faces.shape[0] else np.zeros((VAL_FRAMES_PER_CLIP,) + faces.shape[1:],
                                                                      np.uint8)
            crops.append(picked)
        return np.asarray(prepare_faces(np.concatenate(crops), ctx.cfg.model.image_size))


class EmbeddingCache:
    """``embeddings.h5``: every frame of the cached clips embedded once by the frame encoder."""

    def __init__(self, context):
        self.context = context

    def build(self, encoder):
        """Embed the context's ``cache_keys`` with ``encoder`` (or read them back, on resume).

        Returns
        -------
        dict
            ``{key: (T_i, E) float32}``.
        """
        ctx = self.context
        keys, path = ctx.cache_keys, ctx.run.embeddings_path
        cached = read_embedding_cache(path, ctx.store.path, keys)
        if cached and len(cached) == len(keys):
            ctx.log.info("cache: frame embeddings already cached (resume)")
            return cached
        start = time.perf_counter()
        out = {key: embed_faces(encoder, clip_frames(ctx.store.clip(key)), ctx.cfg.model.image_size)
               for key in keys}
        write_embedding_cache(path, ctx.store.path, out)
        n = sum(len(e) for e in out.values())
        ctx.log.info(f"cache: {n} frames of {len(keys)} clips embedded in {time.perf_counter() - start:.0f} s")
        return out
