"""Two tiny generated AFEW-layout corpora for training tests (real ffmpeg, real Keras training).

- "audio" corpus: the label is only in the audio (a class-specific tone), the picture is the same;
- "video" corpus: the label is only in the picture (horizontal stripes, a class-specific period),
  the sound is the same.

Four classes each; each is learned well above chance by the mode that can see it. The trained runs
on them are session fixtures in conftest.py (``video_run``, ``audio_run``, ``frames_run``), shared by
the pipeline test files: TensorFlow's first steps are slow.
"""

import subprocess

import yaml

from preprocessing.media import ffmpeg_binary

CLASSES4 = ("Angry", "Happy", "Neutral", "Sad")
TONES = {"Angry": 300, "Happy": 700, "Neutral": 1500, "Sad": 3000}       # Hz
STRIPES = {"Angry": 48, "Happy": 24, "Neutral": 12, "Sad": 6}            # period in px of a 96 px frame
N_TRAIN, N_VAL = 6, 3


def stripes_clip(path, *, tone, period, seed):
    """1.2 s of grey noise with white horizontal lines every ``period`` px and a ``tone`` Hz sine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    video = (f"color=c=0x{60 + 10 * (seed % 5):02x}{60 + 10 * (seed % 5):02x}{60 + 10 * (seed % 5):02x}"
             f":s=96x96:r=25:d=1.2,drawgrid=w=iw:h={period}:y={seed % 5}:t=3:c=white,noise=alls=12:allf=t")
    audio = f"sine=frequency={tone * (1 + 0.02 * (seed % 3))}:sample_rate=16000:duration=1.2"
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio,
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)], check=True)


def make_corpus(root, *, label_in):
    for split, n in (("Train_AFEW", N_TRAIN), ("Val_AFEW", N_VAL)):
        for c, label in enumerate(CLASSES4):
            for i in range(n):
                seed = 31 * c + i + (100 if split == "Val_AFEW" else 0)
                tone = TONES[label] if label_in == "audio" else 440
                period = STRIPES[label] if label_in == "video" else 16
                stripes_clip(root / split / label / f"{label.lower()}_{i}.mp4", tone=tone, period=period, seed=seed)
    return root


def run_config(tmp, root, mode, name, *, train_overrides=None, model_overrides=None):
    cfg = {
        "seed": 0, "name": name, "output_dir": str(tmp / "runs"),
        "data": {"root": str(root), "layout": "afew", "store": str(tmp / f"{name}.h5"), "workers": 2},
        "extract": {"crop_size": 32, "max_frames": 40},
        "model": {"mode": mode, "image_size": 32, "n_frames": 6, "lstm_units": 16, "audio_dim": 32,
                  **(model_overrides or {})},
        "train": {"frame_epochs": 6, "frames_per_clip": 8, "epochs": 40, "patience": 0, "batch_size": 8,
                  "learning_rate": 3e-3, **(train_overrides or {})},
        "smoke": {"train": {"frame_epochs": 1, "epochs": 1}},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path

