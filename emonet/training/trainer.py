"""Training a run from a YAML config: extraction, reducer, video branch by schedule, clip models, evaluation.

``train.schedule`` decides how the video branch (ResNet-20 frame encoder + 3 LSTMs) is trained.
The default is the two-stage one the EmotiW winners used, because end-to-end ResNet-20 + LSTM
training is slow on a 2-core CPU:

1. **frames**: ResNet-20 + softmax trained on single face frames (each epoch
   draws ``frames_per_clip`` frames per training clip, augmented);
2. **cache**: the trained frame encoder embeds every frame of every clip once
   (``embeddings.h5`` in the run directory);
3. **clip model**: LSTMs + audio branch + fusion head trained on sequences of
   cached embeddings and the reduced audio vector (fast: seconds per epoch).

With ``train.finetune_epochs`` > 0, the two-stage video model is then **fine-tuned** end to end
(``stages/finetune``): frame encoder and video clip model are joined into the frames-input model
and trained on frame sequences at ``learning_rate * finetune_lr_scale``. Its validation UAR before
fine-tuning counts as epoch 0, so the two-stage model is kept unless an epoch beats it; otherwise
``frame_encoder.keras`` and the video model are replaced and the cache is rebuilt before the
audio and fusion stages read it.

``schedule: end_to_end`` replaces steps 1 and the video clip model by one stage
(``stages/end_to_end``): the frames-input video model (``TimeDistributed(ResNet-20)`` + LSTMs +
head) is trained from scratch on frame sequences streamed from the store
(:func:`emonet.data.sequence_dataset`). Its best epoch is split into ``frame_encoder.keras`` and
the embeddings-input video model (:func:`emonet.models.split_video_model`, same probabilities), so
the cache, the audio and fusion stages, evaluation and prediction run exactly as for two_stage.
Fine-tuning does not apply to it (the config refuses both).

With ``train.folds`` >= 2 (the default, 3), a video or fusion run is *cross-fitted*
(:mod:`emonet.crossfit`): the video branch above is trained once per face-subject-disjoint
fold, their mean is the video branch, and the fusion head learns from out-of-fold
predictions of both branches.

Every stage stops early on validation UAR and checkpoints every epoch in ``stages/<stage>/``, and
is skipped when its output exists, so an interrupted run resumes where it stopped
(``emonet train CONFIG --resume``).

Examples
--------
>>> run_dir = train_from_config("experiments/composite_fusion.yaml")   # doctest: +SKIP
"""

import json
import os
import shutil
import sys
import time
import warnings

import h5py
import numpy as np

from preprocessing.constants import CLASSES
from preprocessing.errors import ConfigError
from preprocessing.store import FeatureStore

from emonet.experiment.config import dump_config, load_config
from emonet.experiment.rundir import run_directory, set_seeds, write_versions
from emonet.experiment.stores import prepare_store
from emonet.features.inputs import (SplitTable, audio_matrix, clip_frames, frame_dataset, prepare_faces, sample_indices,
                   sequence_batch, sequence_dataset)
from emonet.nn.io import save_model_atomically
from emonet.training.loop import EpochLoop, make_optimizer, uar
from emonet.features.reducer import AudioReducer
from emonet.features.embedding import embed_faces, reduce_audio, write_embedding_cache
from emonet.nn.models import modes_needing

#: Frames per validation clip scored in stage one (centred segment sampling).
VAL_FRAMES_PER_CLIP = 4


def train_from_config(config_path, *, smoke=False, seed=None, resume=False, overwrite=False, log=None):
    """Train the run declared by a YAML config and evaluate it on the validation split.

    Parameters
    ----------
    config_path : str or os.PathLike
    smoke : bool
        Apply the config's ``smoke:`` overrides (a quick variant).
    seed : int, optional
        Overrides the config's ``seed`` (and so the run folder ``<name>-seed<seed>``).
    resume : bool
        Continue an interrupted run in the same folder.
    overwrite : bool
        Start a finished or interrupted run again from scratch.
    log : callable, optional
        One-line progress messages (default: print to stderr).

    Returns
    -------
    pathlib.Path
        The run directory.
    """
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    cfg = load_config(config_path, smoke=smoke, seed=seed)
    return train(cfg, resume=resume, overwrite=overwrite, log=log)


def train(cfg, *, resume=False, overwrite=False, log=print):
    """Train from a resolved config (see :func:`train_from_config`)."""
    run_dir = run_directory(cfg)
    if run_dir.exists() and any(run_dir.iterdir()) and not (resume or overwrite):
        raise ConfigError(f"{run_dir}: run folder exists; pass --resume to continue it or --overwrite to "
                          f"start again")
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume and (run_dir / "config.yaml").exists():
        saved = (run_dir / "config.yaml").read_text()
        dump_config(cfg, run_dir / "config.resume.yaml")
        if (run_dir / "config.resume.yaml").read_text() != saved:
            raise ConfigError(f"{run_dir}: --resume with a config that differs from the run's config.yaml")
    dump_config(cfg, run_dir / "config.yaml")
    write_versions(run_dir)
    log(f"run {run_dir} (mode {cfg['model']['mode']}, schedule {cfg['train']['schedule']}, seed {cfg['seed']})")
    started = time.perf_counter()
    set_seeds(cfg["seed"])
    store_path = prepare_store(cfg, log)
    with FeatureStore(store_path) as store:
        trainer = _Trainer(cfg, run_dir, store, log)
        trainer.fit()
    timing = {"train_seconds": time.perf_counter() - started}
    (run_dir / "timing.json").write_text(json.dumps(timing, indent=2))
    from emonet.evaluation.evaluate import evaluate_run
    evaluate_run(run_dir, log=log)
    log(f"trained in {timing['train_seconds'] / 60:.1f} min -> {run_dir}")
    return run_dir


class _Trainer:
    """The stages of one run; each stage is skipped when its output already exists (resume)."""

    def __init__(self, cfg, run_dir, store, log):
        self.cfg, self.run_dir, self.store, self.log = cfg, run_dir, store, log
        self.model_cfg, self.train_cfg = cfg["model"], cfg["train"]
        self.train_table = SplitTable(store, cfg["data"]["train_split"])
        self.val_table = SplitTable(store, cfg["data"]["val_split"])
        missing = [CLASSES[c] for c in range(len(CLASSES)) if self.train_table.class_counts()[c] == 0]
        if missing:
            log(f"warning: no training clip of class {', '.join(missing)}")
        log(f"train: {len(self.train_table)} clips, val: {len(self.val_table)} clips")
        self.class_weight = self.train_table.class_weights() if self.train_cfg["class_weights"] else None
        #: clips the embedding cache covers (fold trainers keep all of them, see emonet.crossfit)
        self.cache_keys = list(dict.fromkeys(self.train_table.keys + self.val_table.keys))  # splits may coincide

    def compile_with_loop(self, model, stage, *, epochs, patience=None, learning_rate=None):
        """Compile ``model`` for classification and return its :class:`EpochLoop` in ``stages/<stage>/``.

        The run's optimizer (``train.optimizer``, momentum, weight decay), sparse categorical
        cross-entropy and accuracy; ``patience`` and ``learning_rate`` default to the run's.
        """
        tcfg = self.train_cfg
        learning_rate = tcfg["learning_rate"] if learning_rate is None else learning_rate
        model.compile(optimizer=make_optimizer(tcfg["optimizer"], learning_rate, momentum=tcfg["momentum"],
                                               weight_decay=tcfg["weight_decay"]),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return EpochLoop(self.run_dir / "stages" / stage, stage=stage, epochs=epochs,
                         patience=tcfg["patience"] if patience is None else patience, schedule=tcfg["lr_schedule"],
                         base_lr=learning_rate, log=self.log)

    def fit(self):
        mode = self.model_cfg["mode"]
        if self.train_cfg["folds"] >= 2 and mode != "audio":
            from emonet.training.crossfit import CrossFitter
            CrossFitter(self, self.train_cfg["folds"]).fit()
            return
        needs_video, needs_audio = modes_needing(mode)
        audio = self.fit_reducer() if needs_audio else None
        embeddings = self.fit_video_branch() if needs_video else None
        branches = {}
        if mode == "fusion":  # the single-modality models: the ablation, and the branches to fuse
            (self.run_dir / "ablation").mkdir(exist_ok=True)
            for single in ("audio", "video"):
                branches[single] = self.train_clip_model(single, embeddings, audio,
                                                         self.run_dir / "ablation" / f"{single}.keras")
        if self.train_cfg["fusion_init"] == "scratch":
            branches = {}
        self.train_clip_model(mode, embeddings, audio, self.run_dir / "model.keras", branches=branches)

    # ------------------------------------------------------------------ audio
    def fit_reducer(self):
        """Fit the reducer on training clips with audio; returns reduced (train, val) arrays."""
        train_x = audio_matrix(self.store, self.train_table.keys)
        val_x = audio_matrix(self.store, self.val_table.keys)
        has = self.train_table.has_audio
        reducer = AudioReducer(n_components=self.model_cfg["audio_dim"], mode=self.model_cfg["reducer"],
                               shrinkage=self.model_cfg["reducer_shrinkage"], whiten=self.model_cfg["reducer_whiten"])
        with warnings.catch_warnings(record=True):  # caps are logged from reducer.warnings_ below
            warnings.simplefilter("always")
            reducer.fit(train_x[has], self.train_table.labels[has])
        for message in reducer.warnings_:
            self.log(f"reducer: {message}")
        reducer.save(self.run_dir / "reducer.npz")
        (self.run_dir / "reducer_warnings.json").write_text(json.dumps(reducer.warnings_, indent=2))

        self.log(f"audio reducer ({self.model_cfg['reducer']}): {train_x.shape[1]} -> {reducer.n_components_} dims "
                 f"(fitted on {int(has.sum())} training clips)")
        return (reduce_audio(reducer, train_x, self.train_table.has_audio),
                reduce_audio(reducer, val_x, self.val_table.has_audio))

    # ------------------------------------------------------------------ video branch by schedule
    def fit_video_branch(self):
        """Frame encoder (and, for end_to_end / fine-tuning, the video clip model) by ``train.schedule``.

        - two_stage: stage one, then the cache (the video clip model is trained by :meth:`fit` as before);
          with ``finetune_epochs`` > 0 also the video clip model, then :meth:`finetune_video`;
        - end_to_end: :meth:`train_end_to_end`.

        Returns
        -------
        dict
            ``{key: (T_i, E) float32}`` frame embeddings of the train and val clips, computed with the
            final ``frame_encoder.keras``.
        """
        tcfg = self.train_cfg
        if tcfg["schedule"] == "end_to_end":
            return self.cache_embeddings(self.train_end_to_end(self._video_target()))
        embeddings = self.cache_embeddings(self.train_frame_encoder())
        if tcfg["finetune_epochs"] > 0:
            target = self._video_target()
            clip_model = self.train_clip_model("video", embeddings, None, target)
            embeddings = self.cache_embeddings(self.finetune_video(clip_model, target))
        return embeddings

    def _video_target(self):
        """Where the run keeps its video-only clip model: ablation/video.keras (fusion) or model.keras (video)."""
        if self.model_cfg["mode"] == "fusion":
            (self.run_dir / "ablation").mkdir(exist_ok=True)
            return self.run_dir / "ablation" / "video.keras"
        return self.run_dir / "model.keras"

    def train_end_to_end(self, target):
        """Schedule end_to_end: ResNet-20 + LSTMs + head trained together on frame sequences (stages/end_to_end).

        The best frames-input model is split (:func:`emonet.models.split_video_model`) into
        ``frame_encoder.keras`` and the embeddings-input video model ``target``, the form
        inference reads. Skipped when both exist (resume).

        Returns
        -------
        keras.Model
            The frame encoder, (B, S, S, 3) -> (B, E).
        """
        from emonet.nn.models import build_emonet, split_video_model
        from emonet.nn.io import load_model
        encoder_path = self.run_dir / "frame_encoder.keras"
        if encoder_path.exists() and target.exists():
            self.log("end_to_end: video model already trained (resume)")
            return load_model(encoder_path, compile=False)
        cfg, tcfg = self.model_cfg, self.train_cfg
        model = build_emonet(mode="video", video_input="frames", n_frames=cfg["n_frames"],
                             image_size=cfg["image_size"], embedding_dim=cfg["embedding_dim"],
                             lstm_units=cfg["lstm_units"], head_dropout=cfg["head_dropout"])
        loop = self.compile_with_loop(model, "end_to_end", epochs=tcfg["epochs"])
        best = self._run_sequence_loop(loop, loop.resume_model(model))
        encoder, clip_model = split_video_model(best)
        save_model_atomically(clip_model, target)
        save_model_atomically(encoder, encoder_path)
        self.log(f"end_to_end: best val UAR {loop.state['best_uar']:.3f} at epoch {loop.state['best_epoch']} "
                 f"-> {encoder_path.name}, {target.relative_to(self.run_dir)}")
        return encoder

    def finetune_video(self, clip_model, target):
        """Fine-tune the two-stage video branch end to end (``train.finetune_epochs`` > 0; stages/finetune).

        The frames-input model is assembled from ``frame_encoder.keras`` and ``clip_model``
        (:func:`emonet.models.join_video_model`) and trained at ``learning_rate * finetune_lr_scale``.
        Its val UAR before fine-tuning counts as epoch 0: if no epoch beats it, nothing changes.
        Otherwise the stale ``embeddings.h5`` is deleted and ``frame_encoder.keras`` and ``target``
        are replaced by the split fine-tuned model; the caller rebuilds the cache.
        ``stages/finetune/outcome.json`` marks the stage done (resume).

        Returns
        -------
        keras.Model
            The frame encoder to cache with (fine-tuned or not), loaded from ``frame_encoder.keras``.
        """
        from emonet.nn.models import join_video_model, split_video_model
        from emonet.nn.io import load_model
        encoder_path = self.run_dir / "frame_encoder.keras"
        folder = self.run_dir / "stages" / "finetune"
        outcome_path = folder / "outcome.json"
        if outcome_path.exists():
            self.log("finetune: video branch already fine-tuned (resume)")
            return load_model(encoder_path, compile=False)
        tcfg = self.train_cfg
        lr = tcfg["learning_rate"] * tcfg["finetune_lr_scale"]
        model = join_video_model(load_model(encoder_path, compile=False), clip_model)
        loop = self.compile_with_loop(model, "finetune", epochs=tcfg["finetune_epochs"], learning_rate=lr)
        model = loop.resume_model(model)
        loop.start_from(model, self._score_sequences)
        best = self._run_sequence_loop(loop, model)
        state = loop.state
        improved = state["best_epoch"] > 0
        if improved:
            encoder, fine_clip = split_video_model(best)
            (self.run_dir / "embeddings.h5").unlink(missing_ok=True)  # computed with the old encoder
            save_model_atomically(fine_clip, target)
            save_model_atomically(encoder, encoder_path)
        outcome = {"improved": improved, "best_epoch": state["best_epoch"], "best_uar": state["best_uar"]}
        tmp = outcome_path.with_name(outcome_path.name + ".tmp")
        tmp.write_text(json.dumps(outcome, indent=2))
        os.replace(tmp, outcome_path)
        self.log(f"finetune: best val UAR {state['best_uar']:.3f} at epoch {state['best_epoch']} "
                 + ("-> frame_encoder.keras and the video model replaced" if improved
                    else "(epoch 0: the two-stage model is kept)"))
        return load_model(encoder_path, compile=False)

    def _run_sequence_loop(self, loop, model):
        """Train a frames-input video model with ``loop`` on frame sequences; returns the best model.

        Training clips: random segment offsets and clip-level augmentation, reshuffled every epoch
        (the stream of epoch k is the same after a resume). Validation: centred frames, read once.
        """
        from emonet.nn.io import load_model
        if loop.done:
            return load_model(loop.folder / "best.keras", compile=False)
        cfg, tcfg = self.model_cfg, self.train_cfg
        train_data = sequence_dataset(self.store.path, self.train_table, n_frames=cfg["n_frames"],
                                      image_size=cfg["image_size"], batch_size=tcfg["batch_size"],
                                      augment=tcfg["augment"], seed=self.cfg["seed"], training=True,
                                      epoch=loop.state["epoch"])

        def fit_epoch(model, epoch):
            history = model.fit(train_data, epochs=1, class_weight=self.class_weight, shuffle=False, verbose=0)
            return {k: v[-1] for k, v in history.history.items()}

        return loop.run(model, fit_epoch, self._score_sequences)

    def _score_sequences(self, model):
        """Validation UAR of a frames-input video model (centred frames; the batches are built once)."""
        if getattr(self, "_val_sequences", None) is None:
            self._val_sequences = sequence_dataset(
                self.store.path, self.val_table, n_frames=self.model_cfg["n_frames"],
                image_size=self.model_cfg["image_size"], batch_size=self.train_cfg["batch_size"], training=False)
        proba = np.asarray(model.predict(self._val_sequences, verbose=0))
        return uar(self.val_table.labels, proba.argmax(axis=1))

    # ------------------------------------------------------------------ stage one
    def train_frame_encoder(self):
        from emonet.nn.models import build_frame_classifier, build_resnet20
        from emonet.nn.io import load_model
        target = self.run_dir / "frame_encoder.keras"
        if target.exists():
            self.log("frames: frame encoder already trained (resume)")
            return load_model(target, compile=False)
        cfg, tcfg = self.model_cfg, self.train_cfg
        encoder = build_resnet20(image_size=cfg["image_size"], embedding_dim=cfg["embedding_dim"])
        classifier = build_frame_classifier(encoder)
        loop = self.compile_with_loop(classifier, "frames", epochs=tcfg["frame_epochs"],
                                      patience=max(3, tcfg["patience"] // 2))
        classifier = loop.resume_model(classifier)
        dataset = frame_dataset(self.store.path, self.train_table, frames_per_clip=tcfg["frames_per_clip"],
                                image_size=cfg["image_size"], batch_size=tcfg["batch_size"],
                                augment=tcfg["augment"], seed=self.cfg["seed"])
        val_frames = self._val_frames()

        def fit_epoch(model, epoch):
            history = model.fit(dataset, epochs=1, class_weight=self.class_weight, shuffle=False, verbose=0)
            return {k: v[-1] for k, v in history.history.items()}

        def score(model):
            proba = np.asarray(model.predict(val_frames, batch_size=256, verbose=0))
            clip_proba = proba.reshape(len(self.val_table), VAL_FRAMES_PER_CLIP, -1).mean(axis=1)
            return uar(self.val_table.labels, clip_proba.argmax(axis=1))

        if loop.done:
            best = load_model(loop.folder / "best.keras", compile=False)
        else:
            best = loop.run(classifier, fit_epoch, score)
        encoder = best.get_layer("frame_encoder")
        save_model_atomically(encoder, target)
        self.log(f"frames: best val UAR {loop.state['best_uar']:.3f} at epoch {loop.state['best_epoch']}")
        return encoder

    def _val_frames(self):
        """VAL_FRAMES_PER_CLIP centred face crops per validation clip, ready for the CNN."""
        crops = []
        for key in self.val_table.keys:
            faces = self.store.clip(key)["faces"]
            index, _ = sample_indices(faces.shape[0], VAL_FRAMES_PER_CLIP)
            picked = faces[()][index] if faces.shape[0] else np.zeros((VAL_FRAMES_PER_CLIP,) + faces.shape[1:],
                                                                      np.uint8)
            crops.append(picked)
        return np.asarray(prepare_faces(np.concatenate(crops), self.model_cfg["image_size"]))

    # ------------------------------------------------------------------ cache
    def cache_embeddings(self, encoder):
        """Embed every frame of the train and val clips once; returns {key: (T, E) float32}."""
        cache = self.run_dir / "embeddings.h5"
        keys = self.cache_keys
        if cache.exists():
            with h5py.File(cache, "r") as f:
                if all(k in f["clips"] for k in keys):
                    self.log("cache: frame embeddings already cached (resume)")
                    return {k: f["clips"][k][()] for k in keys}
        start = time.perf_counter()
        out = {key: embed_faces(encoder, clip_frames(self.store.clip(key)), self.model_cfg["image_size"])
               for key in keys}
        write_embedding_cache(cache, self.store.path, out)
        n = sum(len(e) for e in out.values())
        self.log(f"cache: {n} frames of {len(keys)} clips embedded in {time.perf_counter() - start:.0f} s")
        return out

    # ------------------------------------------------------------------ stage two
    def train_clip_model(self, mode, embeddings, audio, target, *, branches=None):
        """Stage two for one mode; ``branches`` (mode -> trained single-modality model) seeds and
        freezes the fusion model's encoders, so only the fusion head is trained."""
        from emonet.nn.models import build_emonet
        from emonet.nn.io import load_model
        if target.exists():
            self.log(f"{mode}: clip model {target.name} already trained, loaded (resume or an earlier stage)")
            return load_model(target, compile=False)
        cfg, tcfg = self.model_cfg, self.train_cfg
        needs_video, needs_audio = modes_needing(mode)
        model = build_emonet(mode=mode, video_input="embeddings", n_frames=cfg["n_frames"],
                             embedding_dim=cfg["embedding_dim"], lstm_units=cfg["lstm_units"],
                             audio_dim=audio[0].shape[1] if needs_audio else cfg["audio_dim"],
                             head_dropout=cfg["head_dropout"])
        for single, trained in (branches or {}).items():
            name = f"{single}_encoder"
            model.get_layer(name).set_weights(trained.get_layer(name).get_weights())
            model.get_layer(name).trainable = False
        loop = self.compile_with_loop(model, mode, epochs=tcfg["epochs"])
        model = loop.resume_model(model)
        tables = (self.train_table, self.val_table)
        train_emb = [embeddings[k] for k in tables[0].keys] if needs_video else None
        val_emb = [embeddings[k] for k in tables[1].keys] if needs_video else None

        def inputs(emb, audio_x, rng):
            batch = {}
            if needs_video:
                batch["frame_embeddings"], batch["frame_mask"] = sequence_batch(emb, cfg["n_frames"], rng=rng)
            if needs_audio:
                batch["audio"] = audio_x
            return batch

        val_inputs = inputs(val_emb, audio[1] if needs_audio else None, None)

        noise_scale = tcfg["embedding_noise"] * _embedding_std(train_emb) if needs_video else 0.0
        audio_noise = tcfg["audio_noise"] * audio[0].std(axis=0) if needs_audio else 0.0

        def fit_epoch(model, epoch):
            rng = np.random.default_rng([self.cfg["seed"], epoch])
            x = inputs(train_emb, audio[0] if needs_audio else None, rng)
            _regularise(x, rng, noise_scale=noise_scale, audio_noise=audio_noise,
                        modality_dropout=tcfg["modality_dropout"] if mode == "fusion" else 0.0)
            history = model.fit(x, tables[0].labels, batch_size=tcfg["batch_size"], epochs=1, shuffle=True,
                                class_weight=self.class_weight, verbose=0)
            return {k: v[-1] for k, v in history.history.items()}

        def score(model):
            proba = np.asarray(model.predict(val_inputs, batch_size=256, verbose=0))
            return uar(tables[1].labels, proba.argmax(axis=1))

        best = load_model(loop.folder / "best.keras", compile=False) if loop.done else loop.run(model, fit_epoch, score)
        save_model_atomically(best, target)
        self.log(f"{mode}: best val UAR {loop.state['best_uar']:.3f} at epoch {loop.state['best_epoch']} -> {target}")
        return best


def _embedding_std(embeddings):
    """Per-dimension standard deviation of the training frame embeddings, shape (E,)."""
    stacked = np.concatenate([e for e in embeddings if len(e)])
    return stacked.std(axis=0).astype(np.float32)


def _regularise(batch, rng, *, noise_scale, audio_noise, modality_dropout):
    """Stage-two training noise, in place on an input dict.

    Cached embeddings of training clips are cleaner than those of unseen clips
    (the frame CNN was fitted on them), and the fusion head would learn to
    trust video alone; the reduced audio vectors of the few distinct training
    utterances are memorised as easily. Gaussian noise on the embeddings
    (``noise_scale`` per dimension) and on the audio vector (``audio_noise``
    per dimension), and *modality dropout* -- hiding the video (mask 0) or the audio
    (zero vector, the same input as a clip without audio) of a share of the
    clips -- make the head use both branches and cope with a missing one.
    """
    if "frame_embeddings" in batch and np.any(noise_scale):
        x = batch["frame_embeddings"]
        x += rng.normal(size=x.shape).astype(np.float32) * noise_scale * batch["frame_mask"][..., None]
    if "audio" in batch and np.any(audio_noise):
        batch["audio"] = batch["audio"] + rng.normal(size=batch["audio"].shape).astype(np.float32) * audio_noise
    if modality_dropout > 0 and "frame_mask" in batch and "audio" in batch:
        n = len(batch["audio"])
        hide = rng.uniform(size=n) < modality_dropout
        hide_video = hide & (rng.uniform(size=n) < 0.5)
        batch["frame_mask"] = batch["frame_mask"] * ~hide_video[:, None]
        batch["frame_embeddings"] = batch["frame_embeddings"] * ~hide_video[:, None, None]
        batch["audio"] = batch["audio"] * ~(hide & ~hide_video)[:, None]
