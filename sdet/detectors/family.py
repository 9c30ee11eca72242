"""What a detector family is: the parts that differ between DBNet and EAST, kept together.

Backbones, necks, the Detector shell, methods and the engine are shared; a family adds its
head, its training targets, its loss and its post-processing (as docTR keeps one folder per
architecture). Everything else asks the registry in sdet/detectors/__init__.py by `model.type`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence

import numpy as np
from torch import nn

from sdet.config import Config, DataConfig, ModelConfig
from sdet.detectors.detection import Detection

# (height, width, polygons, ignore flags, data config) -> named target maps of one training crop
TargetMaker = Callable[[int, int, Sequence[np.ndarray], Sequence[bool], DataConfig], Dict[str, np.ndarray]]
# (text probability map, destination (h, w), config, entropy map or None) for one image, plus the keywords
# `logits` (the detector's whole logits dict, batch of one) and `input_hw` (network input size) for those that need more
PostProcessor = Callable[..., List[Detection]]


@dataclass(frozen=True)
class DetectorFamily:
    name: str
    text_key: str  # the logit whose sigmoid is the text map (the one SDET and the predictor read)
    build_head: Callable[[int, ModelConfig], nn.Module]  # (fused pyramid channels, model config)
    make_targets: TargetMaker
    build_loss: Callable[[Config], Any]  # a callable (logits, batch) -> named loss terms
    postprocess: PostProcessor

