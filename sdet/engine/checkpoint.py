"""Checkpoints: plain dicts of tensors and builtins (loadable with weights_only=True), written atomically.

Two kinds share one format: an *inference* checkpoint (config + detector weights + metrics:
what eval/predict/export need) and a *training* checkpoint that adds the method's
training-only modules, optimiser state and RNG state so `resume` continues bit for bit.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import torch

from sdet.config import Config, config_from_dict, config_to_dict
from sdet.errors import UserError

FORMAT = "sdet-checkpoint"
VERSION = 1


def atomic_save(obj: Dict[str, Any], path: Union[str, Path]) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def inference_state(cfg: Config, model_state: Dict[str, torch.Tensor], step: int, metrics: Dict[str, float]) -> Dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": "inference",
        "config": config_to_dict(cfg),
        "model": {k: v.detach().cpu() for k, v in model_state.items()},
        "step": int(step),
        "metrics": {k: float(v) for k, v in metrics.items()},
    }


def load_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """Load any sdet checkpoint safely (weights_only=True); a bad file is a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError("checkpoint not found", path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or not a weights-only pickle
        raise UserError(f"cannot read checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})", path) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError("not an sdet checkpoint (missing format marker)", path)
    if ckpt.get("version", 0) > VERSION:
        raise UserError(f"checkpoint version {ckpt['version']} is newer than this sdet ({VERSION})", path)
    return ckpt


def checkpoint_config(ckpt: Dict[str, Any]) -> Config:
    return config_from_dict(ckpt["config"])


def load_weights_into(detector: torch.nn.Module, ckpt: Dict[str, Any], path: Union[str, Path]) -> None:
    """Strictly load a checkpoint's detector weights; a different architecture is a UserError."""
    model_state = detector.state_dict()
    state = ckpt["model"]
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    wrong = [k for k in model_state if k in state and tuple(state[k].shape) != tuple(model_state[k].shape)]
    if missing or unexpected or wrong:
        raise UserError(
            f"checkpoint does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"shape mismatch {wrong[:3]} (check model.* against the checkpoint's config)", path
        )
    detector.load_state_dict(state)


def load_detector(path: Union[str, Path]) -> Tuple[torch.nn.Module, Config, Dict[str, Any]]:
    """Build the detector a checkpoint describes and load its weights (eval mode)."""
    from sdet.models.detector import build_detector

    ckpt = load_checkpoint(path)
    cfg = checkpoint_config(ckpt)
    detector = build_detector(cfg.model)
    load_weights_into(detector, ckpt, path)
    detector.eval()
    return detector, cfg, ckpt
