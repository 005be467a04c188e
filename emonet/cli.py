"""The ``emonet`` command: a thin layer over library functions.

Subcommands: ``extract`` (dataset -> HDF5 feature store), ``train``,
``evaluate``, ``predict``. Every user error ends in one line on stderr and exit
status 2; a batch in which some clips failed exits with status 1.
"""

import argparse
import os
import sys
from pathlib import Path

from preprocessing.errors import ConfigError, EmonetError

from emonet import __version__
from emonet.cli_help import EVALUATE_EXAMPLES, EXTRACT_EXAMPLES, PREDICT_EXAMPLES, TRAIN_EXAMPLES
from emonet.cli_logging import configure_logging
from emonet.inference.predict import TF_MIN_LOG_LEVEL

# TensorFlow reads its C++ log level when it loads: set before any command imports it
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_MIN_LOG_LEVEL)

#: Exit status when some clips of a batch failed (the rest was processed).
EXIT_SOME_FAILED = 1
#: Exit status for a user error (bad arguments, missing folder, ...).
EXIT_USAGE = 2


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """``--help``: each option's default shown, the examples of the epilog kept as written."""


def _add_extract(sub):
    # light modules only (no NumPy): building the parser must stay cheap, see tests/test_cli_ergonomics.py
    from preprocessing import defaults
    from preprocessing.defaults import DEFAULT_DETECTOR, DETECTORS
    from preprocessing.layouts import LAYOUTS

    p = sub.add_parser("extract", help="decode clips into an HDF5 feature store (resumable)",
                       formatter_class=_HelpFormatter, epilog=EXTRACT_EXAMPLES)
    p.add_argument("dataset_dir", type=Path, help="dataset folder")
    p.add_argument("--layout", choices=LAYOUTS, default="afew", help="folder layout of the dataset")
    p.add_argument("--csv", dest="csv_path", type=Path, default=None, help="manifest CSV for --layout csv")
    p.add_argument("--out", "-o", type=Path, required=True, help="HDF5 store to create or complete")
    p.add_argument("--workers", "-j", type=int, default=None,
                   help="local worker processes (default: CPU count; 0 = in this process)")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786")
    p.add_argument("--split", choices=("train", "val", "test"), default=None, help="extract one split only")
    p.add_argument("--crop-size", "--crop_size", type=int, default=defaults.CROP_SIZE,
                   help="side of stored face crops in pixels")
    p.add_argument("--max-frames", "--max_frames", type=int, default=defaults.MAX_FRAMES,
                   help="cap on frames per clip (uniform sampling beyond)")
    p.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR, help="face detector")
    p.add_argument("--margin", type=float, default=defaults.MARGIN,
                   help="border around the face box, as a fraction of its size per side")
    p.add_argument("--keep-frames", "--keep_frames", action="store_true", help="also store whole frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_extract)


def cmd_extract(args):
    """``emonet extract``: build or complete a feature store; prints a summary."""
    from preprocessing.datasets import build_manifest
    from preprocessing.extraction import ExtractParams
    from preprocessing.runner import run_extraction
    from preprocessing.store import FeatureStore, check_output_path

    if args.workers is not None and args.workers < 0:
        raise ConfigError(f"--workers: must be >= 0; received {args.workers}")
    out = check_output_path(args.out)
    manifest = build_manifest(args.dataset_dir, layout=args.layout, csv_path=args.csv_path)
    records = manifest.by_split(args.split) if args.split else list(manifest)
    for relpath, reason in manifest.skipped:
        print(f"not included: {relpath}: {reason}", file=sys.stderr)
    params = ExtractParams(crop_size=args.crop_size, max_frames=args.max_frames,
                           detector=args.detector, margin=args.margin, keep_frames=args.keep_frames)
    print(f"extracting {len(records)} clips from {args.dataset_dir} ({args.layout} layout) -> {out}",
          file=sys.stderr)
    summary = run_extraction(records, out, params, workers=args.workers, scheduler=args.scheduler,
                             progress=not args.no_progress)
    with FeatureStore(out) as store:
        print(describe_store(store))
    print(summary.line(out))
    return EXIT_SOME_FAILED if summary.failed else 0


def describe_store(store):
    """A short human summary of a store: clips per split and label, face and audio coverage."""
    from collections import Counter

    by_label, totals = Counter(), Counter()
    for r in store.iter_index():  # one row at a time: flat memory on a store of 100,000 clips
        by_label[(r["split"], r["label"] or "?")] += 1
        totals.update(clips=1, frames=r["n_frames"], video=bool(r["has_video"]), audio=bool(r["has_audio"]),
                      silent=bool(r["audio_silent"]), face_rate=r["face_rate"] if r["has_video"] else 0)
    by_split = {split: sum(n for (s, _), n in by_label.items() if s == split) for split, _ in by_label}
    lines = [f"store {store.path}: {totals['clips']} clips, {len(store.failures())} recorded failures"]
    for split in sorted(by_split):
        labels = ", ".join(f"{label} {n}" for (s, label), n in sorted(by_label.items()) if s == split)
        lines.append(f"  {split:5s} {by_split[split]:5d} clips: {labels}")
    if totals["clips"]:
        face_rate = totals["face_rate"] / max(1, totals["video"])
        lines.append(f"  frames stored: {totals['frames']}; face found in {100 * face_rate:.1f}% of frames; audio in "
                     f"{totals['audio']} clips ({totals['silent']} silent or absent)")
        lines.append(f"  per clip: faces {store.params['crop_size']}x{store.params['crop_size']} RGB, "
                     f"{len(store.audio_feature_names)} audio functionals, MFCC sequence "
                     f"({store.params['n_mfcc']} per 1/25 s)")
    return "\n".join(lines)


def _add_train(sub):
    p = sub.add_parser("train", help="train a run declared by a YAML config, then evaluate it",
                       formatter_class=_HelpFormatter, epilog=TRAIN_EXAMPLES)
    p.add_argument("config", type=Path, help="experiment config, e.g. experiments/composite_fusion.yaml")
    p.add_argument("--smoke", action="store_true", help="apply the config's smoke: overrides (quick variant)")
    p.add_argument("--seed", type=int, help="override the config's seed (the run folder is <name>-seed<SEED>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="start an existing run folder again from scratch")
    p.set_defaults(func=cmd_train)


def cmd_train(args):
    """``emonet train``: train, evaluate on the validation split, print the evaluation and where the run is."""
    from emonet.inference.predict import import_tensorflow
    import_tensorflow()  # before the trainer imports Keras: TensorFlow's start-up notices held back
    from emonet.evaluation.report import format_evaluation
    from emonet.experiment.rundir import RunDir
    from emonet.training.trainer import train_from_config
    run = RunDir(train_from_config(args.config, smoke=args.smoke, seed=args.seed, resume=args.resume,
                                   overwrite=args.overwrite))
    print(format_evaluation(run.metrics(), metrics_path=run.metrics_path))  # written by the evaluation that ends training
    print(f"run directory: {run.path}")
    return 0


def _add_evaluate(sub):
    from preprocessing.layouts import LAYOUTS

    p = sub.add_parser("evaluate", help="metrics, confusion matrix, ablation and baselines of a run",
                       formatter_class=_HelpFormatter, epilog=EVALUATE_EXAMPLES)
    p.add_argument("run_dir", type=Path, nargs="?", default=None,
                   help="run directory written by emonet train, or emonet-base (the default: the shipped "
                        "model, which needs --data)")
    p.add_argument("--data", type=Path, default=None,
                   help="feature store (.h5) or dataset folder to evaluate on (default: the run's val split)")
    p.add_argument("--layout", default=None,
                   help=f"folder layout of --data ({', '.join(LAYOUTS)}; default: the run's)")
    p.add_argument("--out", type=Path, default=None, help="folder for the results (default: in the run)")
    p.add_argument("--no-baselines", action="store_true", help="skip the classical baselines")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args):
    """``emonet evaluate``: write the evaluation files, print the report, ablation table and where they are."""
    from emonet.inference.predict import import_tensorflow
    import_tensorflow()  # before the evaluation imports Keras: TensorFlow's start-up notices held back
    from emonet.evaluation.evaluate import evaluate_run, evaluation_dir
    from emonet.evaluation.report import format_evaluation
    from emonet.inference.runtime import is_shipped_model, shipped_model_dir
    run_dir, out, store_dir = args.run_dir, args.out, None
    shipped = is_shipped_model(run_dir)
    if shipped:  # the shipped model: its folder is part of the package, results go to the working folder
        run_dir = shipped_model_dir()
        if args.data is None:
            raise ConfigError("the shipped model emonet-base has no validation split of its own: "
                              "pass --data DIR --layout L (or a run directory)")
        out = out or Path(f"emonet-base_eval_{args.data.stem}")
        store_dir = out
    result = evaluate_run(run_dir, data=args.data, layout=args.layout, out_dir=out,
                          baselines=not args.no_baselines and not shipped, store_dir=store_dir)
    metrics_path = evaluation_dir(run_dir, data=args.data, out_dir=out) / "metrics.json"
    print(format_evaluation(result, metrics_path=metrics_path))
    return 0


def _add_predict(sub):
    from emonet.inference.predict import FORMATS
    from emonet.inference.subtitles import SUBTITLE_FORMATS
    p = sub.add_parser("predict", help="classify clips: top emotion and the seven probabilities",
                       formatter_class=_HelpFormatter, epilog=PREDICT_EXAMPLES)
    p.add_argument("clips", nargs="+", type=Path,
                   help="clip files: videos, audio files or still images (.jpg, .png...: one frame, no audio); "
                        "a folder stands for its media files, recursively")
    p.add_argument("--model", "-m", type=Path, default=None,
                   help="run directory of a trained model, or emonet-base (the default: the shipped model)")
    p.add_argument("--format", "-f", choices=FORMATS + SUBTITLE_FORMATS, default="table",
                   help="output format (srt, vtt: subtitles of a clip's timeline, with --window; for several "
                        "clips -o FILE names one file per clip beside it, FILE's stem + '.' + the clip's name)")
    p.add_argument("--output", "-o", type=Path, default=None,
                   help="write the output to this file (csv, json: kept as it goes, see below)")
    p.add_argument("--resume", action="store_true",
                   help="with -o FILE (csv or json): skip the clips already in FILE or FILE.partial, add the others")
    p.add_argument("--submission", type=Path, default=None,
                   help="also write EmotiW-style label files (<clip path>.txt, relative to the clips' "
                        "common folder) into this folder")
    p.add_argument("--batch-size", "--batch_size", type=int, default=None,
                   help="clips per model call (default: 16); with --window, windows (default: 64)%(default).0s")
    p.add_argument("--workers", "-j", type=int, default=None,
                   help="helper processes that decode and extract while the model classifies (default: CPU count, "
                        "at most 2; 0 = all in this process); a timeline uses two whenever > 0%(default).0s")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="timeline: classify each window of this many seconds (one row per window)")
    p.add_argument("--hop", type=float, default=None, metavar="SECONDS",
                   help="seconds between window starts; when not given, the window (1 with --annotate alone)")
    p.add_argument("--annotate", type=Path, default=None, metavar="FILE",
                   help="write the (single) input video with face boxes and window emotions drawn on it "
                        "(windows of 2 s every 1 s unless --window / --hop)")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args):
    """``emonet predict``: classify clips (folders expanded); print or write the results."""
    from emonet.inference.runtime import predict_only
    predict_only()  # TensorFlow loads without Keras's pandas/matplotlib/sklearn parts
    if args.window is not None or args.annotate is not None or args.hop is not None or args.format in ("srt", "vtt"):
        return _predict_timeline(args)
    from emonet.inference.journal import RESUMABLE_FORMATS, predict_into_file
    from emonet.inference.predict import display_names, format_rows, output_rows, predict_clips, write_submission
    # user errors first, in one line each, before any decoding or TensorFlow import
    if args.resume and (args.output is None or args.format not in RESUMABLE_FORMATS):
        raise ConfigError(f"--resume needs -o FILE and --format {' or '.join(RESUMABLE_FORMATS)}")
    args.batch_size = 16 if args.batch_size is None else args.batch_size
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1; received {args.batch_size}")
    workers, model, clips = _checked_inputs(args)
    names = dict(zip(map(str, clips), display_names(clips)))  # of all clips: a resumed run names them alike
    if args.output and args.format in RESUMABLE_FORMATS:  # kept on disk batch by batch, --resume (journal.py)
        rows, failures = predict_into_file(clips, args.output, args.format, model=model, resume=args.resume,
                                           batch_size=args.batch_size, progress=not args.no_progress, workers=workers)
    else:
        results, failures = predict_clips(clips, model, batch_size=args.batch_size, progress=not args.no_progress,
                                          workers=workers)
        rows = output_rows(results, names)
    if args.output:
        if args.format not in RESUMABLE_FORMATS:
            from preprocessing.files import atomic_write_text
            atomic_write_text(args.output, format_rows(rows, args.format) + "\n")
        print(f"wrote {len(rows)} predictions to {args.output}", file=sys.stderr)
    else:
        print(format_rows(rows, args.format))
    if args.submission:
        emotions = {r["clip"]: r["emotion"] for r in rows}
        labelled = [{"clip": str(c), "emotion": emotions[names[str(c)]]} for c in clips if names[str(c)] in emotions]
        write_submission(labelled, args.submission)
        print(f"wrote {len(labelled)} label files to {args.submission}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} of {len(clips)} clips failed: "
              + "; ".join(names.get(p, p) for p, _ in failures), file=sys.stderr)
        return EXIT_SOME_FAILED
    return 0


def _checked_inputs(args):
    """``(workers, model folder, clips)`` of ``emonet predict``, after the checks that clip predictions and
    timelines share: each user error in one line, before any decoding or TensorFlow import."""
    from emonet.inference.predict import check_model_dir, check_output_file, check_some_input_exists, expand_clips
    from emonet.inference.workers import check_workers
    workers = check_workers(args.workers)
    model = check_model_dir(args.model)
    if args.output:
        check_output_file(args.output)
    clips = expand_clips(args.clips)
    check_some_input_exists(clips)
    return workers, model, clips


def _predict_timeline(args):
    """``emonet predict --window/--hop/--annotate``: one row per window of each clip, optionally an annotated video."""
    from emonet.inference.annotate import check_annotate_target
    from emonet.inference.predict import display_names
    from emonet.inference.subtitles import SUBTITLE_FORMATS
    from emonet.inference.timeline import DEFAULT_HOP, DEFAULT_WINDOW, check_window
    # user errors first, in one line each, before any decoding or TensorFlow import
    if args.window is None and args.annotate is None:
        flag = "--hop" if args.hop is not None else f"--format {args.format}"
        raise ConfigError(f"{flag} needs --window SECONDS (it applies to per-window timelines)")
    window = DEFAULT_WINDOW if args.window is None else args.window
    hop = args.hop if args.hop is not None else (window if args.window is not None else min(DEFAULT_HOP, window))
    window, hop = check_window(window, hop)
    if getattr(args, "resume", False):
        raise ConfigError("--resume does not apply to timelines (--window, --annotate)")
    batch_size = 64 if args.batch_size is None else args.batch_size
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1; received {batch_size}")
    workers, model, clips = _checked_inputs(args)
    if args.annotate is not None:
        if len(clips) != 1:
            raise ConfigError(f"--annotate draws on a single input video; received {len(clips)} clips")
        check_annotate_target(args.annotate, clips[0])  # probes the input only: nothing is decoded
    if args.format in SUBTITLE_FORMATS and len(clips) > 1 and args.output is None:
        raise ConfigError(f"--format {args.format} of {len(clips)} clips needs -o FILE (one subtitle file per clip "
                          f"is written beside it); received no -o")
    from emonet.inference.timeline import predict_timelines  # TensorFlow loads in there, after the helpers start
    timelines, failures = predict_timelines(clips, model, window=window, hop=hop, keep_track=args.annotate is not None,
                                            progress=not args.no_progress, batch_size=batch_size, workers=workers)
    every_name = dict(zip(map(str, clips), display_names(clips)))  # of all clips: names do not hang on failures
    _write_timelines(args, timelines, display_names([t.clip for t in timelines]),
                     files=[every_name[t.clip] for t in timelines] if len(clips) > 1 else None)
    if args.annotate is not None and timelines:
        from emonet.inference.annotate import annotate_video
        annotate_video(clips[0], timelines[0], args.annotate, progress=not args.no_progress)  # logs where
    if args.submission:
        from emonet.inference.predict import write_submission
        write_submission([{"clip": t.clip, "emotion": t.emotion} for t in timelines], args.submission)
        print(f"wrote {len(timelines)} clip label files to {args.submission}", file=sys.stderr)
    if failures:
        names = dict(zip(map(str, clips), display_names(clips)))
        print(f"{len(failures)} of {len(clips)} clips failed: "
              + "; ".join(names.get(p, p) for p, _ in failures), file=sys.stderr)
        return EXIT_SOME_FAILED
    return 0


def _write_timelines(args, timelines, names, files=None):
    """Print or write the timelines in ``args.format``; the clip labels go to stderr unless the table holds them.

    ``files``: for subtitles of several clips, each timeline's clip name, which names its file beside ``-o``."""
    from emonet.inference.subtitles import SUBTITLE_FORMATS, format_subtitles, subtitle_paths
    from emonet.inference.timeline_format import clip_line, format_timelines
    if args.format in SUBTITLE_FORMATS and files is not None:  # several clips: a file each
        from preprocessing.files import atomic_write_text
        for name, timeline in zip(names, timelines):
            print(clip_line(name, timeline), file=sys.stderr)
        for target, timeline in zip(subtitle_paths(args.output, files, args.format), timelines):
            atomic_write_text(target, format_subtitles(timeline.rows, args.format).rstrip("\n") + "\n")
            print(f"wrote {len(timeline.rows)} windows to {target}", file=sys.stderr)
        return
    if args.format in SUBTITLE_FORMATS:
        text = format_subtitles(timelines[0].rows if timelines else [], args.format)
    else:
        text = format_timelines(timelines, args.format)
    if args.format != "table":
        for name, timeline in zip(names, timelines):
            print(clip_line(name, timeline), file=sys.stderr)
    if args.output:
        from preprocessing.files import atomic_write_text
        atomic_write_text(args.output, text.rstrip("\n") + "\n")
        print(f"wrote {sum(len(t.rows) for t in timelines)} windows to {args.output}", file=sys.stderr)
    else:
        print(text.rstrip("\n"))


def build_parser():
    parser = argparse.ArgumentParser(prog="emonet", description="Audio-visual emotion recognition for video clips.")
    parser.add_argument("--version", action="version", version=f"emonet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_extract(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    return parser


def main(argv=None):
    """Entry point of the ``emonet`` console script; returns the exit status (``emonet predict`` run as the
    command, ``argv`` None, ends its process once its output is written: ``runtime.exit_now``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    try:
        status = args.func(args)
    except EmonetError as exc:
        print(f"emonet {args.command}: error: {exc}", file=sys.stderr)
        status = EXIT_USAGE
    except OSError as exc:  # a file system refusal we did not foresee: still one line, naming the file
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"emonet {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        status = EXIT_USAGE
    except KeyboardInterrupt:
        print(f"emonet {args.command}: interrupted; finished clips are kept, run again to resume", file=sys.stderr)
        status = 130
    if argv is None and args.command == "predict":
        from emonet.inference.runtime import exit_now
        exit_now(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
