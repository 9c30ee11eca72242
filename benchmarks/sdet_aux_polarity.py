"""Does SDET's auxiliary head learn the text map, or does the entropy term lock a random polarity?

Usage: python benchmarks/sdet_aux_polarity.py --init runs/ppocrv3.pt [--data icdar2015:ROOT]
       [--aux-type C] [--steps 300] [--et-from 150] [--batches 10] [--batch 4] [--threads 1]

Binary entropy cannot tell p from 1 - p. After a text-pretrained start the main head is confident
almost everywhere (entropy ~0 on the background, which is ~99% of a 640 crop), so an entropy term
on from step 0 pushes every auxiliary pixel to be confident in whatever sign it starts with, before
the GT term has set which sign means text. This isolates that effect: the detector is frozen (eval
mode, its P3 features and text logits cached for `--batches` training crops of the config's
augmentation), and only a fresh auxiliary head trains, with Adam at the recipe's lr, under:

  GT only            the detector's own text loss (Dice for the PP-OCRv3 recipe), no entropy term
  GT + ET            the entropy term from step 0 (SDET's reconstructed default)
  GT + ET masked     the same inside GT text only (SDET-M)
  GT, ET from K      the entropy term switched on at step `--et-from` (et_start_step)

Every 25 steps it prints the IoU of (aux logit > 0) with the GT text over the first three cached
batches, and the share of pixels the head calls text; the main head's IoU is printed first for
scale. A frozen detector is the start of training without the co-adaptation that follows; the
trainer logs the same IoU (`aux_text_iou`) for full runs.
"""
from __future__ import annotations

import argparse
import time
from typing import Dict, List, Optional, Tuple

from common import REPO, machine_line, run_script

RECIPE = REPO / "configs/icdar2015/ppocrv3_db_finetune.yaml"


def iou_and_share(logit, gt, mask) -> Tuple[float, float]:
    from sdet.methods.sdet import text_overlap

    intersection, union = text_overlap(logit, gt, mask).tolist()
    return (intersection / union if union else 0.0), float((logit > 0).float().mean())


def mean_iou_and_share(logits, cached, det_loss) -> str:
    """IoU with the GT text and share of pixels called text, averaged over the cached batches given."""
    scores = [iou_and_share(logit, *det_loss.text_target(c[2])) for logit, c in zip(logits, cached)]
    return (f"IoU {sum(s[0] for s in scores) / len(scores):.3f} "
            f"text share {sum(s[1] for s in scores) / len(scores):.3f}")


def cache_batches(cfg, detector, count: int, batch: int, seed: int) -> List[Tuple]:
    """(P3 features, main text logit, batch) for `count` augmented training batches, detector frozen."""
    import torch
    from torch.utils.data import default_collate

    from sdet.data.datasets import TrainDataset, load_split

    dataset = TrainDataset(load_split(cfg.data, cfg.data.train_split), cfg.data, cfg.model.type, seed)
    cached = []
    for b in range(count):
        items = [dataset[(b * batch + i, (b * batch + i) * 53 % len(dataset))] for i in range(batch)]
        data = default_collate(items)
        with torch.no_grad():
            out = detector(data["image"])
        cached.append((out.features.levels[3], out.logits[detector.text_key], data))
    return cached


def train_aux(detector, det_loss, cached, aux_type: str, steps: int, et_from: Optional[int], masked: bool,
              lr: float) -> List[str]:
    import torch

    from sdet.methods.aux_heads import build_aux_head
    from sdet.methods.sdet import entropy_transfer_loss
    from sdet.ops.maps import resize_like

    torch.manual_seed(0)
    head = build_aux_head(aux_type, detector.neck.level_channels, detector.head)
    optimizer = torch.optim.Adam(head.parameters(), lr)
    history = []
    for step in range(steps):
        p3, main, batch = cached[step % len(cached)]
        logit = resize_like(head(p3), main)
        loss = det_loss.text_loss(logit, batch)
        if et_from is not None and step >= et_from:
            loss = loss + entropy_transfer_loss(logit, main, True, batch["text_mask"] if masked else None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % 25 == 0 or step + 1 == steps:
            with torch.no_grad():
                logits = [resize_like(head(c[0]), c[1]) for c in cached[:3]]
            history.append(f"{step + 1}: {mean_iou_and_share(logits, cached[:3], det_loss)}")
    return history


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(RECIPE))
    parser.add_argument("--init", help="the detector's weights (e.g. `sdet import-onnx` of PP-OCRv3); random if absent")
    parser.add_argument("--data", help="NAME:ROOT (default: the config's data.name and data.root)")
    parser.add_argument("--aux-type", default="C", choices=("A", "B", "C"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--et-from", type=int, default=150)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("overrides", nargs="*", help="key=value config overrides (e.g. data.image_size=320)")
    args = parser.parse_args(argv)

    import torch

    from sdet.checkpoint import load_checkpoint, load_weights_into
    from sdet.config import load_config
    from sdet.detectors import build_loss
    from sdet.models.detector import build_detector

    torch.set_num_threads(args.threads)
    overrides = list(args.overrides)
    if args.data:
        name, _, root = args.data.partition(":")
        overrides += [f"data.name={name}", f"data.root={root}"]
    cfg = load_config(args.config, overrides)
    print(machine_line("sdet_aux_polarity", args.threads))
    detector = build_detector(cfg.model)
    if args.init:
        load_weights_into(detector, load_checkpoint(args.init), args.init, "all")
    else:
        print("  no --init: a randomly initialised detector (its entropy is ~1 everywhere, unlike a trained one)")
    detector.eval()
    det_loss = build_loss(cfg)
    start = time.perf_counter()
    cached = cache_batches(cfg, detector, args.batches, args.batch, cfg.train.seed)
    main_scores = mean_iou_and_share([c[1] for c in cached[:3]], cached[:3], det_loss)
    print(f"  {args.batches} batches of {args.batch} {cfg.data.image_size}px training crops ({cfg.data.name}) cached "
          f"in {time.perf_counter() - start:.0f} s; main head: {main_scores}")
    variants: Dict[str, Tuple[Optional[int], bool]] = {
        "GT only": (None, False),
        "GT + ET": (0, False),
        "GT + ET masked": (0, True),
        f"GT, ET from {args.et_from}": (args.et_from, False),
    }
    for name, (et_from, masked) in variants.items():
        history = train_aux(detector, det_loss, cached, args.aux_type, args.steps, et_from, masked, cfg.train.lr)
        print(f"  {args.aux_type} {name:18s} " + " | ".join(history), flush=True)
    return 0


if __name__ == "__main__":
    run_script("sdet_aux_polarity", main)
