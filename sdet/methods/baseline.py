"""The plain detector loss: the reference every distillation method is compared against."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

from torch import Tensor

from sdet.methods.base import Method
from sdet.models.detector import DetectorOutput


@dataclass
class BaselineOptions:
    pass


class Baseline(Method):
    Options = BaselineOptions

    def losses(self, output: DetectorOutput, batch: Dict[str, Tensor], step: int) -> Dict[str, Tensor]:
        return self.ctx.det_loss(output.logits, batch)
