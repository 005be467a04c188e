"""Stages composed into branches: the video branch by schedule, and a run trained without cross-fitting.

``train.schedule`` decides how the video branch is trained:

- ``two_stage``: :class:`~emonet.training.stages.FrameEncoderStage`, then the
  :class:`~emonet.training.stages.EmbeddingCache`; the video clip model is a
  :class:`~emonet.training.clip_model.ClipModelStage`. With ``train.finetune_epochs`` > 0 the
  video clip model is trained here, then :class:`~emonet.training.sequences.FinetuneStage`,
  and the cache is rebuilt with the final encoder;
- ``end_to_end``: :class:`~emonet.training.sequences.EndToEndStage`, then the cache.
"""

from emonet.nn.io import load_model, save_model_atomically
from emonet.nn.models import modes_needing
from emonet.nn.video import build_frame_average
from emonet.training.clip_model import ClipModelStage
from emonet.training.sequences import EndToEndStage, FinetuneStage
from emonet.training.stages import EmbeddingCache, FrameEncoderStage, ReducerStage


def video_target(context):
    """Where a run keeps its video-only clip model: ``ablation/video.keras`` (fusion) or ``model.keras`` (video)."""
    if context.cfg.model.mode == "fusion":
        path = context.run.ablation_path("video")
        path.parent.mkdir(exist_ok=True)
        return path
    return context.run.model_path


def train_video_branch(context):
    """Frame encoder (and, for end_to_end or fine-tuning, the video clip model) by ``train.schedule``.

    Parameters
    ----------
    context : emonet.training.context.RunContext

    Returns
    -------
    dict
        ``{key: (T_i, E) float32}`` frame embeddings of the cached clips, computed with the final
        ``frame_encoder.keras``.
    """
    train = context.cfg.train
    cache = EmbeddingCache(context)
    if train.schedule == "end_to_end":
        return cache.build(EndToEndStage(context).run(video_target(context)))
    embeddings = cache.build(FrameEncoderStage(context).run())
    if train.finetune_epochs > 0:
        target = video_target(context)
        clip_model = ClipModelStage(context).train("video", target, embeddings=embeddings)
        embeddings = cache.build(FinetuneStage(context).run(clip_model, target))
    return embeddings


def train_joint(context):
    """A run without cross-fitting (``train.folds`` < 2, or an audio run).

    Reducer and video branch as the mode needs; for fusion, the single-modality models first
    (``ablation/``: the ablation, and with ``train.fusion_init: branches`` the frozen encoders
    of the fusion model); then ``model.keras``.
    """
    mode, run = context.cfg.model.mode, context.run
    needs_video, needs_audio = modes_needing(mode)
    audio = ReducerStage(context).run() if needs_audio else None
    embeddings = train_video_branch(context) if needs_video else None
    stage = ClipModelStage(context)
    branches = {}
    if mode == "fusion":
        for single in ("audio", "video"):
            branches[single] = stage.train(single, run.ablation_path(single), embeddings=embeddings, audio=audio)
    if context.cfg.train.fusion_init == "scratch":
        branches = {}
    stage.train(mode, run.model_path, embeddings=embeddings, audio=audio, branches=branches)


def train_frames_only(context):
    """A ``model.mode: frames`` run: the frame CNN alone (stage one), e.g. pretrained on face images.

    ``frame_encoder.keras`` is stage one's encoder; ``model.keras`` applies its softmax to each
    frame and averages over a clip's frames (:func:`emonet.nn.video.build_frame_average`), so
    evaluation and prediction read the run like any other.
    """
    stage = FrameEncoderStage(context)
    stage.run()
    classifier = stage.classifier
    if classifier is None:  # resumed after stage one: its best epoch is on disk
        classifier = load_model(context.run.stage("frames").best_path, compile=False)
    model = build_frame_average(classifier, n_frames=context.cfg.model.n_frames)
    save_model_atomically(model, context.run.model_path)
    context.log.info(f"frames: per-frame softmax averaged over a clip -> {context.run.model_path}")
