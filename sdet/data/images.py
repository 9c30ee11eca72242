"""Image decoding that survives unicode paths and always yields 3-channel BGR uint8."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import cv2
import numpy as np

from sdet.errors import UserError


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Read an image as BGR uint8 (H, W, 3).

    Uses ``np.fromfile`` + ``cv2.imdecode`` because ``cv2.imread`` cannot open
    non-ASCII paths on Windows and returns ``None`` silently on any failure.
    ``IMREAD_COLOR`` turns grayscale/alpha/16-bit images into 3-channel uint8 and
    applies EXIF orientation, as PaddleOCR and MMOCR do by default.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError("image not found", path)
    try:
        buf = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise UserError(f"cannot read image ({exc.strerror or exc})", path) from exc
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if image is None or image.size == 0:
        raise UserError("cannot decode image", path)
    return image
