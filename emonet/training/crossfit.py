"""Cross-fitted training (``train.folds`` >= 2): fold models, out-of-fold predictions, stacked fusion head.

:mod:`emonet.ensemble` explains why; this module runs the stages with the ordinary
:mod:`emonet.train` machinery, one *fold trainer* per fold (same store, same
validation split, training clips of the other folds only, outputs under
``folds/<name>/`` of the run directory)::

    folds/video<k>/   frame_encoder.keras, embeddings.h5, model.keras, stages/   (k = 0 .. K-1)
    folds/audio<k>/   reducer.npz, model.keras, stages/
    frame_encoder.keras   the K fold encoders joined: crop -> (K * E,) embedding
    embeddings.h5         the fold caches concatenated per frame (K * E)
    ablation/video.keras  the video branch: mean of the K fold video models (model.keras in a video run)
    ablation/audio.keras  the audio branch: trained on all training clips
    stages/fusion/        the fusion head, trained on out-of-fold branch predictions
    model.keras           branches + head, one model (inputs as every other run)

Video folds are face-subject-disjoint (:func:`emonet.ensemble.person_of` groups the
sequences of one person), audio folds speaker-disjoint. Every stage resumes like the
rest of the run.
"""

import copy

import numpy as np

from emonet.features.inputs import audio_matrix, sequence_batch
from emonet.nn.fusion import (build_fusion_head, build_stacked_fusion, build_video_ensemble, fit_pool_weight,
                       group_folds, join_frame_encoders, log_probabilities, person_of, pool_weight, set_pool_weight)
from emonet.nn.io import save_model_atomically
from emonet.training.loop import uar
from emonet.features.reducer import AudioReducer
from emonet.features.embedding import reduce_audio, write_embedding_cache


#: An epoch of the fusion head is at least this many optimizer steps (passes over a small training set repeat).
MIN_HEAD_STEPS = 20


def fold_trainer(trainer, name, keep, *, mode):
    """A copy of ``trainer`` for one fold: training clips ``keep`` only, ``mode``, outputs in ``folds/<name>/``."""
    fold = copy.copy(trainer)
    fold.cfg = copy.deepcopy(trainer.cfg)
    fold.cfg["model"]["mode"] = mode
    fold.cfg["train"]["finetune_epochs"] = trainer.train_cfg["finetune_epochs"] if mode == "video" else 0
    fold.model_cfg, fold.train_cfg = fold.cfg["model"], fold.cfg["train"]
    fold.run_dir = trainer.run_dir / "folds" / name
    fold.run_dir.mkdir(parents=True, exist_ok=True)
    fold.train_table = trainer.train_table.subset(keep)
    fold.class_weight = fold.train_table.class_weights() if fold.train_cfg["class_weights"] else None
    fold.log = lambda message: trainer.log(f"[{name}] {message}")
    fold._val_sequences = None
    return fold


class CrossFitter:
    """Trains a cross-fitted video or fusion run with ``n_folds`` folds (see the module docstring).

    Parameters
    ----------
    trainer : emonet.train._Trainer
        The run's trainer (config, run directory, store, splits, logging).
    n_folds : int >= 2
    """

    def __init__(self, trainer, n_folds):
        self.trainer, self.n_folds = trainer, n_folds
        self.table = trainer.train_table
        self.run_dir, self.log = trainer.run_dir, trainer.log
        self.n_frames = trainer.model_cfg["n_frames"]

    def fit(self):
        mode = self.trainer.model_cfg["mode"]
        audio = self.trainer.fit_reducer() if mode == "fusion" else None
        video_branch, oof_video, val_video = self.fit_video(ablation=mode == "fusion")
        if mode == "video":
            return
        audio_branch = self.trainer.train_clip_model("audio", None, audio, self.run_dir / "ablation" / "audio.keras")
        oof_audio = self.audio_out_of_fold()
        val_audio = np.asarray(audio_branch.predict(audio[1], verbose=0, batch_size=256))
        no_audio = np.asarray(audio_branch.predict(np.zeros((1, audio[1].shape[1]), np.float32), verbose=0))[0]
        empty = {"frame_embeddings": np.zeros((1,) + tuple(video_branch.inputs[0].shape[1:]), np.float32),
                 "frame_mask": np.zeros((1, self.n_frames), np.float32)}
        no_video = np.asarray(video_branch.predict(empty, verbose=0))[0]
        head = self.train_head(oof_video, oof_audio, val_video, val_audio, no_video=no_video, no_audio=no_audio)
        model = build_stacked_fusion(video_branch, audio_branch, head)
        save_model_atomically(model, self.run_dir / "model.keras")
        self.log(f"fusion: branches + head -> {self.run_dir / 'model.keras'}")

    # ------------------------------------------------------------------ video
    def fit_video(self, *, ablation):
        """Fold video models, the joined encoder and cache, the ensemble branch.

        Returns
        -------
        video_branch : keras.Model
            Mean of the fold models on the joined embeddings.
        oof : np.ndarray [shape=(n_train, 7)]
            Each training clip scored by the fold model that never saw its face subject.
        val : np.ndarray [shape=(n_val, 7)]
            The branch's probabilities for the validation clips.
        """
        from emonet.nn.io import load_model
        folds = self._folds([person_of(s) for s in self.table.subjects], "face subjects")
        self._log_folds("video", folds, [person_of(s) for s in self.table.subjects], "face subjects")
        caches, models = [], []
        oof = np.zeros((len(self.table), 7), np.float32)
        for k in range(self.n_folds):
            fold = fold_trainer(self.trainer, f"video{k}", folds != k, mode="video")
            embeddings = fold.fit_video_branch()
            model = fold.train_clip_model("video", embeddings, None, fold.run_dir / "model.keras")
            held = np.flatnonzero(folds == k)
            oof[held] = self._predict_video(model, [embeddings[self.table.keys[i]] for i in held])
            caches.append(embeddings)
            models.append(model)
        encoders = [load_model(self.run_dir / "folds" / f"video{k}" / "frame_encoder.keras", compile=False)
                    for k in range(self.n_folds)]
        save_model_atomically(join_frame_encoders(encoders), self.run_dir / "frame_encoder.keras")
        joined = {key: np.concatenate([cache[key] for cache in caches], axis=1) for key in caches[0]}
        write_embedding_cache(self.run_dir / "embeddings.h5", self.trainer.store.path, joined)
        branch = build_video_ensemble(models, n_frames=self.n_frames,
                                      embedding_dim=self.trainer.model_cfg["embedding_dim"])
        target = self.run_dir / ("ablation/video.keras" if ablation else "model.keras")
        target.parent.mkdir(exist_ok=True)
        save_model_atomically(branch, target)
        val = self._predict_video(branch, [joined[key] for key in self.trainer.val_table.keys])
        val_uar = uar(self.trainer.val_table.labels, val.argmax(1))
        self.log(f"video: {self.n_folds}-fold ensemble, val UAR {val_uar:.3f}, "
                 f"out-of-fold training UAR {uar(self.table.labels, oof.argmax(1)):.3f} -> {target}")
        return branch, oof, val

    def _predict_video(self, model, embeddings):
        x, mask = sequence_batch(embeddings, self.n_frames)
        return np.asarray(model.predict({"frame_embeddings": x, "frame_mask": mask}, verbose=0, batch_size=256))

    # ------------------------------------------------------------------ audio
    def audio_out_of_fold(self):
        """Each training clip's audio probabilities from a model (and reducer) that never heard its speaker.

        Returns
        -------
        np.ndarray [shape=(n_train, 7)]
        """
        folds = self._folds(self.table.speakers, "speakers")
        self._log_folds("audio", folds, self.table.speakers, "speakers")
        oof = np.zeros((len(self.table), 7), np.float32)
        for k in range(self.n_folds):
            fold = fold_trainer(self.trainer, f"audio{k}", folds != k, mode="audio")
            reduced = fold.fit_reducer()
            model = fold.train_clip_model("audio", None, reduced, fold.run_dir / "model.keras")
            reducer = AudioReducer.load(fold.run_dir / "reducer.npz")
            held = self.table.subset(folds == k)
            x = reduce_audio(reducer, audio_matrix(self.trainer.store, held.keys), held.has_audio)
            oof[folds == k] = np.asarray(model.predict(x, verbose=0, batch_size=256))
        self.log(f"audio: out-of-fold training UAR {uar(self.table.labels, oof.argmax(1)):.3f}")
        return oof

    def _folds(self, groups, what):
        """Group-disjoint folds; with fewer known groups than folds, clip-level folds and a warning."""
        if len({g for g in groups if g}) < self.n_folds:
            self.log(f"warning: fewer than {self.n_folds} known {what} in the training split; folds are drawn "
                     f"clip by clip, so out-of-fold predictions may have seen the same {what[:-1]}")
            groups = [None] * len(groups)
        return group_folds(groups, self.n_folds, seed=self.trainer.cfg["seed"])

    def _log_folds(self, branch, folds, groups, what):
        parts = [f"{int((folds == k).sum())} clips / {len({g for g, f in zip(groups, folds) if f == k})} {what}"
                 for k in range(self.n_folds)]
        self.log(f"{branch} folds: " + "; ".join(parts))
        if not all(groups):
            self.log(f"warning: some training clips have no known {what}; those are assigned to folds one by one, "
                     f"so their folds are not {what}-disjoint")

    # ------------------------------------------------------------------ head
    def train_head(self, oof_video, oof_audio, val_video, val_audio, *, no_video, no_audio):
        """The fusion head: a pool weight fitted on out-of-fold predictions, then the MLP correction.

        First the video weight ``alpha`` of the head's pool (:class:`emonet.ensemble.BranchPool`)
        is fitted by maximum likelihood on the out-of-fold branch predictions of the training
        clips (:func:`emonet.ensemble.fit_pool_weight`); it stays fixed. The pool with an
        untrained (zero) correction is recorded as epoch 0, and the correction MLP is then
        trained on the same out-of-fold log-probabilities and kept only if an epoch beats the
        pool on validation UAR.

        Modality dropout: each epoch a ``modality_dropout`` share of the training clips
        has one branch replaced by what that branch outputs for a clip without it
        (``no_video``, ``no_audio``, shape (7,)) and its presence flag set to 0, so the head
        copes with silent clips and clips without a face.
        """
        from emonet.nn.io import load_model
        trainer, tcfg = self.trainer, self.trainer.train_cfg
        labels, val_table = self.table.labels, trainer.val_table
        head = build_fusion_head(dropout=trainer.model_cfg["head_dropout"])
        loop = trainer.compile_with_loop(head, "fusion", epochs=tcfg["epochs"])
        head = loop.resume_model(head)
        np.savez(loop.folder / "out_of_fold.npz", video=oof_video, audio=oof_audio, labels=labels,
                 val_video=val_video, val_audio=val_audio, val_labels=val_table.labels)
        has_video, has_audio = self.table.n_frames > 0, self.table.has_audio
        if not loop.done:
            both = has_video & has_audio
            weight = None if trainer.class_weight is None else np.array([trainer.class_weight[c] for c in labels])
            alpha = fit_pool_weight(oof_video[both], oof_audio[both], labels[both],
                                    sample_weight=None if weight is None else weight[both])
            set_pool_weight(head, alpha)
            self.log(f"fusion pool: video weight {alpha:.3f}, audio weight {1 - alpha:.3f} "
                     f"(fitted on out-of-fold predictions; out-of-fold UAR "
                     f"{uar(labels, (alpha * oof_video + (1 - alpha) * oof_audio).argmax(1)):.3f})")
        train_inputs = {"video_logp": log_probabilities(oof_video), "audio_logp": log_probabilities(oof_audio),
                        "has_video": presence(has_video), "has_audio": presence(has_audio)}
        val_inputs = {"video_logp": log_probabilities(val_video), "audio_logp": log_probabilities(val_audio),
                      "has_video": presence(val_table.n_frames > 0), "has_audio": presence(val_table.has_audio)}
        hidden_v, hidden_a = log_probabilities(no_video), log_probabilities(no_audio)

        def fit_epoch(model, epoch):
            rng = np.random.default_rng([trainer.cfg["seed"], epoch])
            x = {key: value.copy() for key, value in train_inputs.items()}
            hide = rng.uniform(size=len(labels)) < tcfg["modality_dropout"]
            hide_video = hide & (rng.uniform(size=len(labels)) < 0.5)
            hide_audio = hide & ~hide_video
            x["video_logp"][hide_video], x["has_video"][hide_video] = hidden_v, 0.0
            x["audio_logp"][hide_audio], x["has_audio"][hide_audio] = hidden_a, 0.0
            passes = max(1, -(-MIN_HEAD_STEPS * tcfg["batch_size"] // len(labels)))
            history = model.fit(x, labels, batch_size=tcfg["batch_size"], epochs=passes, shuffle=True,
                                class_weight=trainer.class_weight, verbose=0)
            return {key: values[-1] for key, values in history.history.items()}

        def score(model):
            return uar(val_table.labels, np.asarray(model.predict(val_inputs, verbose=0)).argmax(axis=1))

        loop.start_from(head, score)  # epoch 0 = the fitted pool: the correction must beat it on validation
        best = load_model(loop.folder / "best.keras", compile=False) if loop.done else loop.run(head, fit_epoch, score)
        self.log(f"fusion head: video weight {pool_weight(best):.3f}, best val UAR {loop.state['best_uar']:.3f} "
                 f"at epoch {loop.state['best_epoch']}")
        return best


def presence(flags):
    """Booleans (n,) -> the head's presence input (n, 1) float32."""
    return np.asarray(flags, np.float32).reshape(-1, 1)
