"""`sdet predict`: images or folders in; one JSON per image plus overlay PNGs (and entropy maps) out.

The model is an sdet checkpoint (PyTorch) or an `sdet export`ed .onnx file (ONNX Runtime).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable, List

import cv2

from sdet.config import Config
from sdet.data.formats import IMAGE_EXTENSIONS, natural_key
from sdet.data.images import read_image
from sdet.deploy.predictor import Prediction, Predictor
from sdet.errors import UserError
from sdet.viz import draw_detections, entropy_to_color


def collect_images(inputs: Iterable[str]) -> List[Path]:
    paths: List[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
            paths.extend(sorted(found, key=lambda p: natural_key(p.name)))
        elif path.is_file():
            paths.append(path)
        else:
            raise UserError("input not found", path)
    if not paths:
        raise UserError("no images found in the inputs", ", ".join(inputs))
    return paths


def predict_paths(detector, cfg: Config, inputs: Iterable[str], out_dir: Path, entropy: bool = False) -> int:
    return predict_with(Predictor(detector, cfg), inputs, out_dir, entropy)


def predict_with(predictor: Callable[..., Prediction], inputs: Iterable[str], out_dir: Path, entropy: bool = False) -> int:
    """Any predictor called as ``predictor(image_bgr, with_entropy=...)``: PyTorch or ONNX Runtime."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = collect_images(inputs)
    for path in images:
        image = read_image(path)
        pred = predictor(image, with_entropy=entropy)
        record = {
            "image": str(path),
            "height": int(image.shape[0]),
            "width": int(image.shape[1]),
            "detections": [
                {
                    "polygon": [[round(float(x), 2), round(float(y), 2)] for x, y in d.polygon],
                    "score": round(float(d.score), 5),
                    **({"entropy": round(float(d.entropy), 5)} if d.entropy is not None else {}),
                }
                for d in pred.detections
            ],
        }
        (out_dir / f"{path.stem}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        cv2.imwrite(str(out_dir / f"{path.stem}_overlay.png"), draw_detections(image, pred.detections))
        if entropy and pred.entropy_map is not None:
            cv2.imwrite(str(out_dir / f"{path.stem}_entropy.png"), entropy_to_color(pred.entropy_map, image.shape[:2]))
    return len(images)
