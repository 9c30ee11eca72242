"""Torch datasets: samples -> augmented, normalised tensors with the model type's targets.

Augmentation randomness is seeded per element from (seed, stream position), never from
worker state, so a batch is a pure function of the training step (see engine/sampler.py).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from sdet.config import DataConfig, InputConfig
from sdet.data.formats import load_samples
from sdet.data.images import read_image
from sdet.data.mixing import MixedSamples, MixSchedule, load_mix
from sdet.data.readers.common import is_usable, no_usable_instance_error
from sdet.data.sample import Sample
from sdet.data.transforms import augment_for_training, normalize, resize_for_test
from sdet.detectors import detector_family


def text_mask(height: int, width: int, polygons: Sequence[np.ndarray], ignore: Sequence[bool]) -> np.ndarray:
    """1 inside every cared-for GT polygon (un-shrunk): the mask of SDET-M and MaskET."""
    mask = np.zeros((height, width), np.uint8)
    polys = [np.round(p).astype(np.int32).reshape(-1, 1, 2) for p, ign in zip(polygons, ignore) if not ign and len(p) >= 3]
    if polys:
        cv2.fillPoly(mask, polys, 1)
    return mask.astype(np.float32)


def _training_source(cfg: DataConfig) -> str:
    """How the training data is named in messages: ``root``, or the mix's NAME:ROOT list."""
    if cfg.mix:
        return ", ".join(f"{src.name}:{src.root}" for src in cfg.mix)
    return cfg.root


def require_usable_instance(samples: Sequence[Sample], cfg: DataConfig) -> None:
    """Refuse a training set without one usable instance: its targets would be all
    background and the loss near 0, a run that looks fine and learns nothing."""
    error = no_usable_instance_error(samples, _training_source(cfg), "training images")
    if error is not None:
        raise error


def load_split(cfg: DataConfig, split: str) -> List[Sample]:
    """Samples of ``split``; the training split of a config with ``data.mix`` is the mix."""
    if cfg.mix and split == cfg.train_split:
        return load_mix(cfg.mix, skip_bad=cfg.skip_bad)
    return load_samples(cfg.name, cfg.root, split, skip_bad=cfg.skip_bad)


class TrainDataset(Dataset):
    """Keys are ``(stream position, index)`` from :class:`~sdet.engine.sampler.StreamBatchSampler`.

    For :class:`~sdet.data.mixing.MixedSamples` the sample is chosen by the mix schedule from
    the position alone (the sampler's index is not used), so mixing keeps the batch a pure
    function of (seed, step) without a second sampler.
    """

    def __init__(self, samples: List[Sample], cfg: DataConfig, model_type: str, seed: int):
        self.samples = samples
        self.cfg = cfg
        self.make_targets = detector_family(model_type).make_targets
        self.seed = seed
        self.mix: Optional[MixSchedule] = samples.schedule(seed) if isinstance(samples, MixedSamples) else None
        require_usable_instance(samples, cfg)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: Tuple[int, int]) -> Dict[str, torch.Tensor]:
        position, index = key
        if self.mix is not None:
            index = self.mix.index(position)
        rng = np.random.default_rng([self.seed, position])
        sample = self.samples[index]
        image = read_image(sample.image_path, orientation="raw")  # the ground truth's frame
        polygons = [inst.polygon for inst in sample.instances]
        ignore = [not is_usable(inst) for inst in sample.instances]  # degenerate geometry is don't care
        image, polygons, ignore = augment_for_training(image, polygons, ignore, self.cfg.augment, self.cfg.image_size, rng)
        height, width = image.shape[:2]
        targets = self.make_targets(height, width, polygons, ignore, self.cfg)
        targets["text_mask"] = text_mask(height, width, polygons, ignore)
        inp = self.cfg.input
        out = {"image": torch.from_numpy(normalize(image, inp.mean, inp.std, inp.to_rgb))}
        out.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in targets.items()})
        return out


def prepare_test_image(image_bgr: np.ndarray, inp: InputConfig) -> torch.Tensor:
    """BGR uint8 HxWx3 -> normalised (3, H', W') tensor at the configured test resolution."""
    resized, _ = resize_for_test(image_bgr, inp.test_resize, inp.test_size)
    return torch.from_numpy(normalize(resized, inp.mean, inp.std, inp.to_rgb))


class EvalDataset(Dataset):
    """Test-time resized images (batch size 1: sizes differ) with their original size."""

    def __init__(self, samples: List[Sample], cfg: DataConfig):
        self.samples = samples
        self.cfg = cfg

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        image = read_image(self.samples[index].image_path, orientation="raw")  # the ground truth's frame
        return {
            "image": prepare_test_image(image, self.cfg.input),
            "shape": torch.tensor(image.shape[:2]),
            "index": index,
        }
