"""The Method interface: a training recipe that turns a batch into named loss terms.

A Method owns only its training-only modules (auxiliary heads, adapters, ...). The
detector is held by reference and deliberately *not* registered as a submodule, so
`method.state_dict()` never contains detector weights and `detector.state_dict()`
never contains training-only ones: inference checkpoints and exports are identical
in structure for every method.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from torch import Tensor, nn

from sdet.models.detector import Detector, DetectorOutput


@dataclass
class MethodContext:
    """Everything a method may need besides the batch."""

    detector: Detector
    det_loss: Callable[..., Dict[str, Tensor]]  # detector loss: (logits, batch) -> named terms; has .text_loss
    total_steps: int
    teacher: Optional[Detector] = None  # frozen, eval mode, for teacher-based methods


class Method(nn.Module):
    """Subclasses set `Options` (a dataclass) and implement `losses`."""

    Options: Any = None

    def __init__(self, ctx: MethodContext, options: Any):
        super().__init__()
        object.__setattr__(self, "ctx", ctx)  # not a submodule: keeps detector weights out of our state
        self.options = options

    @property
    def detector(self) -> Detector:
        return self.ctx.detector

    def forward(self, batch: Dict[str, Tensor], step: int) -> Dict[str, Tensor]:
        output = self.detector(batch["image"])
        return self.losses(output, batch, step)

    def losses(self, output: DetectorOutput, batch: Dict[str, Tensor], step: int) -> Dict[str, Tensor]:
        raise NotImplementedError
