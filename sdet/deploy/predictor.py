"""Image in, detections out: the one inference path shared by eval, predict and benchmarks.

Pre-processing (test resize, colour order, normalisation) and post-processing settings
come from the checkpoint's config, so a model always runs the way it was evaluated.
:func:`logits_to_prediction` is the post-processing half on its own, so that an exported
ONNX graph (sdet/deploy/onnx_predictor.py) goes through exactly the same code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from sdet.config import Config
from sdet.data.datasets import prepare_test_image
from sdet.detectors import detector_family
from sdet.detectors.detection import Detection
from sdet.models.detector import Detector
from sdet.models.fold_bn import fold_batchnorm
from sdet.ops.entropy import binary_entropy


@dataclass
class Prediction:
    detections: List[Detection]
    text_map: np.ndarray  # probability map at the head's resolution (DB: network input, EAST: 1/4 of it)
    entropy_map: Optional[np.ndarray] = None  # bits, same resolution


class Predictor:
    def __init__(self, detector: Detector, cfg: Config, device: Optional[torch.device] = None,
                 channels_last: Optional[bool] = None, fold_bn: bool = True):
        """`channels_last` (default: on for CPU) feeds NHWC inputs, which PyTorch's CPU
        convolutions run ~1.5x faster for MobileNetV3-DB at 1312x736; `fold_bn` runs a copy with
        BatchNorm folded into the convolutions (another ~1.2x). The detector's own weights are
        left untouched, so a model being trained is not affected."""
        self.detector = fold_batchnorm(detector) if fold_bn else detector.eval()
        self.cfg = cfg
        self.device = device or next(detector.parameters()).device
        self.channels_last = self.device.type == "cpu" if channels_last is None else channels_last
        if fold_bn and self.channels_last:  # the copy's weights too: no NCHW->NHWC reorder per call
            self.detector.to(memory_format=torch.channels_last)
        self.postprocess = detector_family(cfg.model.type).postprocess

    def _to_input(self, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.to(self.device)
        return tensor.contiguous(memory_format=torch.channels_last) if self.channels_last else tensor

    @torch.no_grad()
    def text_logit(self, tensor: torch.Tensor) -> torch.Tensor:
        out = self.detector(self._to_input(tensor))
        return out.logits[self.detector.text_key][:, 0]

    @torch.no_grad()
    def __call__(self, image_bgr: np.ndarray, with_entropy: bool = False) -> Prediction:
        tensor = prepare_test_image(image_bgr, self.cfg.data.input)[None]
        return self.from_tensor(tensor, image_bgr.shape[:2], with_entropy)

    @torch.no_grad()
    def from_tensor(self, tensor: torch.Tensor, dest_hw: Tuple[int, int], with_entropy: bool = False) -> Prediction:
        return self.batch(tensor, [dest_hw], with_entropy)[0]

    @torch.no_grad()
    def batch(self, tensor: torch.Tensor, dest_hws: Sequence[Tuple[int, int]], with_entropy: bool = False) -> List[Prediction]:
        """(N, 3, H, W) test-resized images -> N predictions, each in its own original size."""
        logits = self.detector(self._to_input(tensor)).logits
        input_hw = (int(tensor.shape[-2]), int(tensor.shape[-1]))
        return batch_to_predictions(logits, self.detector.text_key, self.cfg, input_hw, dest_hws, with_entropy)


def batch_to_predictions(
    logits: Dict[str, torch.Tensor],
    text_key: str,
    cfg: Config,
    input_hw: Tuple[int, int],
    dest_hws: Sequence[Tuple[int, int]],
    with_entropy: bool = False,
) -> List[Prediction]:
    """Post-process a batch's head outputs image by image (all images share one network input size)."""
    return [
        logits_to_prediction({k: v[i : i + 1] for k, v in logits.items()}, text_key, cfg, input_hw, hw, with_entropy)
        for i, hw in enumerate(dest_hws)
    ]


def logits_to_prediction(
    logits: Dict[str, torch.Tensor],
    text_key: str,
    cfg: Config,
    input_hw: Tuple[int, int],
    dest_hw: Tuple[int, int],
    with_entropy: bool = False,
) -> Prediction:
    """Post-process one image's head outputs (batch of one, any device) with the config's settings."""
    logit = logits[text_key][0, 0].float()
    prob = torch.sigmoid(logit).cpu().numpy()
    entropy = binary_entropy(logit).clamp(0, 1).cpu().numpy() if with_entropy else None
    post = detector_family(cfg.model.type).postprocess
    dets = post(prob, tuple(int(v) for v in dest_hw), cfg, entropy, logits=logits,
                input_hw=(int(input_hw[0]), int(input_hw[1])))
    return Prediction(dets, prob, entropy)
