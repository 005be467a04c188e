"""Cross-fitted training (``train.folds`` >= 2): fold models, out-of-fold predictions, stacked fusion head.

:mod:`emonet.nn.fusion` explains why. This module composes the ordinary stages, one fold
context per fold (:meth:`emonet.training.context.RunContext.fold`: same store, same
validation split, training clips of the other folds only, outputs under ``folds/<name>/``
of the run folder)::

    folds/video<k>/   frame_encoder.keras, embeddings.h5, model.keras, stages/   (k = 0 .. K-1)
    folds/audio<k>/   reducer.npz, model.keras, stages/
    frame_encoder.keras   the K fold encoders joined: crop -> (K * E,) embedding
    embeddings.h5         the fold caches concatenated per frame (K * E)
    ablation/video.keras  the video branch: mean of the K fold video models (model.keras in a video run)
    ablation/audio.keras  the audio branch: trained on all training clips
    stages/fusion/        the fusion head, trained on out-of-fold branch predictions (out_of_fold.npz)
    model.keras           branches + head, one model (inputs as every other run)

Video folds are face-subject-disjoint (:func:`emonet.training.folds.person_of` groups the
sequences of one person), audio folds speaker-disjoint. Every stage resumes like the
rest of the run.
"""

import numpy as np

from preprocessing.files import atomic_path

from emonet.evaluation.metrics import uar
from emonet.features.datasets import sequence_batch
from emonet.features.embedding import reduce_audio, write_embedding_cache
from emonet.features.reducer import AudioReducer
from emonet.features.tables import audio_matrix
from emonet.nn.fusion import (build_fusion_head, build_stacked_fusion, build_video_ensemble, join_frame_encoders,
                              log_probabilities, pool_weight, set_pool_weight)
from emonet.nn.io import load_model, save_model_atomically
from emonet.training.branches import train_video_branch
from emonet.training.clip_model import ClipModelStage
from emonet.training.folds import fit_pool_weight, group_folds, person_of
from emonet.training.stages import ReducerStage

#: An epoch of the fusion head is at least this many optimizer steps (passes over a small training set repeat).
MIN_HEAD_STEPS = 20


class CrossFitter:
    """Trains a cross-fitted video or fusion run with ``n_folds`` folds (see the module docstring).

    Parameters
    ----------
    context : emonet.training.context.RunContext
        The whole run's context.
    n_folds : int >= 2
    """

    def __init__(self, context, n_folds):
        self.context, self.n_folds = context, n_folds
        self.table, self.run, self.log = context.train_table, context.run, context.log
        self.n_frames = context.cfg.model.n_frames

    def fit(self):
        mode = self.context.cfg.model.mode
        audio = ReducerStage(self.context).run() if mode == "fusion" else None
        video_branch, oof_video, val_video = self.fit_video(ablation=mode == "fusion")
        if mode == "video":
            return
        audio_branch = ClipModelStage(self.context).train("audio", self.run.ablation_path("audio"), audio=audio)
        oof_audio = self.audio_out_of_fold()
        val_audio = np.asarray(audio_branch.predict(audio[1], verbose=0, batch_size=256))
        no_audio = np.asarray(audio_branch.predict(np.zeros((1, audio[1].shape[1]), np.float32), verbose=0))[0]
        empty = {"frame_embeddings": np.zeros((1,) + tuple(video_branch.inputs[0].shape[1:]), np.float32),
                 "frame_mask": np.zeros((1, self.n_frames), np.float32)}
        no_video = np.asarray(video_branch.predict(empty, verbose=0))[0]
        head = self.train_head(oof_video, oof_audio, val_video, val_audio, no_video=no_video, no_audio=no_audio)
        model = build_stacked_fusion(video_branch, audio_branch, head)
        save_model_atomically(model, self.run.model_path)
        self.log.info(f"fusion: branches + head -> {self.run.model_path}")

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
        persons = [person_of(s) for s in self.table.subjects]
        folds = self.folds(persons, "face subjects")
        self.log_folds("video", folds, persons, "face subjects")
        caches, models, encoder_paths = [], [], []
        oof = np.zeros((len(self.table), 7), np.float32)
        for k in range(self.n_folds):
            fold = self.context.fold(f"video{k}", folds != k, mode="video")
            embeddings = train_video_branch(fold)
            model = ClipModelStage(fold).train("video", fold.run.model_path, embeddings=embeddings)
            held = np.flatnonzero(folds == k)
            oof[held] = self.predict_video(model, [embeddings[self.table.keys[i]] for i in held])
            caches.append(embeddings)
            models.append(model)
            encoder_paths.append(fold.run.frame_encoder_path)
        encoders = [load_model(path, compile=False) for path in encoder_paths]
        save_model_atomically(join_frame_encoders(encoders), self.run.frame_encoder_path)
        joined = {key: np.concatenate([cache[key] for cache in caches], axis=1) for key in caches[0]}
        write_embedding_cache(self.run.embeddings_path, self.context.store.path, joined)
        branch = build_video_ensemble(models, n_frames=self.n_frames, embedding_dim=self.context.cfg.model.embedding_dim)
        target = self.run.ablation_path("video") if ablation else self.run.model_path
        target.parent.mkdir(exist_ok=True)
        save_model_atomically(branch, target)
        val_table = self.context.val_table
        val = self.predict_video(branch, [joined[key] for key in val_table.keys])
        self.log.info(f"video: {self.n_folds}-fold ensemble, val UAR {uar(val_table.labels, val.argmax(1)):.3f}, "
                      f"out-of-fold training UAR {uar(self.table.labels, oof.argmax(1)):.3f} -> {target}")
        return branch, oof, val

    def predict_video(self, model, embeddings):
        """Probabilities [shape=(n, 7)] of a video model on clips' frame embeddings (centred frames)."""
        x, mask = sequence_batch(embeddings, self.n_frames)
        return np.asarray(model.predict({"frame_embeddings": x, "frame_mask": mask}, verbose=0, batch_size=256))

    # ------------------------------------------------------------------ audio
    def audio_out_of_fold(self):
        """Each training clip's audio probabilities from a model (and reducer) that never heard its speaker.

        Returns
        -------
        np.ndarray [shape=(n_train, 7)]
        """
        folds = self.folds(self.table.speakers, "speakers")
        self.log_folds("audio", folds, self.table.speakers, "speakers")
        oof = np.zeros((len(self.table), 7), np.float32)
        for k in range(self.n_folds):
            fold = self.context.fold(f"audio{k}", folds != k, mode="audio")
            reduced = ReducerStage(fold).run()
            model = ClipModelStage(fold).train("audio", fold.run.model_path, audio=reduced)
            reducer = AudioReducer.load(fold.run.reducer_path)
            held = self.table.subset(folds == k)
            x = reduce_audio(reducer, audio_matrix(self.context.store, held.keys), held.has_audio)
            oof[folds == k] = np.asarray(model.predict(x, verbose=0, batch_size=256))
        self.log.info(f"audio: out-of-fold training UAR {uar(self.table.labels, oof.argmax(1)):.3f}")
        return oof

    def folds(self, groups, what):
        """Group-disjoint folds; with fewer known groups than folds, clip-level folds and a warning."""
        if len({g for g in groups if g}) < self.n_folds:
            self.log.warning(f"warning: fewer than {self.n_folds} known {what} in the training split; folds are "
                             f"drawn clip by clip, so out-of-fold predictions may have seen the same {what[:-1]}")
            groups = [None] * len(groups)
        return group_folds(groups, self.n_folds, seed=self.context.cfg.seed)

    def log_folds(self, branch, folds, groups, what):
        """One line of fold sizes (clips / groups), and a warning when some clips have no group."""
        parts = [f"{int((folds == k).sum())} clips / {len({g for g, f in zip(groups, folds) if f == k})} {what}"
                 for k in range(self.n_folds)]
        self.log.info(f"{branch} folds: " + "; ".join(parts))
        if not all(groups):
            self.log.warning(f"warning: some training clips have no known {what}; those are assigned to folds one "
                             f"by one, so their folds are not {what}-disjoint")

    # ------------------------------------------------------------------ head
    def train_head(self, oof_video, oof_audio, val_video, val_audio, *, no_video, no_audio):
        """The fusion head: a pool weight fitted on out-of-fold predictions, then the MLP correction.

        First the video weight ``alpha`` of the head's pool (:class:`emonet.nn.layers.BranchPool`)
        is fitted by maximum likelihood on the out-of-fold branch predictions of the training
        clips (:func:`emonet.training.folds.fit_pool_weight`); it stays fixed. The pool with an
        untrained (zero) correction is recorded as epoch 0, and the correction MLP is then
        trained on the same out-of-fold log-probabilities and kept only if an epoch beats the
        pool on validation UAR.

        Modality dropout: each epoch a ``modality_dropout`` share of the training clips
        has one branch replaced by what that branch outputs for a clip without it
        (``no_video``, ``no_audio``, shape (7,)) and its presence flag set to 0, so the head
        copes with silent clips and clips without a face. An epoch is several passes over a
        small training set (at least :data:`MIN_HEAD_STEPS` optimizer steps).
        """
        ctx, train = self.context, self.context.cfg.train
        labels, val_table = self.table.labels, ctx.val_table
        head = build_fusion_head(dropout=ctx.cfg.model.head_dropout)
        loop = ctx.stage_loop(head, "fusion", epochs=train.epochs)
        head = loop.resume_model(head)
        with atomic_path(loop.folder.out_of_fold_path) as tmp:
            np.savez(tmp, video=oof_video, audio=oof_audio, labels=labels, val_video=val_video,
                     val_audio=val_audio, val_labels=val_table.labels)
        has_video, has_audio = self.table.n_frames > 0, self.table.has_audio
        if not loop.done:
            both = has_video & has_audio
            weight = None if ctx.class_weight is None else np.array([ctx.class_weight[c] for c in labels])
            alpha = fit_pool_weight(oof_video[both], oof_audio[both], labels[both],
                                    sample_weight=None if weight is None else weight[both])
            set_pool_weight(head, alpha)
            self.log.info(f"fusion pool: video weight {alpha:.3f}, audio weight {1 - alpha:.3f} "
                          f"(fitted on out-of-fold predictions; out-of-fold UAR "
                          f"{uar(labels, (alpha * oof_video + (1 - alpha) * oof_audio).argmax(1)):.3f})")
        train_inputs = {"video_logp": log_probabilities(oof_video), "audio_logp": log_probabilities(oof_audio),
                        "has_video": presence(has_video), "has_audio": presence(has_audio)}
        val_inputs = {"video_logp": log_probabilities(val_video), "audio_logp": log_probabilities(val_audio),
                      "has_video": presence(val_table.n_frames > 0), "has_audio": presence(val_table.has_audio)}
        hidden_v, hidden_a = log_probabilities(no_video), log_probabilities(no_audio)

        def fit_epoch(model, epoch):
            rng = np.random.default_rng([ctx.cfg.seed, epoch])
            x = {key: value.copy() for key, value in train_inputs.items()}
            hide = rng.uniform(size=len(labels)) < train.modality_dropout
            hide_video = hide & (rng.uniform(size=len(labels)) < 0.5)
            hide_audio = hide & ~hide_video
            x["video_logp"][hide_video], x["has_video"][hide_video] = hidden_v, 0.0
            x["audio_logp"][hide_audio], x["has_audio"][hide_audio] = hidden_a, 0.0
            passes = max(1, -(-MIN_HEAD_STEPS * train.batch_size // len(labels)))
            history = model.fit(x, labels, batch_size=train.batch_size, epochs=passes, shuffle=True,
                                class_weight=ctx.class_weight, verbose=0)
            return {key: values[-1] for key, values in history.history.items()}

        def score(model):
            return uar(val_table.labels, np.asarray(model.predict(val_inputs, verbose=0)).argmax(axis=1))

        loop.start_from(head, score)  # epoch 0 = the fitted pool: the correction must beat it on validation
        best = loop.kept_model() if loop.done else loop.run(head, fit_epoch, score)
        self.log.info(f"fusion head: video weight {pool_weight(best):.3f}, best val UAR {loop.state['best_uar']:.3f} "
                      f"at epoch {loop.state['best_epoch']}")
        return best


def presence(flags):
    """Booleans (n,) -> the head's presence input (n, 1) float32."""
    return np.asarray(flags, np.float32).reshape(-1, 1)
