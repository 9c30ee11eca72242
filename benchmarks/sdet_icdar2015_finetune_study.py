"""Seeded baseline-vs-SDET fine-tuning on real ICDAR2015 from the imported PaddleOCR model (docs/SDET.md, part b).

Usage: python benchmarks/sdet_icdar2015_finetune_study.py [--seeds 0,1,2] [--steps 100] [--out runs/sdet_ic15_study]

Every run starts from the same imported PaddleOCR MV3-DB weights (the auxiliary heads start
fresh), trains with configs/icdar2015/ppocr_mv3_db_finetune.yaml for --steps steps on the
1000 training images, and is evaluated on the 500 test images with the ICDAR2015 protocol.
A CPU-sized schedule: it measures whether SDET's extra terms help or hurt a trained model
in a short fine-tune, not the paper's from-ImageNet training.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import ICDAR2015, PADDLE_WEIGHTS, REPO, SDET_VARIANTS, study_machine_line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=960, help="training crop (960: the checkpoint's own)")
    parser.add_argument("--out", default=str(REPO / "runs" / "sdet_ic15_study"))
    parser.add_argument("--variant", action="append", help="override the default variants (NAME:k=v,...)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run (e.g. train.channels_last=false)")
    args = parser.parse_args(argv)
    if not (PADDLE_WEIGHTS / "best_accuracy.pdparams").exists() or not ICDAR2015.is_dir():
        print(f"sdet_icdar2015_finetune_study: skipped, needs {PADDLE_WEIGHTS} and {ICDAR2015}")
        return 0

    from sdet.deploy.paddle_import import import_paddle
    from sdet.experiments.compare import parse_seeds, parse_variant, run_comparison

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    imported = out / "imported.pt"
    if not imported.exists():
        import_paddle(PADDLE_WEIGHTS / "best_accuracy.pdparams", PADDLE_WEIGHTS / "config.yml", imported, echo=None)
    config = str(REPO / "configs/icdar2015/ppocr_mv3_db_finetune.yaml")
    common = [f"data.root={ICDAR2015}", f"train.init_from={imported}", f"train.max_steps={args.steps}",
              f"data.image_size={args.image_size}", "train.save_every=50", "train.log_every=10"]
    common += args.overrides
    print(study_machine_line("sdet_icdar2015_finetune_study", config, common), flush=True)
    run_comparison(config, common,
                   [parse_variant(v) for v in (args.variant or SDET_VARIANTS[:3])], parse_seeds(args.seeds),
                   out, echo=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
