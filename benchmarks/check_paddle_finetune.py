"""Fine-tune check: sdet's DB targets, loss and augmentation must not hurt a trained model.

Usage: python benchmarks/check_paddle_finetune.py [--steps 300] [--out runs/ppocr_finetune_check]

Imports the PaddleOCR ICDAR2015 DB checkpoint from ../shared/weights, evaluates it on the
500 ICDAR2015 test images, fine-tunes it with configs/icdar2015/ppocr_mv3_db_finetune.yaml
(Adam 1e-4, 640x640 crops, batch 8), evaluates again and compares. Broken label generation
or loss scaling wrecks a trained detector within a few hundred steps, so the check passes
only if hmean falls by at most 0.02 and the mean training loss of the last fifth of the
steps is not above that of the first fifth. Exits 1 on failure, 0 (skipped) without data.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from common import ICDAR2015, PADDLE_WEIGHTS, REPO, machine_line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default=str(REPO / "runs" / "ppocr_finetune_check"))
    parser.add_argument("--limit", type=int, default=0, help="evaluate on the first N test images only")
    args = parser.parse_args(argv)
    if not (PADDLE_WEIGHTS / "best_accuracy.pdparams").exists() or not ICDAR2015.is_dir():
        print(f"check_paddle_finetune: skipped, needs {PADDLE_WEIGHTS} and {ICDAR2015}")
        return 0

    from sdet.config import load_config
    from sdet.data.formats import load_samples
    from sdet.deploy.paddle_import import import_paddle
    from sdet.engine.checkpoint import load_detector
    from sdet.engine.evaluator import evaluate
    from sdet.engine.trainer import Trainer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(machine_line("check_paddle_finetune", 2))
    imported = out / "imported.pt"
    import_paddle(PADDLE_WEIGHTS / "best_accuracy.pdparams", PADDLE_WEIGHTS / "config.yml", imported, echo=None)
    test = load_samples("icdar2015", str(ICDAR2015), "test")
    if args.limit:
        test = test[: args.limit]

    def score(path: Path) -> dict:
        detector, cfg, _ = load_detector(path)
        return evaluate(detector, test, cfg).to_dict()

    t0 = time.time()
    before = score(imported)
    print(f"before: P {before['precision']:.4f} R {before['recall']:.4f} F {before['hmean']:.4f} "
          f"({len(test)} images, {time.time() - t0:.0f} s)", flush=True)
    cfg = load_config(str(REPO / "configs/icdar2015/ppocr_mv3_db_finetune.yaml"), [
        f"data.root={ICDAR2015}", f"train.init_from={imported}", f"train.max_steps={args.steps}",
        f"train.out_dir={out / 'run'}", "train.log_every=1",
    ])
    t0 = time.time()
    Trainer(cfg, progress=False).run()
    train_s = time.time() - t0
    losses = [r["loss"] for r in map(json.loads, (out / "run" / "log.jsonl").read_text().splitlines())
              if r.get("event") == "train"]
    fifth = max(1, len(losses) // 5)
    first, last = statistics.mean(losses[:fifth]), statistics.mean(losses[-fifth:])
    after = score(out / "run" / "best.pt")
    drop = before["hmean"] - after["hmean"]
    ok = drop <= 0.02 and last <= first
    print(f"fine-tune: {args.steps} steps in {train_s / 60:.1f} min; mean loss first {fifth} steps {first:.4f}, "
          f"last {fifth} steps {last:.4f}")
    print(f"after:  P {after['precision']:.4f} R {after['recall']:.4f} F {after['hmean']:.4f}; hmean change "
          f"{-drop:+.4f} -> {'PASS' if ok else 'FAIL'}")
    print(json.dumps({"before": before, "after": after, "loss_first": first, "loss_last": last,
                      "train_seconds": round(train_s), "pass": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
