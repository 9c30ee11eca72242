"""Small file-writing helpers the tests share; importable as `from helpers import ...`."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def write_bytes(path: Path, data: bytes) -> Path:
    """Exact bytes (BOMs, CRLF, GBK...), creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_image(path: Path, h: int = 40, w: int = 60, value: int = 128) -> Path:
    """A flat grey image of the given size in the format the suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))
    return path


def write_folder(root: Path, files: Dict[str, List[str]], newline: str = "\n") -> Path:
    """One UTF-8 text file per name, each line ended by ``newline`` (official zips use CRLF)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        (root / name).write_bytes("".join(x + newline for x in lines).encode("utf-8"))
    return root
