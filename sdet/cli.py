"""`sdet` command line. Subcommands only parse arguments and call library functions.

Bad input (paths, files, configs) exits 2 with one line on stderr naming the file and
line; no traceback is shown for user errors.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from sdet.errors import UserError


def _checkpoint_with_overrides(path: str, overrides: Sequence[str]):
    from sdet.api import load_detector_with_overrides

    return load_detector_with_overrides(path, overrides)


def _device(name: str):
    """--device: auto, cpu, cuda[:N] or mps; a device this machine lacks is a one-line error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine", "<command line>")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"--device must be auto, cpu, cuda, cuda:N or mps, got '{name}'", "<command line>") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def cmd_train(args: argparse.Namespace) -> int:
    from sdet.config import load_config
    from sdet.engine.trainer import train

    cfg = load_config(args.config, args.overrides)
    result = train(cfg, progress=not args.no_progress and sys.stderr.isatty())
    summary = {"out_dir": str(result.out_dir), "step": result.step, "best_hmean": result.best_hmean, **result.last_metrics}
    print(json.dumps(summary))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from sdet.config import parse_overrides
    from sdet.data.formats import eval_protocol, load_samples, parse_data_spec
    from sdet.engine.evaluator import evaluate

    if args.checkpoint.endswith(".onnx"):  # an export: ONNX Runtime, the same pre- and post-processing
        from sdet.deploy.onnx_predictor import OnnxPredictor

        runtime = OnnxPredictor(args.checkpoint, args.overrides)
        cfg = runtime.cfg
    else:
        detector, cfg, _ = _checkpoint_with_overrides(args.checkpoint, args.overrides)
        runtime = None
    name, root = parse_data_spec(args.data) if args.data else (cfg.data.name, cfg.data.root)
    # the checkpoint's data.protocol was chosen for its own dataset: another dataset gets its own
    # default, unless data.protocol=... is given here
    given = "protocol" in parse_overrides(args.overrides).get("data", {})
    configured = cfg.data.protocol if name == cfg.data.name or given else ""
    if args.protocol:
        protocol = eval_protocol(name, args.protocol, "<command line: --protocol>")
    else:
        protocol = eval_protocol(name, configured, "<command line>" if given else f"{args.checkpoint}: data.protocol")
    split = args.split or cfg.data.val_split
    samples = load_samples(name, root, split, skip_bad=cfg.data.skip_bad)
    if args.limit:
        samples = samples[: args.limit]
    progress = not args.json and sys.stderr.isatty()
    if runtime is not None:
        from sdet.engine.evaluator import run_on_samples, score_detections

        result = score_detections(samples, run_on_samples(runtime, samples, cfg, progress), protocol)
    else:
        device = _device(args.device)
        result = evaluate(detector.to(device), samples, cfg, device, progress=progress, protocol=protocol)
    out = {**result.to_dict(), "protocol": protocol}
    if not args.json:
        print(f"precision {out['precision']:.4f}  recall {out['recall']:.4f}  hmean {out['hmean']:.4f}  "
              f"({out['num_gt']} GT, {out['num_det']} detections, {len(samples)} images, protocol {protocol})")
    print(json.dumps(out))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from sdet.api import Detector
    from sdet.deploy.predict_files import predict_with

    detector = Detector.load(args.checkpoint, args.overrides)  # the Python API's loader: .pt or .onnx
    written = predict_with(detector.runtime, args.inputs, Path(args.out), args.entropy)
    print(f"wrote {written} predictions to {args.out}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from sdet.metrics.submission import score_folders

    result = score_folders(args.gt, args.pred, protocol=args.protocol)
    print(json.dumps(result.to_dict()))
    return 0


def cmd_viz_entropy(args: argparse.Namespace) -> int:
    from sdet.deploy.entropy_view import write_entropy_view

    maps = write_entropy_view(args.checkpoint, args.image, args.out)
    aux = f", aux head mean {maps.aux.mean():.4f} bit" if maps.aux is not None else " (no auxiliary head in this checkpoint)"
    print(f"wrote {args.out}: main head mean entropy {maps.main.mean():.4f} bit{aux}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from sdet.experiments.compare import parse_seeds, parse_variant, run_comparison

    seeds = parse_seeds(args.seeds)
    run_comparison(args.config, args.overrides, [parse_variant(v) for v in args.variant], seeds, Path(args.out),
                   progress=not args.no_progress and sys.stderr.isatty())
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from sdet.experiments.reproduce import (
        BACKBONES, DATA_NAMES, parse_named_paths, parse_seeds_or_count, reproduce, roots_under,
    )

    roots = {**roots_under(args.data_root), **parse_named_paths(args.data, DATA_NAMES, "--data")}
    reproduce(args.table, roots, parse_seeds_or_count(args.seeds), Path(args.out),
              args.overrides, dry_run=args.dry_run, progress=not args.no_progress and sys.stderr.isatty(),
              pretrained=parse_named_paths(args.pretrained, sorted(set(BACKBONES.values())), "--pretrained"))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from sdet.deploy.onnx_export import export_onnx

    if args.int8 and not args.calib:
        raise UserError("--int8 needs calibration images: --calib NAME:ROOT (its training split) or a folder",
                        "<command line>")
    print(export_onnx(args.checkpoint, args.onnx, opset=args.opset).summary())
    if args.int8:
        from sdet.deploy.onnx_quantize import calibration_images, quantize_int8

        out = Path(args.onnx).with_suffix(".int8.onnx")
        print(quantize_int8(Path(args.onnx), out, calibration_images(args.calib, args.calib_count)).summary())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sdet.demo import run_demo

    run_demo(Path(args.out), seed=args.seed, steps=args.steps, methods=args.methods.split(","),
             progress=sys.stderr.isatty(), model=args.model, overrides=args.overrides)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from sdet.data.check import check_dataset, show_dataset
    from sdet.data.formats import parse_data_spec

    name, root = parse_data_spec(args.spec)
    if args.data_command == "show":
        written = show_dataset(name, root, args.split, Path(args.out), limit=args.limit, ext=args.ext)
        print(f"wrote {len(written)} images with ground truth (green: care, red: don't care) to {args.out}")
        return 0
    report = check_dataset(name, root, args.split)
    print(json.dumps(report.to_dict()) if args.json else report.format())
    if report.problems:
        print(f"sdet: error: {len(report.problems)} problem(s) in {args.spec} split {args.split}", file=sys.stderr)
        return 2
    return 0


def cmd_import_paddle(args: argparse.Namespace) -> int:
    from sdet.deploy.paddle_import import import_paddle

    print(import_paddle(args.pdparams, args.config, args.out).summary())
    return 0


def cmd_import_onnx(args: argparse.Namespace) -> int:
    from sdet.deploy.onnx_import import import_onnx

    import_onnx(args.model, args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a detector from a YAML config")
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.max_steps=20")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint (or an exported .onnx) on a dataset split")
    p.add_argument("checkpoint", help="sdet checkpoint, or an .onnx file from `sdet export` (run by onnxruntime)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of post.* / data.input.*")
    p.add_argument("--data", help="NAME:ROOT (default: the checkpoint's dataset)")
    p.add_argument("--split", help="split name (default: the checkpoint's val split)")
    p.add_argument("--protocol", help="icdar2015, deteval, total-text, total-text-iou, td500 or td500-iou "
                                      "(default: data.protocol, else the dataset's default; docs/DATASETS.md)")
    p.add_argument("--limit", type=_positive_int, default=None, help="evaluate only the first N images")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print only the JSON result line")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="detect text in images; writes JSON + overlay PNGs")
    p.add_argument("checkpoint", help="sdet checkpoint, or an .onnx file from `sdet export` (run by onnxruntime)")
    p.add_argument("inputs", nargs="+", help="image files or folders (then key=value overrides)")
    p.add_argument("--out", required=True)
    p.add_argument("--entropy", action="store_true", help="also write entropy maps and per-detection entropy")
    p.set_defaults(func=cmd_predict, overrides=[])

    p = sub.add_parser("score", help="score submission files against ground truth (no model)")
    p.add_argument("--gt", required=True)
    p.add_argument("--pred", required=True)
    p.add_argument("--protocol", default="icdar2015",
                   help="icdar2015 (default), deteval, total-text, total-text-iou, td500 or td500-iou "
                        "(formats: sdet/metrics/submission.py)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("data", help="inspect a dataset: counts and problems (check), ground truth drawn (show)")
    data = p.add_subparsers(dest="data_command", required=True)
    d = data.add_parser("check", help="counts, vertex histogram, image sizes, every problem (exit 2 if any)")
    d.add_argument("spec", help="NAME:ROOT, e.g. msra-td500:/data/MSRA-TD500")
    d.add_argument("--split", default="train")
    d.add_argument("--json", action="store_true", help="print the report as one JSON object")
    d.set_defaults(func=cmd_data)
    d = data.add_parser("show", help="draw ground-truth polygons on images (green: care, red: don't care)")
    d.add_argument("spec", help="NAME:ROOT")
    d.add_argument("--out", required=True)
    d.add_argument("--split", default="train")
    d.add_argument("--limit", type=int, default=20, help="first N images (0: all)")
    d.add_argument("--ext", default="jpg", choices=("jpg", "png"))
    d.set_defaults(func=cmd_data)

    p = sub.add_parser("import-paddle", help="convert a PaddleOCR DB checkpoint (.pdparams + config.yml)")
    p.add_argument("pdparams")
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_import_paddle)

    p = sub.add_parser("import-onnx", help="convert a PaddleOCR DB detector's ONNX export (e.g. PP-OCRv3 det) "
                                           "to an sdet checkpoint (docs/IMPORT.md)")
    p.add_argument("model", help="the .onnx file")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_import_onnx)

    p = sub.add_parser("compare", help="train variants of a config over seeds; table of mean and 95%% CI")
    p.add_argument("config", help="YAML config shared by every variant")
    p.add_argument("overrides", nargs="*", help="key=value overrides shared by every variant")
    p.add_argument("--variant", action="append", default=[], help="NAME:key=value[,key=value...] (repeat)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--out", required=True)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("reproduce", help="train and evaluate a table of the paper over seeds, beside its numbers "
                                         "(docs/REPRODUCTION.md)")
    p.add_argument("table", help="1..6 (or table1..table6) or all")
    p.add_argument("overrides", nargs="*", help="key=value overrides applied to every run, e.g. train.max_steps=1000")
    p.add_argument("--data", action="append", default=[], metavar="NAME=ROOT",
                   help="a dataset root (repeat): icdar2013, icdar2015, td500, hust-tr400 (with td500: TD-TR), "
                        "total-text, casia-10k")
    p.add_argument("--data-root", help="a folder holding the datasets as sub-folders named as --data's NAMEs "
                                       "(or msra-td500, HUST-TR400, Total-Text, CASIA-10K); --data wins")
    p.add_argument("--pretrained", action="append", default=[], metavar="NAME=PATH",
                   help="ImageNet state dict for a backbone (repeat): mv3 (MobileNetV3-large), r50 (ResNet50)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, or a count N for seeds 0..N-1")
    p.add_argument("--out", default="runs/reproduce")
    p.add_argument("--dry-run", action="store_true", help="print every run as its `sdet train` command; train nothing")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("export", help="export the aux-free inference graph to ONNX (checked with onnxruntime)")
    p.add_argument("checkpoint")
    p.add_argument("--onnx", required=True, help="output .onnx path")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--int8", action="store_true", help="also write MODEL.int8.onnx: static int8 (QDQ), calibrated")
    p.add_argument("--calib", help="calibration images for --int8: NAME:ROOT (its training split) or a folder")
    p.add_argument("--calib-count", type=_positive_int, default=32, help="calibration images drawn (seeded)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("viz", help="visualisations")
    viz = p.add_subparsers(dest="viz_command", required=True)
    v = viz.add_parser("entropy", help="image | main-head entropy | aux-head entropy (SDET training checkpoint)")
    v.add_argument("checkpoint", help="inference checkpoint (best.pt) or SDET training checkpoint (last.pt)")
    v.add_argument("image")
    v.add_argument("--out", default="entropy.png")
    v.set_defaults(func=cmd_viz_entropy)

    p = sub.add_parser("demo", help="synthetic data -> train baseline and SDET MV3-DB (or -EAST) -> evaluate -> overlays")
    p.add_argument("overrides", nargs="*", help="key=value overrides on top of the demo recipe (to try variants)")
    p.add_argument("--out", default="demo_out")
    p.add_argument("--model", default="db", choices=("db", "east"), help="detector family (default db)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="training steps per method (default: the model's recipe)")
    p.add_argument("--methods", default="baseline,sdet", help="comma-separated: baseline,sdet")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if hasattr(args, "overrides"):  # key=value items may stand anywhere, also after options
        if args.command == "predict":
            extra = [a for a in args.inputs if "=" in a and not Path(a).exists()] + extra
            args.inputs = [a for a in args.inputs if a not in extra]
        args.overrides = list(args.overrides) + [a for a in extra if "=" in a and not a.startswith("-")]
        extra = [a for a in extra if a not in args.overrides]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from sdet.engine.runtime import tune_glibc_malloc

    tune_glibc_malloc()
    try:
        return args.func(args)
    except UserError as exc:
        print(f"sdet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sdet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
