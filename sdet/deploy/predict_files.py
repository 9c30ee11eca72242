"""`sdet predict`: images or folders in; one JSON per image plus overlay PNGs (and entropy maps) out.

The model is an sdet checkpoint (PyTorch) or an `sdet export`ed .onnx file (ONNX Runtime).
A user's photo is shown upright: its EXIF orientation is applied, and each JSON says in
which frame (``"frame"``: ``"exif-rotated"`` or ``"raw"``) and at which ``width`` x
``height`` its polygons are.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Dict, Iterable, List

from sdet.config import Config
from sdet.data.images import LoadedImage, open_image, write_image
from sdet.data.readers.common import list_images
from sdet.deploy.predictor import Prediction, Predictor
from sdet.errors import UserError
from sdet.viz import draw_detections, entropy_to_color


def collect_images(inputs: Iterable[str]) -> List[Path]:
    """Files as given and the images of folders (naturally sorted), each file once, in order."""
    paths: List[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths.extend(list_images(path))
        elif path.is_file():
            paths.append(path)
        else:
            raise UserError("input not found", path)
    if not paths:
        raise UserError("no images found in the inputs", ", ".join(inputs))
    return _first_mentions(paths)


def _first_mentions(paths: List[Path]) -> List[Path]:
    """``paths`` without repeats of a file (``x.jpg`` and ``./x.jpg`` too), in order of first mention."""
    seen = set()
    unique = []
    for path in paths:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def output_names(images: List[Path]) -> Dict[Path, str]:
    """Each image's output base name: its path relative to the inputs' common folder, extension kept.

    ``a/x.jpg`` and ``b/x.jpg`` give ``a/x.jpg`` and ``b/x.jpg`` (so ``a/x.jpg.json``,
    ``a/x.jpg_overlay.png``); ``x.jpg`` and ``x.png`` give ``x.jpg`` and ``x.png``; the
    images of a single folder keep their bare names. The mapping depends only on the
    paths, so a rerun writes the same files. Two images whose names differ only in case
    would share an output on Windows and macOS file systems, so they are refused.
    """
    absolute = [Path(os.path.abspath(p)) for p in images]
    try:
        root = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    except ValueError:  # Windows: inputs on different drives
        raise UserError("inputs on different drives: predict them in separate runs", ", ".join(map(str, images))) from None
    names: Dict[Path, str] = {}
    owner: Dict[str, Path] = {}
    for image, path in zip(images, absolute):
        name = path.relative_to(root).as_posix()
        first = owner.setdefault(name.casefold(), image)
        if first is not image:
            raise UserError(f"would write the same outputs {name}.json as {first} (names differ only in case)", image)
        names[image] = name
    return names


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError("--out names an existing file, not a folder", out_dir)


def _make_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent is a file, no permission, ...
        raise UserError(f"cannot create output folder ({exc.strerror or exc})", folder) from exc


def predict_paths(detector, cfg: Config, inputs: Iterable[str], out_dir: Path, entropy: bool = False) -> int:
    return predict_with(Predictor(detector, cfg), inputs, out_dir, entropy)


def prediction_record(path: Path, image: LoadedImage, pred: Prediction) -> dict:
    """The JSON of one image; ``frame`` and ``width`` x ``height`` say where the polygons' coordinates live."""
    return {
        "image": str(path),
        "frame": image.frame,
        "exif_orientation": image.exif_orientation,
        "height": int(image.pixels.shape[0]),
        "width": int(image.pixels.shape[1]),
        "detections": [
            {
                "polygon": [[round(float(x), 2), round(float(y), 2)] for x, y in d.polygon],
                "score": round(float(d.score), 5),
                **({"entropy": round(float(d.entropy), 5)} if d.entropy is not None else {}),
            }
            for d in pred.detections
        ],
    }


def predict_with(predictor: Callable[..., Prediction], inputs: Iterable[str], out_dir: Path, entropy: bool = False) -> int:
    """Any predictor called as ``predictor(image_bgr, with_entropy=...)``: PyTorch or ONNX Runtime.

    Outputs are named by :func:`output_names`, so inputs sharing a stem never overwrite each other.
    """
    _check_out_dir(out_dir)
    images = collect_images(inputs)
    names = output_names(images)
    for path in images:
        image = open_image(path, orientation="exif")
        pred = predictor(image.pixels, with_entropy=entropy)
        base = out_dir / names[path]
        _make_dir(base.parent)
        base.with_name(base.name + ".json").write_text(json.dumps(prediction_record(path, image, pred), indent=1), encoding="utf-8")
        write_image(base.with_name(base.name + "_overlay.png"), draw_detections(image.pixels, pred.detections))
        if entropy and pred.entropy_map is not None:
            write_image(base.with_name(base.name + "_entropy.png"), entropy_to_color(pred.entropy_map, image.pixels.shape[:2]))
    return len(images)
