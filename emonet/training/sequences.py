"""The video branch trained end to end on frame sequences: ``schedule: end_to_end`` and fine-tuning.

Both train the frames-input video model (``TimeDistributed(ResNet-20)`` + LSTMs + head) on
sequences streamed from the store (:func:`emonet.features.datasets.sequence_dataset`), then
split its best epoch (:func:`emonet.nn.video.split_video_model`) into ``frame_encoder.keras``
and the embeddings-input video model, the form the cache, later stages and inference read.
"""

import numpy as np

from emonet.evaluation.metrics import uar
from emonet.features.datasets import sequence_dataset
from emonet.nn.io import load_model, save_model_atomically
from emonet.nn.models import build_emonet
from emonet.nn.video import join_video_model, split_video_model


class SequenceTraining:
    """What both sequence stages share: the training stream and the validation score.

    Parameters
    ----------
    context : emonet.training.context.RunContext
    """

    def __init__(self, context):
        self.context = context
        self.val_sequences = None

    def train(self, loop, model):
        """Train a frames-input video model with ``loop``; returns the best (or ``train.keep: last``, last) model.

        Training clips: random segment offsets and clip-level augmentation, reshuffled every epoch
        (the stream of epoch k is the same after a resume). Validation: centred frames, read once.
        """
        if loop.done:
            return loop.kept_model()
        ctx = self.context
        model_cfg, train = ctx.cfg.model, ctx.cfg.train
        data = sequence_dataset(ctx.store.path, ctx.train_table, n_frames=model_cfg.n_frames,
                                image_size=model_cfg.image_size, batch_size=train.batch_size, augment=train.augment,
                                seed=ctx.cfg.seed, training=True, epoch=loop.state["epoch"])
        return loop.fit(model, data, self.score, class_weight=ctx.class_weight, shuffle=False)

    def score(self, model):
        """Validation UAR of a frames-input video model (centred frames; the batches are built once)."""
        ctx = self.context
        if self.val_sequences is None:
            self.val_sequences = sequence_dataset(
                ctx.store.path, ctx.val_table, n_frames=ctx.cfg.model.n_frames, image_size=ctx.cfg.model.image_size,
                batch_size=ctx.cfg.train.batch_size, training=False)
        proba = np.asarray(model.predict(self.val_sequences, verbose=0))
        return uar(ctx.val_table.labels, proba.argmax(axis=1))


class EndToEndStage(SequenceTraining):
    """``schedule: end_to_end``: ResNet-20 + LSTMs + head trained together from scratch (``stages/end_to_end``)."""

    def run(self, target):
        """Train, then split the best model into ``frame_encoder.keras`` and the video model ``target``.

        Skipped when both exist (resume).

        Returns
        -------
        keras.Model
            The frame encoder, (B, S, S, 3) -> (B, E).
        """
        ctx = self.context
        encoder_path = ctx.run.frame_encoder_path
        if encoder_path.exists() and target.exists():
            ctx.log.info("end_to_end: video model already trained (resume)")
            return load_model(encoder_path, compile=False)
        model_cfg = ctx.cfg.model
        model = build_emonet(mode="video", video_input="frames", n_frames=model_cfg.n_frames,
                             image_size=model_cfg.image_size, embedding_dim=model_cfg.embedding_dim,
                             lstm_units=model_cfg.lstm_units, head_dropout=model_cfg.head_dropout)
        loop = ctx.stage_loop(model, "end_to_end", epochs=ctx.cfg.train.epochs)
        best = self.train(loop, loop.resume_model(model))
        encoder, clip_model = split_video_model(best)
        save_model_atomically(clip_model, target)
        save_model_atomically(encoder, encoder_path)
        ctx.log.info(f"end_to_end: best val UAR {loop.state['best_uar']:.3f} at epoch {loop.state['best_epoch']} "
                     f"-> {encoder_path.name}, {target.relative_to(ctx.run.path)}")
        return encoder


class FinetuneStage(SequenceTraining):
    """Fine-tunes the two-stage video branch end to end (``train.finetune_epochs`` > 0; ``stages/finetune``).

    The frames-input model is assembled from ``frame_encoder.keras`` and the video clip model
    (:func:`emonet.nn.video.join_video_model`) and trained at ``learning_rate * finetune_lr_scale``.
    Its val UAR before fine-tuning counts as epoch 0 (:meth:`EpochLoop.start_from`): if no epoch
    beats it, nothing changes. Otherwise the stale ``embeddings.h5`` is deleted and
    ``frame_encoder.keras`` and the video model are replaced by the split fine-tuned model; the
    caller rebuilds the cache. ``outcome.json`` marks the stage done (resume).
    """

    def run(self, clip_model, target):
        """Fine-tune ``clip_model`` (saved at ``target``) with the run's frame encoder.

        Returns
        -------
        keras.Model
            The frame encoder to cache with (fine-tuned or not), loaded from ``frame_encoder.keras``.
        """
        ctx = self.context
        encoder_path = ctx.run.frame_encoder_path
        outcome_path = ctx.run.stage("finetune").outcome_path
        if outcome_path.exists():
            ctx.log.info("finetune: video branch already fine-tuned (resume)")
            return load_model(encoder_path, compile=False)
        train = ctx.cfg.train
        model = join_video_model(load_model(encoder_path, compile=False), clip_model)
        loop = ctx.stage_loop(model, "finetune", epochs=train.finetune_epochs,
                              learning_rate=train.learning_rate * train.finetune_lr_scale)
        model = loop.resume_model(model)
        loop.start_from(model, self.score)
        best = self.train(loop, model)
        state = loop.state
        improved = state["best_epoch"] > 0
        if improved:
            encoder, fine_clip = split_video_model(best)
            ctx.run.embeddings_path.unlink(missing_ok=True)  # computed with the old encoder
            save_model_atomically(fine_clip, target)
            save_model_atomically(encoder, encoder_path)
        ctx.run.write_json(outcome_path, {"improved": improved, "best_epoch": state["best_epoch"],
                                          "best_uar": state["best_uar"]})
        ctx.log.info(f"finetune: best val UAR {state['best_uar']:.3f} at epoch {state['best_epoch']} "
                     + ("-> frame_encoder.keras and the video model replaced" if improved
                        else "(epoch 0: the two-stage model is kept)"))
        return load_model(encoder_path, compile=False)
