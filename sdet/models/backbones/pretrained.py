"""Load a local torchvision ImageNet state dict into a backbone, strictly and offline.

Only local files are read: the toolkit never downloads weights. The check is strict
(every key and shape must match, classifier keys aside) because a silently partial
load trains from a half-random network and shows up only as bad accuracy much later.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from sdet.errors import UserError

# Heads of the ImageNet classifiers (MobileNetV3 `classifier.*`, ResNet `fc.*`).
CLASSIFIER_PREFIXES: tuple[str, ...] = ("classifier.", "fc.")
_MAX_LISTED = 10


def _extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Accept a raw state dict or a checkpoint holding one under "state_dict"/"model"."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise UserError("pretrained weights: expected a (non-empty) state dict", path)
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise UserError(f"pretrained weights: entries that are not tensors: {_listing(bad)}", path)
    if all(k.startswith("module.") for k in obj):  # saved from DistributedDataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f" ... and {more} more" if more > 0 else "")


def load_torchvision_state_dict(
    module: nn.Module,
    path: Union[str, Path],
    skip_prefixes: tuple[str, ...] = CLASSIFIER_PREFIXES,
) -> list[str]:
    """Load `path` into `module`; returns the skipped classifier keys.

    Raises UserError when the file is missing or unreadable, or when keys or shapes
    differ (missing, unexpected, wrong shape - each listed by name). A missing
    `num_batches_tracked` is tolerated: torchvision's older ResNet files lack it and
    it does not affect inference.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"pretrained weights not found: {path}", path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with disallowed globals, ...
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise UserError(f"cannot read pretrained weights (not a torch state dict file?): {detail}", path) from exc
    loaded = _extract_state_dict(obj, path)

    expected = module.state_dict()
    skipped = [k for k in loaded if k.startswith(skip_prefixes) and k not in expected]
    given = {k: v for k, v in loaded.items() if k not in skipped}

    missing = [k for k in expected if k not in given and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in given if k not in expected]
    wrong_shape = [
        f"{k} (file {tuple(v.shape)}, model {tuple(expected[k].shape)})"
        for k, v in given.items()
        if k in expected and v.shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if wrong_shape:
        problems.append(f"shape mismatch: {_listing(wrong_shape)}")
    if problems:
        name = type(module).__name__
        raise UserError(f"pretrained weights do not fit {name}: " + "; ".join(problems), path)

    # Keys and shapes are verified above; strict=False only lets num_batches_tracked be absent.
    module.load_state_dict(given, strict=False)
    return skipped
