"""`sdet viz entropy`: where is the detector unsure? Main-head entropy, and the aux head's.

For an inference checkpoint only the main text head exists. For an SDET *training*
checkpoint (last.pt) the training-only auxiliary head is rebuilt from the stored method
state, so the entropy it learned to reproduce can be compared with the deep head's: the
side-by-side picture is the method's transferred knowledge made visible.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np
import torch

from sdet.checkpoint import checkpoint_config, load_checkpoint, load_weights_into
from sdet.data.datasets import prepare_test_image
from sdet.data.images import read_image
from sdet.errors import UserError
from sdet.ops.entropy import binary_entropy
from sdet.viz import entropy_to_color


@dataclass
class EntropyMaps:
    main: np.ndarray  # bits, network-input resolution
    aux: Optional[np.ndarray]  # bits, same resolution; None without an auxiliary head


def _aux_method(ckpt: dict, detector: torch.nn.Module, cfg) -> Optional[torch.nn.Module]:
    """The training method with its stored modules, if the checkpoint has an auxiliary head."""
    if ckpt.get("kind") != "training" or not ckpt.get("method"):
        return None
    from sdet.detectors import build_loss
    from sdet.methods import MethodContext, build_method, method_class

    if not hasattr(method_class(cfg.method.name), "aux_logit"):  # only SDET has one (teacher methods need theirs)
        return None
    method = build_method(cfg.method, MethodContext(detector, build_loss(cfg), cfg.train.max_steps))
    method.load_state_dict(ckpt["method"])
    return method.eval()


@torch.no_grad()
def entropy_maps(checkpoint: str, image_bgr: np.ndarray) -> EntropyMaps:
    from sdet.models.detector import build_detector

    ckpt = load_checkpoint(checkpoint)
    cfg = checkpoint_config(ckpt)
    detector = build_detector(cfg.model)
    load_weights_into(detector, ckpt, checkpoint)
    detector.eval()
    method = _aux_method(ckpt, detector, cfg)
    output = detector(prepare_test_image(image_bgr, cfg.data.input)[None])
    main = output.logits[detector.text_key]
    aux = method.aux_logit(output) if method is not None else None
    as_map = lambda logit: binary_entropy(logit)[0, 0].numpy()  # noqa: E731
    return EntropyMaps(as_map(main), as_map(aux) if aux is not None else None)


def _labelled(image: np.ndarray, label: str) -> np.ndarray:
    out = image.copy()
    cv2.putText(out, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def entropy_panel(image_bgr: np.ndarray, maps: EntropyMaps) -> np.ndarray:
    """Image | main-head entropy | aux-head entropy (when present), each at the image's size."""
    hw: Tuple[int, int] = image_bgr.shape[:2]
    panels: List[np.ndarray] = [
        _labelled(image_bgr, "image"),
        _labelled(entropy_to_color(maps.main, hw), f"main head entropy (mean {maps.main.mean():.3f} bit)"),
    ]
    if maps.aux is not None:
        panels.append(_labelled(entropy_to_color(maps.aux, hw), f"aux head entropy (mean {maps.aux.mean():.3f} bit)"))
    return np.concatenate(panels, axis=1)


def write_entropy_view(checkpoint: str, image_path: str, out_path: str) -> EntropyMaps:
    image = read_image(image_path)
    maps = entropy_maps(checkpoint, image)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), entropy_panel(image, maps)):
        raise UserError("cannot write image (unknown extension or unwritable folder)", out)
    return maps
