"""Image in, detections out: the one inference path shared by eval, predict and benchmarks.

Pre-processing (test resize, colour order, normalisation) and post-processing settings
come from the checkpoint's config, so a model always runs the way it was evaluated.
:func:`logits_to_prediction` is the post-processing half on its own, so that an exported
ONNX graph (sdet/deploy/onnx_predictor.py) goes through exactly the same code.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from sdet.config import Config
from sdet.data.datasets import prepare_test_image
from sdet.methods.entropy import binary_entropy
from sdet.models.detector import Detector
from sdet.models.fold_bn import fold_batchnorm
from sdet.postprocess.db import DBPostProcessConfig, db_postprocess
from sdet.postprocess.detection import Detection
from sdet.postprocess.east import EASTPostProcessConfig, east_postprocess


@dataclass
class Prediction:
    detections: List[Detection]
    text_map: np.ndarray  # probability map at the head's resolution (DB: network input, EAST: 1/4 of it)
    entropy_map: Optional[np.ndarray] = None  # bits, same resolution


# Every post-processor takes (prob, dest_hw, cfg, entropy) for one image, plus the
# keyword arguments `logits` (the detector's whole logits dict, batch of one) and
# `input_hw` (the network input size) for those that need more than the text map.


def _db_post(
    prob: np.ndarray, dest_hw: Tuple[int, int], cfg: Config, entropy: Optional[np.ndarray], **_: object
) -> List[Detection]:
    fields = {f.name for f in dataclasses.fields(DBPostProcessConfig)}
    post = DBPostProcessConfig(**{k: v for k, v in dataclasses.asdict(cfg.post).items() if k in fields})
    return db_postprocess(prob, dest_hw, post, entropy=entropy)


def _east_post(
    prob: np.ndarray,
    dest_hw: Tuple[int, int],
    cfg: Config,
    entropy: Optional[np.ndarray],
    logits: Optional[Dict[str, torch.Tensor]] = None,
    input_hw: Optional[Tuple[int, int]] = None,
) -> List[Detection]:
    if logits is None or "geo" not in logits:
        raise ValueError("EAST post-processing needs the detector's 'geo' output (pass logits=...)")
    geo = logits["geo"][0].float().cpu().numpy()
    if input_hw is None:  # the score map is at stride 4 of the input
        input_hw = (prob.shape[0] * 4, prob.shape[1] * 4)
    post = EASTPostProcessConfig(
        score_thresh=cfg.post.east_score_thresh,
        nms_thresh=cfg.post.east_nms_thresh,
        box_thresh=cfg.post.east_box_thresh,
        max_candidates=cfg.post.east_max_candidates,
    )
    return east_postprocess(prob, geo, dest_hw, input_hw, post, entropy=entropy)


POSTPROCESSORS: Dict[str, Callable[..., List[Detection]]] = {"db": _db_post, "east": _east_post}


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
        self.postprocess = POSTPROCESSORS[cfg.model.type]

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
    post = POSTPROCESSORS[cfg.model.type]
    dets = post(prob, tuple(int(v) for v in dest_hw), cfg, entropy, logits=logits,
                input_hw=(int(input_hw[0]), int(input_hw[1])))
    return Prediction(dets, prob, entropy)
