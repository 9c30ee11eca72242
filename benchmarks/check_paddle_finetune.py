"""Fine-tune check: sdet's DB targets, loss and augmentation must not hurt a trained model.

Usage: python benchmarks/check_paddle_finetune.py [--steps 300] [--out runs/ppocr_finetune_check]

Imports the PaddleOCR ICDAR2015 DB checkpoint from ../shared/weights, evaluates it on the
500 ICDAR2015 test images, fine-tunes it with configs/icdar2015/ppocr_mv3_db_finetune.yaml
(Adam 1e-4, batch 8, 960x960 crops: the crop size in the checkpoint's own config.yml), evaluates
again and compares. Broken label generation or loss scaling wrecks a trained detector within a
few hundred steps, so the check passes only if hmean falls by at most 0.02 and the training
loss does not rise by more than --loss-tolerance (1%). The loss is measured on the same fixed
augmented training batches before and after (BN in eval mode), because the running loss of
random crops moves by more than a real effect between two windows of 60 steps (its standard
error there is about 0.1). The small tolerance is there because a converged model fine-tuned
at a learning rate above the end of its own schedule (PaddleOCR's cosine decays to ~0) moves
around its optimum rather than down; broken labels or loss weights show up as a large rise.
Exits 1 on failure, 0 (skipped) without data.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from common import ICDAR2015, PADDLE_WEIGHTS, REPO, machine_line


def fixed_batch_loss(checkpoint: Path, cfg, batches: int) -> float:
    """Mean detector loss of ``checkpoint`` on ``batches`` seeded training batches, BN in eval mode.

    The batches are a pure function of the seed (seed 12345, apart from the run's), so the
    value before and after fine-tuning is measured on identical images, crops and targets.
    """
    import torch

    from sdet.checkpoint import load_detector
    from sdet.data.datasets import TrainDataset, load_split
    from sdet.detectors import build_loss

    detector, _, _ = load_detector(checkpoint)
    detector.train()  # the DB head returns its training maps (threshold, binary) only in train mode
    for module in detector.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()  # running statistics: the batches must not change the model
    dataset = TrainDataset(load_split(cfg.data, cfg.data.train_split), cfg.data, cfg.model.type, seed=12345)
    loss_fn = build_loss(cfg)
    size, total = cfg.train.batch_size, 0.0
    with torch.no_grad():
        for b in range(batches):
            items = [dataset[(b * size + i, (b * size + i) * 7919 % len(dataset))] for i in range(size)]
            batch = {k: torch.stack([item[k] for item in items]) for k in items[0]}
            total += float(sum(loss_fn(detector(batch["image"]).logits, batch).values()))
    return total / batches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default=str(REPO / "runs" / "ppocr_finetune_check"))
    parser.add_argument("--limit", type=int, default=0, help="evaluate on the first N test images only")
    parser.add_argument("--image-size", type=int, default=960, help="training crop (PaddleOCR's config.yml: 960)")
    parser.add_argument("--loss-batches", type=int, default=12, help="fixed training batches for the loss check")
    parser.add_argument("--loss-tolerance", type=float, default=0.01, help="allowed relative rise of that loss")
    args = parser.parse_args(argv)
    if not (PADDLE_WEIGHTS / "best_accuracy.pdparams").exists() or not ICDAR2015.is_dir():
        print(f"check_paddle_finetune: skipped, needs {PADDLE_WEIGHTS} and {ICDAR2015}")
        return 0

    from sdet.checkpoint import load_detector
    from sdet.config import load_config
    from sdet.data.formats import load_samples
    from sdet.deploy.paddle_import import import_paddle
    from sdet.engine.evaluator import evaluate
    from sdet.engine.trainer import Trainer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    imported = out / "imported.pt"
    cfg = load_config(str(REPO / "configs/icdar2015/ppocr_mv3_db_finetune.yaml"), [
        f"data.root={ICDAR2015}", f"train.init_from={imported}", f"train.max_steps={args.steps}",
        f"train.out_dir={out / 'run'}", "train.log_every=1", f"data.image_size={args.image_size}",
    ])
    print(machine_line("check_paddle_finetune", cfg.train.threads), flush=True)
    import_paddle(PADDLE_WEIGHTS / "best_accuracy.pdparams", PADDLE_WEIGHTS / "config.yml", imported, echo=None)
    test = load_samples("icdar2015", str(ICDAR2015), "test")
    if args.limit:
        test = test[: args.limit]

    def score(path: Path) -> dict:
        detector, saved_cfg, _ = load_detector(path)
        return evaluate(detector, test, saved_cfg).to_dict()

    t0 = time.time()
    before = score(imported)
    print(f"before: P {before['precision']:.4f} R {before['recall']:.4f} F {before['hmean']:.4f} "
          f"({len(test)} images, {time.time() - t0:.0f} s)", flush=True)
    t0 = time.time()
    fixed_before = fixed_batch_loss(imported, cfg, args.loss_batches)
    print(f"loss on {args.loss_batches} fixed training batches before: {fixed_before:.4f} ({time.time() - t0:.0f} s)", flush=True)
    t0 = time.time()
    Trainer(cfg, progress=False).run()
    train_s = time.time() - t0
    losses = [r["loss"] for r in map(json.loads, (out / "run" / "log.jsonl").read_text().splitlines())
              if r.get("event") == "train"]
    fifth = max(1, len(losses) // 5)
    first, last = statistics.mean(losses[:fifth]), statistics.mean(losses[-fifth:])
    after = score(out / "run" / "best.pt")
    fixed_after = fixed_batch_loss(out / "run" / "best.pt", cfg, args.loss_batches)
    drop = before["hmean"] - after["hmean"]
    ok = drop <= 0.02 and fixed_after <= fixed_before * (1 + args.loss_tolerance)
    print(f"fine-tune: {args.steps} steps in {train_s / 60:.1f} min; running loss: mean of the first {fifth} steps "
          f"{first:.4f}, of the last {fifth} {last:.4f}")
    print(f"loss on the fixed training batches: before {fixed_before:.4f}, after {fixed_after:.4f} "
          f"({fixed_after / fixed_before - 1:+.2%}, allowed {args.loss_tolerance:+.0%})")
    print(f"after:  P {after['precision']:.4f} R {after['recall']:.4f} F {after['hmean']:.4f}; hmean change "
          f"{-drop:+.4f} -> {'PASS' if ok else 'FAIL'}")
    print(json.dumps({"before": before, "after": after, "loss_first": first, "loss_last": last,
                      "fixed_loss_before": fixed_before, "fixed_loss_after": fixed_after,
                      "train_seconds": round(train_s), "pass": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
