"""Image in, detections out: the one inference path shared by eval, predict and benchmarks.

Pre-processing (test resize, colour order, normalisation) and post-processing settings
come from the checkpoint's config, so a model always runs the way it was evaluated.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from sdet.config import Config
from sdet.data.datasets import prepare_test_image
from sdet.methods.entropy import binary_entropy
from sdet.models.detector import Detector
from sdet.postprocess.db import DBPostProcessConfig, db_postprocess
from sdet.postprocess.detection import Detection


@dataclass
class Prediction:
    detections: List[Detection]
    text_map: np.ndarray  # probability map at network-input resolution
    entropy_map: Optional[np.ndarray] = None  # bits, same resolution


def _db_post(prob: np.ndarray, dest_hw: Tuple[int, int], cfg: Config, entropy: Optional[np.ndarray]) -> List[Detection]:
    fields = {f.name for f in dataclasses.fields(DBPostProcessConfig)}
    post = DBPostProcessConfig(**{k: v for k, v in dataclasses.asdict(cfg.post).items() if k in fields})
    return db_postprocess(prob, dest_hw, post, entropy=entropy)


POSTPROCESSORS: Dict[str, Callable[..., List[Detection]]] = {"db": _db_post}


class Predictor:
    def __init__(self, detector: Detector, cfg: Config, device: Optional[torch.device] = None):
        self.detector = detector.eval()
        self.cfg = cfg
        self.device = device or next(detector.parameters()).device
        self.postprocess = POSTPROCESSORS[cfg.model.type]

    @torch.no_grad()
    def text_logit(self, tensor: torch.Tensor) -> torch.Tensor:
        out = self.detector(tensor.to(self.device))
        return out.logits[self.detector.text_key][:, 0]

    @torch.no_grad()
    def __call__(self, image_bgr: np.ndarray, with_entropy: bool = False) -> Prediction:
        tensor = prepare_test_image(image_bgr, self.cfg.data.input)[None]
        return self.from_tensor(tensor, image_bgr.shape[:2], with_entropy)

    @torch.no_grad()
    def from_tensor(self, tensor: torch.Tensor, dest_hw: Tuple[int, int], with_entropy: bool = False) -> Prediction:
        logit = self.text_logit(tensor)[0].float()
        prob = torch.sigmoid(logit).cpu().numpy()
        entropy = binary_entropy(logit).clamp(0, 1).cpu().numpy() if with_entropy else None
        dets = self.postprocess(prob, tuple(int(v) for v in dest_hw), self.cfg, entropy)
        return Prediction(dets, prob, entropy)
