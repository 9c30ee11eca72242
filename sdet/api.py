"""The Python API: ``Detector.load(path)(image)`` for sdet checkpoints and exported ONNX models.

One object wraps either runtime (PyTorch :class:`~sdet.deploy.predictor.Predictor` or ONNX Runtime
:class:`~sdet.deploy.onnx_predictor.OnnxPredictor`); both end in the same post-processing, so a
result does not depend on which file was loaded beyond the graph's numerics. Images are BGR uint8
arrays (OpenCV's convention) or paths; paths are decoded with their EXIF orientation applied, as a
user's photo is meant to be seen, and each result says which frame its polygons refer to.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from sdet.deploy.predictor import Prediction
from sdet.errors import UserError

ImageLike = Union[np.ndarray, str, Path]


@dataclass
class TextBox:
    polygon: np.ndarray  # float32 (N, 2) in the frame named by DetectionResult.frame; N=4 for quads
    score: float
    entropy: Optional[float] = None  # mean binary entropy (bits) inside the box, when asked for


@dataclass
class DetectionResult:
    boxes: List[TextBox]
    height: int
    width: int
    frame: str  # "array" (the array as given), or a file's: "exif-rotated" (EXIF orientation applied) or "raw"
    source: Optional[str] = None  # the path, when one was given
    text_map: Optional[np.ndarray] = field(default=None, repr=False)  # probability map at the head's resolution

    @property
    def polygons(self) -> List[np.ndarray]:
        return [b.polygon for b in self.boxes]

    @property
    def scores(self) -> List[float]:
        return [b.score for b in self.boxes]


def load_detector_with_overrides(path: Union[str, Path], overrides: Sequence[str] = ()):
    """A checkpoint's detector, config and dict; `key=value` overrides adjust post/input settings."""
    from sdet.checkpoint import load_detector
    from sdet.config import Config, _merge, build_dataclass, config_to_dict, parse_overrides

    detector, cfg, ckpt = load_detector(path)
    if overrides:
        cfg = build_dataclass(Config, _merge(config_to_dict(cfg), parse_overrides(overrides)), "<command line>")
    return detector, cfg, ckpt


def _decode(image: ImageLike) -> Tuple[np.ndarray, str, Optional[str]]:
    """An array (validated) or a file decoded upright (EXIF orientation applied), with its frame."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
            raise UserError(f"an image array must be HxWx3 uint8 BGR, got shape {image.shape} dtype {image.dtype}")
        return image, "array", None
    if isinstance(image, (str, Path)):
        from sdet.data.images import open_image

        loaded = open_image(image, orientation="exif")
        return loaded.pixels, loaded.frame, str(image)
    raise UserError(f"cannot detect text in a {type(image).__name__}: give a BGR uint8 array or an image path")


class Detector:
    """A text detector ready for inference; build it with :meth:`load`."""

    def __init__(self, runtime, batch_size: int = 8):
        self.runtime = runtime  # Predictor or OnnxPredictor: from_tensor / logits on a batch
        self.cfg = runtime.cfg
        self.batch_size = batch_size

    @classmethod
    def load(cls, path: Union[str, Path], overrides: Sequence[str] = (), device: str = "cpu", threads: int = 0,
             batch_size: int = 8) -> "Detector":
        """An sdet checkpoint (``best.pt``) or an ``sdet export``ed ``.onnx`` file; `overrides` are
        ``post.*``/``data.input.*`` settings (``["post.box_thresh=0.5"]``)."""
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        if str(path).endswith(".onnx"):
            from sdet.deploy.onnx_predictor import OnnxPredictor

            return cls(OnnxPredictor(path, overrides, threads=threads), batch_size)
        from sdet.deploy.predictor import Predictor

        if threads > 0:
            torch.set_num_threads(threads)
        detector, cfg, _ = load_detector_with_overrides(path, overrides)
        return cls(Predictor(detector.to(device), cfg), batch_size)

    def __call__(self, images: Union[ImageLike, Sequence[ImageLike]], with_entropy: bool = False,
                 progress: bool = False) -> Union[DetectionResult, List[DetectionResult]]:
        """One image (array or path) gives one result; a list gives a list, in order."""
        if isinstance(images, (np.ndarray, str, Path)):
            return next(self.stream([images], with_entropy))
        return list(self.stream(images, with_entropy, progress))

    def stream(self, images: Sequence[ImageLike], with_entropy: bool = False,
               progress: bool = False) -> Iterator[DetectionResult]:
        """Results one by one, in order; consecutive images of one network input size run as one batch."""
        from sdet.data.datasets import prepare_test_image

        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(images), desc="predict", dynamic_ncols=True)
        pending: List[Tuple[torch.Tensor, np.ndarray, str, Optional[str]]] = []
        try:
            for image in images:
                array, frame, source = _decode(image)
                tensor = prepare_test_image(array, self.cfg.data.input)
                if pending and (tensor.shape != pending[0][0].shape or len(pending) == self.batch_size):
                    yield from self._flush(pending, with_entropy, bar)
                    pending = []
                pending.append((tensor, array, frame, source))
            if pending:
                yield from self._flush(pending, with_entropy, bar)
        finally:
            if bar is not None:
                bar.close()

    def _flush(self, pending, with_entropy: bool, bar) -> Iterator[DetectionResult]:
        batch = torch.stack([p[0] for p in pending])
        for i, prediction in enumerate(self.runtime.batch(batch, [p[1].shape[:2] for p in pending], with_entropy)):
            _, array, frame, source = pending[i]
            if bar is not None:
                bar.update(1)
            yield _result(prediction, array.shape[:2], frame, source)


def _result(prediction: Prediction, hw: Tuple[int, int], frame: str, source: Optional[str]) -> DetectionResult:
    boxes = [TextBox(d.polygon, float(d.score), d.entropy) for d in prediction.detections]
    return DetectionResult(boxes, int(hw[0]), int(hw[1]), frame, source, prediction.text_map)
