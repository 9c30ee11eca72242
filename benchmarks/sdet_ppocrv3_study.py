"""Seeded baseline-vs-SDET comparison with the PP-OCRv3 fine-tune recipe (docs/SDET.md, part d; issue #13).

Usage:
    pip install --no-deps rapidocr-onnxruntime==1.2.3      # ships ch_PP-OCRv3_det_infer.onnx
    python benchmarks/sdet_ppocrv3_study.py --dataset icdar2015 [--seeds 0,1,2] [--out DIR]
    python benchmarks/sdet_ppocrv3_study.py --dataset msra-td500

Every run starts from PaddleOCR's PP-OCRv3 mobile detector (imported with `sdet import-onnx`;
the auxiliary heads start fresh), trains the CPU recipe of the dataset's
`ppocrv3_db_finetune.yaml` (1000 steps, batch 8, 640 crops, Adam 1e-3 with warm-up and cosine
decay to zero; 40-45 minutes on 2 cores of an AVX-512 EPYC, 70-85 on an AVX2-only one) and is
scored once, with its final weights, on the evaluation split: ICDAR2015's 500 test images, or
the MSRA-TD500 training images held out from training (every 5th, `train/holdout-5`). No
checkpoint is chosen by its test score.
Resumable: run it again and finished runs are skipped, an interrupted one continues. The runs
finished so far are kept in benchmarks/results/sdet_ppocrv3_<dataset>/; `--reuse` that folder to
continue the study on another machine without training them again.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from common import REPO, SDET_VARIANTS, SHARED, study_machine_line

DATASETS = {
    "icdar2015": ("configs/icdar2015/ppocrv3_db_finetune.yaml", SHARED / "data" / "icdar2015"),
    "msra-td500": ("configs/td500/ppocrv3_db_finetune.yaml", SHARED / "data" / "msra-td500"),
}


def installed_ppocrv3() -> Path | None:
    """ch_PP-OCRv3_det_infer.onnx from an installed rapidocr-onnxruntime 1.2.x, if any."""
    try:
        import rapidocr_onnxruntime
    except ImportError:
        return None
    path = Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv3_det_infer.onnx"
    return path if path.is_file() else None


def reuse_results(source: Path, out: Path) -> None:
    """Finished runs recorded elsewhere (another machine, an earlier session) count as done here."""
    for result in sorted(source.glob("*/seed*/result.json")):
        target = out / result.relative_to(source)
        if not target.exists() and not (target.parent / "last.pt").exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(result, target)
            print(f"reused {result.relative_to(source).parent}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="icdar2015")
    parser.add_argument("--root", help="dataset root (default: ../shared/data/<dataset>)")
    parser.add_argument("--onnx", help="ch_PP-OCRv3_det_infer.onnx (default: the installed rapidocr-onnxruntime's)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", help="default: runs/sdet_ppocrv3_<dataset>")
    parser.add_argument("--variant", action="append", help="override the default variants (NAME:k=v,...)")
    parser.add_argument("--reuse", help="a folder of finished runs' result.json (VARIANT/seedK/result.json, as in "
                        "benchmarks/results/): copied into --out where a run has none, so those runs are not trained again")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    args = parser.parse_args(argv)
    config, default_root = DATASETS[args.dataset]
    root = Path(args.root) if args.root else default_root
    onnx = Path(args.onnx) if args.onnx else installed_ppocrv3()
    if onnx is None or not onnx.is_file() or not root.is_dir():
        print(f"sdet_ppocrv3_study: skipped, needs {root} and ch_PP-OCRv3_det_infer.onnx "
              "(pip install --no-deps rapidocr-onnxruntime==1.2.3, or --onnx)")
        return 0

    from sdet.cli import main as sdet_main
    from sdet.experiments.compare import parse_seeds, parse_variant, run_comparison

    out = Path(args.out or REPO / "runs" / f"sdet_ppocrv3_{args.dataset}")
    out.mkdir(parents=True, exist_ok=True)
    if args.reuse:
        reuse_results(Path(args.reuse), out)
    init = out / "ppocrv3.pt"
    if not init.exists() and sdet_main(["import-onnx", str(onnx), "--out", str(init)]) != 0:
        return 2
    common = [f"data.root={root}", f"train.init_from={init}", "train.eval_every=0", *args.overrides]
    print(study_machine_line("sdet_ppocrv3_study", str(REPO / config), common), flush=True)
    run_comparison(str(REPO / config), common, [parse_variant(v) for v in (args.variant or SDET_VARIANTS)],
                   parse_seeds(args.seeds), out, echo=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
