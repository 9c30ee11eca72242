"""Checkpoints: plain dicts of tensors and builtins (loadable with weights_only=True), written atomically.

Two kinds share one format: an *inference* checkpoint (config + detector weights + metrics:
what eval/predict/export need) and a *training* checkpoint that adds the method's
training-only modules, optimiser state and RNG state so `resume` continues bit for bit.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

import torch

from sdet.config import Config, config_from_dict, config_to_dict, first_difference, flatten_dotted
from sdet.errors import UserError

FORMAT = "sdet-checkpoint"
VERSION = 1


def atomic_save(obj: Dict[str, Any], path: Union[str, Path]) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UserError(f"cannot write checkpoint ({exc.strerror or exc})", path) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # disk full, quota, permissions: the previous file is left intact
            raise UserError(f"cannot write checkpoint ({exc.strerror or exc}); the previous {path.name} is "
                            "unchanged", path) from None
        raise


def temp_leftovers(folder: Path) -> list:
    """Temporary files of atomic_save that a killed process left behind (never a finished checkpoint)."""
    return sorted(folder.glob(".*.pt.*.tmp"))


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
    if path.stat().st_size == 0:
        raise UserError("not a readable sdet checkpoint (the file is empty)", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's note on a pickle protocol it does not expect
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or not a weights-only pickle
        raise UserError(f"not a readable sdet checkpoint ({_load_failure(exc)})", path) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError("not an sdet checkpoint (a torch file without sdet's format marker)", path)
    if ckpt.get("version", 0) > VERSION:
        raise UserError(f"checkpoint version {ckpt['version']} is newer than this sdet ({VERSION})", path)
    return ckpt


def _load_failure(exc: Exception) -> str:
    """Why torch.load failed, in sdet's terms: never torch's advice to load with weights_only=False."""
    text = str(exc)
    if "central directory" in text or "zip archive" in text or isinstance(exc, EOFError):
        return "truncated, or not a torch checkpoint file"
    if "Weights only load failed" in text:
        return ("damaged, not a torch checkpoint, or holding Python objects besides tensors and plain data; "
                "sdet never unpickles those, as that can run code")
    first = text.strip().splitlines()[0][:200] if text.strip() else "no details"
    return f"{type(exc).__name__}: {first}"


# what decides a training checkpoint's tensor shapes and state layout
RESUME_KEYS = ("model", "method.name", "method.options", "train.optimizer")


def _pick(config: Dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        config = config.get(part, {}) if isinstance(config, dict) else {}
    return config


def check_resumable(ckpt: Dict[str, Any], cfg: Config, path: Union[str, Path]) -> None:
    """A last.pt continues a run only under the config it was trained with (shape-deciding keys)."""
    if ckpt.get("kind") != "training":
        raise UserError("resume needs a training checkpoint (last.pt), this is an inference checkpoint", path)
    current = config_to_dict(cfg)
    for key in RESUME_KEYS:
        saved = flatten_dotted(_pick(ckpt["config"], key), key)
        now = flatten_dotted(_pick(current, key), key)
        name = first_difference(saved, now)
        if name is not None:
            raise UserError(
                f"cannot resume: last.pt was trained with {name}={saved.get(name)!r}, the config says "
                f"{now.get(name)!r} (resume with the run's config.yaml, or train into another train.out_dir)", path)


def checkpoint_config(ckpt: Dict[str, Any]) -> Config:
    return config_from_dict(ckpt["config"])


PIXEL_KEYS = ("to_rgb", "mean", "std")  # what a network's first layer has learnt to expect


def pixel_mismatches(ckpt: Dict[str, Any], cfg: Config) -> List[str]:
    """`data.input.<key>=<the checkpoint's value>` for each way the config feeds pixels unlike the
    checkpoint's own training (an imported PaddleOCR model wants BGR): a fine-tune from it that way
    starts off worse than the model is."""
    saved = _pick(ckpt.get("config", {}), "data.input")
    return [f"data.input.{key}={json.dumps(_plain(saved[key]))}" for key in PIXEL_KEYS
            if key in saved and _plain(saved[key]) != _plain(getattr(cfg.data.input, key))]


def _plain(value: Any) -> Any:
    """A tuple (dataclass default) and a list (YAML) of the same numbers compare equal."""
    return list(value) if isinstance(value, (list, tuple)) else value


def load_weights_into(detector: torch.nn.Module, ckpt: Dict[str, Any], path: Union[str, Path],
                      parts: str = "all") -> None:
    """Strictly load a checkpoint's detector weights, all of them or only the named top-level parts
    (``backbone``, ``backbone,neck``): within what is loaded, a different architecture is a UserError."""
    prefixes = None if parts == "all" else tuple(f"{p.strip()}." for p in parts.split(","))
    model_state = detector.state_dict()
    state = ckpt["model"]
    if prefixes is not None:
        model_state = {k: v for k, v in model_state.items() if k.startswith(prefixes)}
        state = {k: v for k, v in state.items() if k.startswith(prefixes)}
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    wrong = [k for k in model_state if k in state and tuple(state[k].shape) != tuple(model_state[k].shape)]
    if missing or unexpected or wrong:
        raise UserError(
            f"checkpoint does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"shape mismatch {wrong[:3]} (check model.* against the checkpoint's config)", path
        )
    detector.load_state_dict(state, strict=prefixes is None)


def load_detector(path: Union[str, Path]) -> Tuple[torch.nn.Module, Config, Dict[str, Any]]:
    """Build the detector a checkpoint describes and load its weights (eval mode)."""
    from sdet.models.detector import build_detector

    ckpt = load_checkpoint(path)
    cfg = checkpoint_config(ckpt)
    detector = build_detector(cfg.model)
    load_weights_into(detector, ckpt, path)
    detector.eval()
    return detector, cfg, ckpt
