"""The Method interface: a training recipe that turns a batch into named loss terms.

A Method owns only its training-only modules (auxiliary heads, adapters, ...). The
detector is held by reference and deliberately *not* registered as a submodule, so
`method.state_dict()` never contains detector weights and `detector.state_dict()`
never contains training-only ones: inference checkpoints and exports are identical
in structure for every method.

The teacher of a teacher-based method (ST, FitNets, KA, SKD) lives in the context for the
same reason: it is frozen, runs in eval mode under `no_grad`, and never enters the
method's state, the optimiser or any checkpoint (resume reloads it from `method.teacher`).

A method that trains a module of its own against the student with a separate optimiser (SKD's
discriminator) uses the hooks `optimized_parameters`, `after_step` and `extra_state`; their
defaults leave every other method exactly as a plain loss.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Sequence

import torch
from torch import Tensor, nn

from sdet.errors import UserError
from sdet.models.detector import Detector, DetectorOutput


def require_choice(option: str, value: Any, choices: Sequence[Any]) -> None:
    """A one-line config error naming `method.options.<option>` when `value` is not one of `choices`."""
    if value not in choices:
        raise UserError(f"method.options.{option} must be one of {tuple(choices)}, got '{value}'", "<config>")


def require_distinct_choices(option: str, values: Sequence[Any], choices: Sequence[Any]) -> None:
    """The same for a non-empty list option whose items must be distinct choices."""
    if not values or len(set(values)) != len(values) or any(v not in choices for v in values):
        raise UserError(f"method.options.{option} must be distinct names from {tuple(choices)}, got {list(values)}",
                        "<config>")


def require_fraction(option: str, value: float, include_one: bool = False) -> None:
    """A one-line config error unless `value` is a fraction of the schedule: [0, 1), or [0, 1]."""
    if not (0.0 <= value <= 1.0 if include_one else 0.0 <= value < 1.0):
        raise UserError(f"method.options.{option} must be in [0, {'1]' if include_one else '1)'}, got {value}", "<config>")


def step_at_fraction(fraction: float, total_steps: int) -> int:
    """The step a fraction of the schedule reaches, to the nearest step (0.3 of 1000: step 300)."""
    return int(round(fraction * total_steps))


def _to_float32(output: DetectorOutput) -> DetectorOutput:
    from sdet.models.necks.fpn import Pyramid

    f = output.features
    return DetectorOutput(
        logits={k: v.float() for k, v in output.logits.items()},
        features=Pyramid(backbone=[t.float() for t in f.backbone], levels=[t.float() for t in f.levels],
                         fused=f.fused.float()),
    )


@dataclass
class MethodContext:
    """Everything a method may need besides the batch."""

    detector: Detector
    det_loss: Callable[..., Dict[str, Tensor]]  # detector loss: (logits, batch) -> named terms; has .text_loss and .text_target
    total_steps: int
    teacher: Optional[Detector] = None  # frozen, eval mode, for teacher-based methods
    # averages gradients of parameters a method steps itself over data-parallel processes (no-op alone)
    average_gradients: Callable[[Iterable[nn.Parameter]], None] = lambda params: None


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
        if not torch.is_autocast_enabled(output.logits[self.detector.text_key].device.type):
            return self.losses(output, batch, step)
        # mixed precision covers the detector only: entropy, OHEM, Dice and the auxiliary branches run in
        # float32 (log p and small sums of a half-precision map lose the very pixels these terms weigh)
        with torch.autocast(device_type=output.logits[self.detector.text_key].device.type, enabled=False):
            return self.losses(_to_float32(output), batch, step)

    def losses(self, output: DetectorOutput, batch: Dict[str, Tensor], step: int) -> Dict[str, Tensor]:
        raise NotImplementedError

    # hooks for a method that trains a module of its own with its own optimiser (see the module docstring)
    def optimized_parameters(self) -> Iterator[nn.Parameter]:
        """What the trainer's main optimiser updates besides the detector."""
        return self.parameters()

    def after_step(self, step: int) -> Dict[str, float]:
        """Called after the student's optimiser step, outside autocast; returns extra values to log."""
        return {}

    def extra_state(self) -> Dict[str, Any]:
        """Method-owned optimiser state that the training checkpoint keeps for an exact resume."""
        return {}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        """Restores what `extra_state` returned."""
