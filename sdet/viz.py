"""Drawing helpers: detections and ground truth on images, entropy maps as colour images."""
from __future__ import annotations

from typing import Iterable, Optional

import cv2
import numpy as np

from sdet.detectors.detection import Detection


def draw_polygons(image: np.ndarray, polygons: Iterable[np.ndarray], color=(0, 255, 0), thickness: int = 2) -> np.ndarray:
    out = image.copy()
    for poly in polygons:
        pts = np.round(np.asarray(poly)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [pts], isClosed=True, color=color, thickness=thickness)
    return out


def draw_detections(image: np.ndarray, detections: Iterable[Detection], color=(0, 255, 0)) -> np.ndarray:
    dets = list(detections)
    out = draw_polygons(image, [d.polygon for d in dets], color)
    for d in dets:
        x, y = np.asarray(d.polygon).min(axis=0)
        label = f"{d.score:.2f}" if d.entropy is None else f"{d.score:.2f} H{d.entropy:.2f}"
        cv2.putText(out, label, (int(x), max(int(y) - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
    return out


def entropy_to_color(entropy: np.ndarray, size_hw: Optional[tuple] = None) -> np.ndarray:
    """Entropy in bits [0, 1] -> BGR heat map (dark = certain, bright = uncertain)."""
    img = np.clip(entropy * 255.0, 0, 255).astype(np.uint8)
    if size_hw is not None and img.shape[:2] != tuple(size_hw):
        img = cv2.resize(img, (int(size_hw[1]), int(size_hw[0])), interpolation=cv2.INTER_LINEAR)
    return cv2.applyColorMap(img, cv2.COLORMAP_INFERNO)
