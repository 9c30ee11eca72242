"""The SDET comparison of docs/SDET.md at the paper's 640-crop / 1280-test scale on a lent GPU.

Only the repository travels to the `device` machine (64 MiB in all), and one command there may
run 10 minutes, so the run is in three steps:

1. here:  python benchmarks/gpu_sdet_compare.py prepare --dataset icdar2015 --root ../shared/data/icdar2015 \
              --onnx .../rapidocr_onnxruntime/models/ch_PP-OCRv3_det_infer.onnx
   re-encodes every image of the dataset as WebP at the highest quality that fits --budget-mib
   (read in the raw pixel frame the annotations refer to; ground truth copied unchanged), imports
   the PP-OCRv3 initialisation and downloads the wheels the GPU image lacks (pyclipper, shapely),
   all under the git-ignored .carry/. It prints the device command.
2. there: the `device` tool, carry [".carry"], the printed command. `run` first calibrates on the
   card (one evaluation of the initialisation at the test scale, a short training of every
   variant), then gives every (variant, seed) run the same number of steps, as many as fit
   --minutes (dropping seeds from the end rather than going below --min-steps), trains them
   seed after seed (`sdet compare`: final weights, no selection on the test split) and, after
   every run, writes runs.json (each finished run's result) and gpu_run.json to --out ($OUT), so a
   call cut off at its limit still returns what it finished.
3. here:  python benchmarks/gpu_sdet_compare.py append --result FILES_AT
   appends the tables (built from runs.json) to docs/SDET.md with the card, the command, the steps
   and the seeds.

`run --device cpu` rehearses step 2 on this machine with tiny budgets (tests/test_gpu_compare.py).
Numbers from re-encoded images are stated as such (the WebP quality is recorded).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, also when loaded by path
from common import REPO, SDET_VARIANTS  # noqa: E402  (common puts the repository on sys.path)

from sdet.experiments.compare import (  # noqa: E402  (light: no torch at import)
    Variant, format_comparison, parse_seeds, parse_variant, run_comparison, train_records)

CARRY = REPO / ".carry"
QUALITIES = (95, 90, 85, 80, 75, 70, 60, 50, 40)
WHEELS = ("pyclipper", "shapely")  # what the GPU image lacks of sdet's dependencies (device KINDS.md)


@dataclass(frozen=True)
class DatasetLayout:
    config: str  # the CPU recipe this GPU run scales up
    image_folders: Sequence[str]  # folders (relative to the root) whose images are re-encoded
    gt_folders: Sequence[str]  # folders copied unchanged (may be the image folders: TD500 keeps .gt beside images)
    gt_suffix: str
    test_overrides: Sequence[str]  # the paper's test scale


LAYOUTS: Dict[str, DatasetLayout] = {
    "icdar2015": DatasetLayout(
        "configs/icdar2015/ppocrv3_db_finetune.yaml",
        ("ch4_training_images", "ch4_test_images"),
        ("ch4_training_localization_transcription_gt", "Challenge4_Test_Task1_GT"), ".txt",
        ("data.input.test_resize=long_side", "data.input.test_size=1280")),
    "msra-td500": DatasetLayout(
        "configs/td500/ppocrv3_db_finetune.yaml", ("train",), ("train",), ".gt",
        ("data.input.test_resize=long_side", "data.input.test_size=1280")),
}


# --------------------------------------------------------------------------- prepare (here)


def _encode(path: Path, quality: int) -> bytes:
    from sdet.data.images import read_image

    ok, data = cv2.imencode(".webp", read_image(path, orientation="raw"), [cv2.IMWRITE_WEBP_QUALITY, quality])
    if not ok:
        raise SystemExit(f"error: {path}: OpenCV cannot encode WebP")
    return data.tobytes()


def choose_quality(images: Sequence[Path], budget_bytes: int, sample: int = 24) -> int:
    """The highest WebP quality whose size, estimated on an even sample of the images, fits the budget."""
    picks = [images[round(i * (len(images) - 1) / max(sample - 1, 1))] for i in range(min(sample, len(images)))]
    for quality in QUALITIES:
        estimate = sum(len(_encode(p, quality)) for p in picks) * len(images) / len(picks)
        if estimate <= 0.95 * budget_bytes:
            return quality
    raise SystemExit(f"error: {len(images)} images do not fit {budget_bytes / 2**20:.0f} MiB even at WebP quality "
                     f"{QUALITIES[-1]}; raise --budget-mib or carry fewer images")


def encode_dataset(dataset: str, root: Path, out: Path, budget_mib: float) -> dict:
    """Re-encode the dataset's images under ``out`` (same folder and stem, .webp) and copy its GT.

    Returns the manifest: image count, WebP quality, sizes. The quality is lowered one step at a
    time while the encoded total is over the budget (the sample estimate can be short).
    """
    from sdet.data.readers.common import list_images

    layout = LAYOUTS[dataset]
    folders = [root / f for f in layout.image_folders]
    for folder in folders + [root / f for f in layout.gt_folders]:
        if not folder.is_dir():
            raise SystemExit(f"error: {folder}: folder not found (expected the official {dataset} layout)")
    gt_files = [p for f in layout.gt_folders for p in sorted((root / f).glob(f"*{layout.gt_suffix}"))]
    budget = int(budget_mib * 2**20) - sum(p.stat().st_size for p in gt_files)
    images = [p for f in folders for p in list_images(f)]
    if not images:
        raise SystemExit(f"error: {root}: no images in {', '.join(layout.image_folders)}")
    if out.exists():
        shutil.rmtree(out)
    quality = choose_quality(images, budget)
    while True:
        total = 0
        for path in images:
            target = out / path.parent.name / (path.stem + ".webp")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_encode(path, quality))
            total += target.stat().st_size
        if total <= budget or quality == QUALITIES[-1]:
            break
        quality = QUALITIES[QUALITIES.index(quality) + 1]
        print(f"over budget ({total / 2**20:.1f} MiB), re-encoding at quality {quality}")
    for gt in gt_files:
        (out / gt.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(gt, out / gt.parent.name / gt.name)
    return {"dataset": dataset, "source": str(root), "images": len(images), "webp_quality": quality,
            "image_mib": round(total / 2**20, 2), "gt_mib": round(sum(p.stat().st_size for p in gt_files) / 2**20, 2)}


def prepare(args: argparse.Namespace) -> None:
    from sdet.cli import main as sdet_main

    carry = Path(args.out)
    manifest = encode_dataset(args.dataset, Path(args.root), carry / args.dataset, args.budget_mib)
    if sdet_main(["import-onnx", args.onnx, "--out", str(carry / "ppocrv3.pt")]) != 0:
        raise SystemExit("error: import-onnx failed")
    if not args.no_wheels:
        _download_wheels(carry / "whl")
    (carry / f"{args.dataset}.json").write_text(json.dumps(manifest, indent=1))
    print(json.dumps(manifest))
    print("device command (carry [\".carry\"], timeout_s 600):\n  python3 -m pip install -q --no-index --no-deps "
          "--target /tmp/site .carry/whl/*.whl && PYTHONPATH=.:/tmp/site PYTHONUNBUFFERED=1 python3 "
          f"benchmarks/gpu_sdet_compare.py run --dataset {args.dataset} --minutes 8 --out $OUT")


def _download_wheels(folder: Path) -> None:
    from importlib.metadata import version

    folder.mkdir(parents=True, exist_ok=True)
    platforms = [f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")]
    for name in WHEELS:
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                   "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(folder),
                   f"{name}=={version(name)}"]
        if subprocess.run(command).returncode != 0:
            raise SystemExit(f"error: pip could not download a {name} wheel for the GPU image (Python 3.12)")


# --------------------------------------------------------------------------- run (there)


@dataclass
class Calibration:
    init_hmean: Optional[float]  # the initialisation's F at the test scale (step 0); None without an init
    eval_seconds: float  # one evaluation of the test split, loading included
    sec_per_step: float  # steady-state training step, the mean over the variants (each trains as many steps)
    run_overhead_seconds: float  # a short run's wall time beyond its steps (build, loaders, saves), mean
    sec_per_step_by_variant: Dict[str, float] = field(default_factory=dict)  # SDET's heads cost extra


def plan_steps(budget_s: float, runs: int, cal: Calibration, max_steps: int, multiple: int = 50) -> int:
    """The steps each of ``runs`` runs gets so that all of them, evaluations included, fit ``budget_s``:
    rounded down to ``multiple`` (when above it) and capped at ``max_steps``."""
    per_run = budget_s / runs - cal.eval_seconds - cal.run_overhead_seconds
    steps = min(max_steps, max(int(per_run / cal.sec_per_step), 0))
    return steps - steps % multiple if steps > multiple else steps


def plan_runs(budget_s: float, variants: int, seeds: int, cal: Calibration, min_steps: int, max_steps: int) -> Tuple[int, int]:
    """(seeds, steps): every variant always runs, with as many of the seeds as leave each run
    ``min_steps`` or more. Fewer seeds rather than undertrained models; none fitting is an error."""
    for count in range(seeds, 0, -1):
        steps = plan_steps(budget_s, variants * count, cal, max_steps)
        if steps >= min_steps:
            return count, steps
    raise SystemExit(f"error: {variants} variants x {min_steps} steps do not fit {budget_s / 60:.1f} min even with one "
                     f"seed ({cal.sec_per_step:.3f} s/step, {cal.eval_seconds:.0f} s per evaluation): use fewer "
                     "--variant, fewer --min-steps or more --minutes")


def calibrate(config: str, common: Sequence[str], init: Optional[Path], work: Path, steps: int,
              variants: Sequence[Variant]) -> Calibration:
    """Measure on this machine what plan_steps needs: an evaluation, and a short training of every
    variant (an SDET step costs more than a baseline one, and every variant trains the same steps)."""
    import torch

    from sdet.checkpoint import load_checkpoint, load_weights_into
    from sdet.config import load_config
    from sdet.data.datasets import load_split
    from sdet.engine.evaluator import evaluate
    from sdet.engine.trainer import Trainer, resolve_device
    from sdet.models.detector import build_detector

    cfg = load_config(config, [*common, "method.name=baseline"])
    detector = build_detector(cfg.model)
    if init is not None:
        load_weights_into(detector, load_checkpoint(init), init)
    detector.to(resolve_device(cfg.train.device))
    start = time.monotonic()
    metric = evaluate(detector, load_split(cfg.data, cfg.data.val_split), cfg)
    eval_seconds = time.monotonic() - start
    del detector
    step_seconds, overheads = {}, []
    for variant in variants:
        out_dir = work / "calibration" / variant.name
        if out_dir.exists():
            shutil.rmtree(out_dir)
        cfg = load_config(config, [*common, *variant.overrides, f"train.out_dir={out_dir}", f"train.max_steps={steps}",
                                   f"train.save_every={steps}", f"train.log_every={max(steps // 4, 1)}"])
        start = time.monotonic()
        Trainer(cfg, progress=False).run()
        wall = time.monotonic() - start
        step_seconds[variant.name] = train_records(out_dir / "log.jsonl")[-1]["sec_per_step"]
        overheads.append(max(wall - steps * step_seconds[variant.name], 0.0))
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return Calibration(metric.hmean if init is not None else None, round(eval_seconds, 2),
                       sum(step_seconds.values()) / len(step_seconds), round(sum(overheads) / len(overheads), 2),
                       step_seconds)


def run(args: argparse.Namespace) -> None:
    import torch

    started = time.monotonic()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device: this step is for the lent GPU machine (--device cpu rehearses it)")
    layout = LAYOUTS[args.dataset]
    carry = Path(args.carry)
    data_root = carry / args.dataset
    if not data_root.is_dir():
        raise SystemExit(f"error: {data_root}: not found; run `prepare` here and carry .carry")
    init = Path(args.init) if args.init else None
    if init is not None and not init.is_file():
        raise SystemExit(f"error: {init}: not found; run `prepare` here (it imports the PP-OCRv3 initialisation)")
    config = str(REPO / layout.config)
    common = [
        f"data.root={data_root}", f"train.device={args.device}", f"train.amp={args.amp if args.device == 'cuda' else 'off'}",
        f"train.batch_size={args.batch}", f"data.num_workers={args.workers}", f"train.threads={args.threads}",
        "train.eval_every=0", "data.image_size=640", *layout.test_overrides,
        *([f"train.init_from={init}"] if init is not None else []), *args.overrides,
    ]
    variants = [parse_variant(v) for v in (args.variant or SDET_VARIANTS)]
    seeds = parse_seeds(args.seeds)
    work = Path(args.work)
    cal = calibrate(config, common, init, work, args.calib_steps, variants)
    budget = args.minutes * 60 - (time.monotonic() - started)
    if args.steps:
        steps = args.steps
    else:
        count, steps = plan_runs(budget, len(variants), len(seeds), cal, args.min_steps, args.max_steps)
        seeds = seeds[:count]
    print(f"calibration: {json.dumps(asdict(cal))}; {steps} steps per run, {len(variants)} variants x seeds {seeds}")
    schedule = [f"train.max_steps={steps}", f"train.save_every={max(steps // 4, 1)}",
                f"train.warmup_steps={max(steps // 20, 1)}", f"train.log_every={max(steps // 10, 1)}"]
    card = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU ({args.threads} threads)"
    info = {"card": card, "torch": torch.__version__, "dataset": args.dataset, "config": layout.config,
            "common": [*common, *schedule], "variants": [v.name for v in variants], "seeds": [], "steps": steps,
            "calibration": asdict(cal)}
    manifest = carry / f"{args.dataset}.json"
    if manifest.is_file():
        info["data"] = json.loads(manifest.read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done: Dict[Tuple[str, int], dict] = {}

    def keep(name: str, result: dict) -> None:  # after every run: a call cut off at its limit still returns these
        done[(name, result["seed"])] = {"variant": name, **result}
        info["wall_min"] = round((time.monotonic() - started) / 60, 2)
        publish(out, info, list(done.values()))

    for seed in seeds:  # seed after seed, so an overrun leaves whole pairs
        if info["seeds"] and time.monotonic() - started > args.minutes * 60:
            print(f"--minutes {args.minutes} reached after seeds {info['seeds']}")
            break
        run_comparison(config, [*common, *schedule], variants, [*info["seeds"], seed], work / "compare", echo=print,
                       on_result=keep)
        info["seeds"].append(seed)
        publish(out, info, list(done.values()))
    print(json.dumps(info))


def publish(out: Path, info: dict, runs: Sequence[dict]) -> None:
    """gpu_run.json and runs.json into ``out`` ($OUT returns few, shallow files: the run folders stay)."""
    (out / "runs.json").write_text(json.dumps(list(runs), indent=1))
    (out / "gpu_run.json").write_text(json.dumps(info, indent=1))


def result_table(result: Path, info: dict) -> str:
    """table.md of every run that finished, a seed cut off mid-way included (its runs pair by seed)."""
    runs: Dict[str, list] = {name: [] for name in info["variants"]}
    for run_result in json.loads((result / "runs.json").read_text()):
        runs[run_result["variant"]].append(run_result)
    runs = {name: results for name, results in runs.items() if results}
    if not runs:
        raise SystemExit(f"error: {result / 'runs.json'}: no run finished")
    seeds = sorted({r["seed"] for results in runs.values() for r in results})
    return format_comparison(runs, seeds, next(iter(runs)))  # the first variant with a run: the baseline, as a rule


# --------------------------------------------------------------------------- append (here)


def append(args: argparse.Namespace) -> None:
    result = Path(args.result)
    for name in ("gpu_run.json", "runs.json"):
        if not (result / name).is_file():
            raise SystemExit(f"error: {result / name}: not found (--result is the folder the device run's $OUT came back to)")
    info = json.loads((result / "gpu_run.json").read_text())
    table = result_table(result, info)
    data, cal = info.get("data", {}), info["calibration"]
    init = "" if cal["init_hmean"] is None else f" The PP-OCRv3 initialisation scores F {cal['init_hmean']:.4f} at this test scale (step 0)."
    section = [
        "", f"### GPU comparison: {info['dataset']} on {info['card']} ({time.strftime('%Y-%m-%d')})", "",
        f"`benchmarks/gpu_sdet_compare.py run --dataset {info['dataset']}` (torch {info['torch']}, "
        f"{info['wall_min']} min in all), recipe `{info['config']}` with:", "",
        "    " + " ".join(info["common"]), "",
        f"{info['steps']} steps per run (planned from {cal['sec_per_step']:.3f} s/step, the variants' mean measured on the card), "
        f"seeds {info['seeds']} finished (a cut-off seed's runs are in the table too), final weights "
        f"evaluated on the test split.{init} Images re-encoded as WebP "
        f"quality {data.get('webp_quality', '?')} to travel ({data.get('images', '?')} images, "
        f"{data.get('image_mib', '?')} MiB), in the annotations' raw frame.", "",
        table, "",
    ]
    with open(args.doc, "a", encoding="utf-8") as doc:
        doc.write("\n".join(section))
    print(f"appended to {args.doc}")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare", help="here: re-encode the data, import the init, fetch wheels into .carry/")
    p.add_argument("--dataset", choices=sorted(LAYOUTS), required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--onnx", required=True, help="ch_PP-OCRv3_det_infer.onnx (rapidocr-onnxruntime 1.2.3)")
    p.add_argument("--out", default=str(CARRY))
    p.add_argument("--budget-mib", type=float, default=52.0, help="images + ground truth (the call carries 64 MiB in all)")
    p.add_argument("--no-wheels", action="store_true", help="skip the wheel download (a machine that has them)")
    p.set_defaults(func=prepare)
    p = sub.add_parser("run", help="there: calibrate, then train and evaluate every variant and seed within --minutes")
    p.add_argument("--dataset", choices=sorted(LAYOUTS), required=True)
    p.add_argument("--carry", default=str(CARRY))
    p.add_argument("--init", default=str(CARRY / "ppocrv3.pt"), help="initialisation ('' = none)")
    p.add_argument("--out", required=True, help="summary.json, table.md, gpu_run.json ($OUT)")
    p.add_argument("--work", default="/tmp/sdet_gpu_compare", help="run folders")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget of the whole step")
    p.add_argument("--steps", type=int, default=0, help="steps per run (0: as many as fit --minutes)")
    p.add_argument("--min-steps", type=int, default=200)
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--calib-steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=12)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--amp", default="bf16", choices=("off", "bf16", "fp16"))
    p.add_argument("--variant", action="append", default=[], help="NAME:key=value,... (default: the four of docs/SDET.md)")
    p.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    p.set_defaults(func=run)
    p = sub.add_parser("append", help="here: append a fetched result to docs/SDET.md")
    p.add_argument("--result", required=True, help="the folder holding the fetched gpu_run.json and table.md")
    p.add_argument("--doc", default=str(REPO / "docs" / "SDET.md"))
    p.set_defaults(func=append)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
