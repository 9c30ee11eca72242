"""The Method interface: a training recipe that turns a batch into named loss terms.

A Method owns only its training-only modules (auxiliary heads, adapters, ...). The
detector is held by reference and deliberately *not* registered as a submodule, so
`method.state_dict()` never contains detector weights and `detector.state_dict()`
never contains training-only ones: inference checkpoints and exports are identical
in structure for every method.

The teacher of a teacher-based method (ST, FitNets, KA) lives in the context for the
same reason: it is frozen, runs in eval mode under `no_grad`, and never enters the
method's state, the optimiser or any checkpoint (resume reloads it from `method.teacher`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import torch
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
    needs_teacher: bool = False  # True: build_method refuses to run without a teacher, False: with one

    def __init__(self, ctx: MethodContext, options: Any):
        super().__init__()
        object.__setattr__(self, "ctx", ctx)  # not a submodule: keeps detector weights out of our state
        self.options = options

    @property
    def detector(self) -> Detector:
        return self.ctx.detector

    @property
    def teacher(self) -> Optional[Detector]:
        return self.ctx.teacher

    def teacher_output(self, batch: Dict[str, Tensor]) -> DetectorOutput:
        """The frozen teacher on the batch's images: no graph is built, so no gradient can reach it."""
        with torch.no_grad():
            return self.ctx.teacher(batch["image"])

    def forward(self, batch: Dict[str, Tensor], step: int) -> Dict[str, Tensor]:
        output = self.detector(batch["image"])
        return self.losses(output, batch, step)

    def losses(self, output: DetectorOutput, batch: Dict[str, Tensor], step: int) -> Dict[str, Tensor]:
        raise NotImplementedError
