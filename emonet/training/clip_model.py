"""Stage two: the clip models (LSTMs, audio branch, fusion) trained on cached embeddings and reduced audio.

The inputs are small arrays in memory, so an epoch is fast (seconds) and new every time:
each epoch samples ``n_frames`` embeddings per clip at random offsets and adds the
regularising noise and modality dropout of :func:`regularise`, all drawn from
``numpy.random.default_rng([seed, epoch])`` (the same stream after a resume).
"""

import numpy as np

from emonet.evaluation.metrics import uar
from emonet.features.datasets import sequence_batch
from emonet.nn.io import load_model, save_model_atomically
from emonet.nn.models import build_emonet, modes_needing


class ClipModelStage:
    """Trains one clip model of a run (``stages/<mode>/``) and saves its best epoch.

    Parameters
    ----------
    context : emonet.training.context.RunContext
    """

    def __init__(self, context):
        self.context = context

    def train(self, mode, target, *, embeddings=None, audio=None, branches=None):
        """Train (or load, when ``target`` exists) the clip model of ``mode``.

        Parameters
        ----------
        mode : str
            "video", "audio" or "fusion".
        target : pathlib.Path
            Where the best model is saved (``model.keras``, ``ablation/<mode>.keras``, ...).
        embeddings : dict, optional
            ``{key: (T_i, E) float32}`` frame embeddings of the training and validation clips (video modes).
        audio : tuple of np.ndarray, optional
            Reduced audio ``(train [shape=(n_train, d)], val [shape=(n_val, d)])`` (audio modes); an
            :class:`~emonet.features.embedding.ReducedAudio` with ``train_speeds`` also trains on the
            clips' speed-perturbed copies (:func:`sample_speed_copies`).
        branches : dict, optional
            ``{"audio": model, "video": model}``: trained single-modality models whose encoders
            seed the fusion model and stay frozen, so only the fusion head is trained.

        Returns
        -------
        keras.Model
            The best model.
        """
        ctx = self.context
        if target.exists():
            ctx.log.info(f"{mode}: clip model {target.name} already trained, loaded (resume or an earlier stage)")
            return load_model(target, compile=False)
        model_cfg, train = ctx.cfg.model, ctx.cfg.train
        needs_video, needs_audio = modes_needing(mode)
        model = build_emonet(mode=mode, video_input="embeddings", n_frames=model_cfg.n_frames,
                             embedding_dim=model_cfg.embedding_dim, lstm_units=model_cfg.lstm_units,
                             audio_dim=audio[0].shape[1] if needs_audio else model_cfg.audio_dim,
                             audio_units=model_cfg.audio_units, head_units=model_cfg.head_units,
                             head_dropout=model_cfg.head_dropout)
        for single, trained in (branches or {}).items():
            name = f"{single}_encoder"
            model.get_layer(name).set_weights(trained.get_layer(name).get_weights())
            model.get_layer(name).trainable = False
        loop = ctx.stage_loop(model, mode, epochs=train.epochs)
        model = loop.resume_model(model)
        train_table, val_table = ctx.train_table, ctx.val_table
        train_emb = [embeddings[k] for k in train_table.keys] if needs_video else None
        val_emb = [embeddings[k] for k in val_table.keys] if needs_video else None

        def inputs(emb, audio_x, rng):
            batch = {}
            if needs_video:
                batch["frame_embeddings"], batch["frame_mask"] = sequence_batch(emb, model_cfg.n_frames, rng=rng)
            if needs_audio:
                batch["audio"] = audio_x
            return batch

        val_inputs = inputs(val_emb, audio[1] if needs_audio else None, None)
        noise_scale = train.embedding_noise * embedding_std(train_emb) if needs_video else 0.0
        audio_noise = train.audio_noise * audio[0].std(axis=0) if needs_audio else 0.0

        train_speeds = getattr(audio, "train_speeds", None) if needs_audio else None

        def fit_epoch(model, epoch):
            rng = np.random.default_rng([ctx.cfg.seed, epoch])
            train_audio = sample_speed_copies(audio[0], train_speeds, rng) if needs_audio else None
            x = inputs(train_emb, train_audio, rng)
            regularise(x, rng, noise_scale=noise_scale, audio_noise=audio_noise,
                       modality_dropout=train.modality_dropout if mode == "fusion" else 0.0)
            history = model.fit(x, train_table.labels, batch_size=train.batch_size, epochs=1, shuffle=True,
                                class_weight=ctx.class_weight, verbose=0)
            return {k: v[-1] for k, v in history.history.items()}

        def score(model):
            proba = np.asarray(model.predict(val_inputs, batch_size=256, verbose=0))
            return uar(val_table.labels, proba.argmax(axis=1))

        best = loop.kept_model() if loop.done else loop.run(model, fit_epoch, score)
        target.parent.mkdir(parents=True, exist_ok=True)
        save_model_atomically(best, target)
        kept = (f"last epoch {loop.state['epoch']} kept" if train.keep == "last" else
                f"epoch {loop.state['best_epoch']} kept")
        ctx.log.info(f"{mode}: best val UAR {loop.state['best_uar']:.3f} at epoch {loop.state['best_epoch']}, "
                     f"{kept} -> {target}")
        return best


def sample_speed_copies(train, speeds, rng):
    """One epoch's training audio: per clip, itself or one of its speed-perturbed copies, with even odds.

    Parameters
    ----------
    train : np.ndarray [shape=(n, d)]
        Reduced audio of the training clips.
    speeds : np.ndarray [shape=(K, n, d)] or None
        Their reduced speed-perturbed copies; None returns ``train`` unchanged (and draws nothing).
    rng : numpy.random.Generator

    Returns
    -------
    np.ndarray [shape=(n, d)]
    """
    if speeds is None or len(speeds) == 0:
        return train
    pick = rng.integers(0, len(speeds) + 1, size=len(train))  # 0 = the clip itself
    out = train.copy()
    copied = pick > 0
    out[copied] = speeds[pick[copied] - 1, np.flatnonzero(copied)]
    return out


def embedding_std(embeddings):
    """Per-dimension standard deviation of the training frame embeddings.

    Parameters
    ----------
    embeddings : list of np.ndarray [shape=(T_i, E)]

    Returns
    -------
    np.ndarray [shape=(E,), dtype=float32]
    """
    stacked = np.concatenate([e for e in embeddings if len(e)])
    return stacked.std(axis=0).astype(np.float32)


def regularise(batch, rng, *, noise_scale, audio_noise, modality_dropout):
    """Stage-two training noise, in place on an input dict.

    Cached embeddings of training clips are cleaner than those of unseen clips
    (the frame CNN was fitted on them), and the fusion head would learn to
    trust video alone; the reduced audio vectors of the few distinct training
    utterances are memorised as easily. Gaussian noise on the embeddings
    (``noise_scale`` per dimension) and on the audio vector (``audio_noise``
    per dimension), and *modality dropout* -- hiding the video (mask 0) or the audio
    (zero vector, the same input as a clip without audio) of a share of the
    clips -- make the head use both branches and cope with a missing one.

    Parameters
    ----------
    batch : dict
        ``frame_embeddings`` [shape=(n, T, E)], ``frame_mask`` [shape=(n, T)], ``audio`` [shape=(n, d)]
        (those the mode has).
    rng : numpy.random.Generator
    noise_scale : float or np.ndarray [shape=(E,)]
    audio_noise : float or np.ndarray [shape=(d,)]
    modality_dropout : float
        Share of clips with one modality hidden (video or audio, even odds); fusion only.
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
