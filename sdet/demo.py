"""`sdet demo` / `make demo`: synthetic data -> train MV3-DB on the CPU -> evaluate -> overlays.

Everything is generated locally from a seed, so the demo needs no download and gives the
same numbers on every run of the same machine type.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, List, Sequence

from sdet.config import Config, load_config


def demo_overrides(data_dir: Path, run_dir: Path, seed: int, steps: int) -> List[str]:
    """The demo's training recipe: small MobileNetV3 DBNet from scratch on 320x320 crops."""
    return [
        "model.backbone.name=mobilenet_v3_large",
        "model.backbone.width_mult=0.5",
        "model.neck.inner_channels=96",
        "data.name=folder",
        f"data.root={data_dir}",
        "data.val_split=test",
        "data.image_size=320",
        "data.num_workers=2",
        "data.augment.scale_min=0.7",
        "data.augment.scale_max=1.5",
        "data.augment.rotate_degrees=10",
        "data.input.test_resize=fixed",
        "data.input.test_size=384",
        f"train.out_dir={run_dir}",
        f"train.seed={seed}",
        f"train.max_steps={steps}",
        "train.batch_size=8",
        "train.lr=0.002",
        "train.schedule=cosine",
        "train.warmup_steps=50",
        "train.eval_every=0",
        "train.save_every=100",
        "train.log_every=20",
    ]


def run_demo(out: Path, seed: int = 0, steps: int = 900,
             methods: Sequence[str] = ("baseline",), num_train: int = 400, num_test: int = 60) -> Dict[str, Dict[str, float]]:
    from sdet.data.formats import load_samples
    from sdet.data.synth import generate_dataset
    from sdet.deploy.predict_files import predict_paths
    from sdet.engine.checkpoint import load_detector
    from sdet.engine.evaluator import evaluate
    from sdet.engine.trainer import Trainer

    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "data"
    t0 = time.time()
    generate_dataset(data_dir, num_train=num_train, num_test=num_test, seed=seed)
    print(f"[demo] synthetic data: {num_train} train / {num_test} test images in {data_dir} ({time.time() - t0:.1f}s)")
    results: Dict[str, Dict[str, float]] = {}
    for method in methods:
        run_dir = out / f"run_{method}"
        cfg: Config = load_config(None, demo_overrides(data_dir, run_dir, seed, steps) + [f"method.name={method}"])
        t1 = time.time()
        Trainer(cfg, progress=True).run()
        train_s = time.time() - t1
        detector, cfg, _ = load_detector(run_dir / "best.pt")
        test = load_samples("folder", data_dir, "test")
        metric = evaluate(detector, test, cfg)
        overlays = out / f"overlays_{method}"
        predict_paths(detector, cfg, [s.image_path for s in test[:8]], overlays)
        results[method] = {**metric.to_dict(), "train_seconds": round(train_s, 1)}
        print(f"[demo] {method}: P {metric.precision:.4f}  R {metric.recall:.4f}  F {metric.hmean:.4f}  "
              f"(trained {steps} steps in {train_s / 60:.1f} min)")
    print("[demo] method        precision  recall  hmean")
    for method, r in results.items():
        print(f"[demo] {method:<12}  {r['precision']:.4f}     {r['recall']:.4f}  {r['hmean']:.4f}")
    print(f"[demo] overlays: {', '.join(str(out / f'overlays_{m}') for m in results)}")
    (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(json.dumps(results))
    return results
