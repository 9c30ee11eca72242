"""Image decoding with an explicit orientation policy; always 3-channel BGR uint8, or one-line errors.

Benchmark ground truth refers to the raw pixel grid even when a photo carries an EXIF
Orientation tag, while a user's own photo is expected upright. So every caller says which
frame it wants (:data:`Orientation`): ``"raw"`` for datasets (training, evaluation, ``sdet
data check/show``), ``"exif"`` for ``sdet predict``. The EXIF tag is read here (JPEG APP1
and PNG eXIf) and applied here with cv2, so the frame a caller gets is exactly the one
:class:`LoadedImage` reports, whatever the OpenCV version does by itself.

Before decoding, the JPEG/PNG/BMP header is parsed with :mod:`struct`: a file cut short
(no JPEG end-of-image marker after the scan, no PNG IEND chunk) is refused rather than
decoded half grey, and an image over :data:`MAX_IMAGE_PIXELS` is refused before its pixels
are allocated.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Literal, Union

import cv2
import numpy as np

from sdet.errors import UserError

PathLike = Union[str, Path]
Orientation = Literal["raw", "exif"]
ORIENTATIONS = ("raw", "exif")
MAX_IMAGE_PIXELS = 100_000_000  # 100 megapixels: ~300 MB as BGR uint8, far above any benchmark photo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
JPEG_EOI = b"\xff\xd9"
EXIF_TAG_ORIENTATION = 0x0112
# SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn and TEM have no length field
# Decode without OpenCV's own EXIF handling (the policy is applied below) and keep 16 bits (scaled below).
DECODE_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_IGNORE_ORIENTATION

ORIENTATION_NAMES: Dict[int, str] = {
    1: "upright",
    2: "mirrored left-right",
    3: "rotated 180 degrees",
    4: "mirrored top-bottom",
    5: "transposed",
    6: "to be rotated 90 degrees clockwise",
    7: "transversed",
    8: "to be rotated 90 degrees counter-clockwise",
}
# EXIF Orientation value -> the cv2 operation that makes the raw pixels upright.
_UPRIGHT: Dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda im: cv2.flip(im, 1),
    3: lambda im: cv2.rotate(im, cv2.ROTATE_180),
    4: lambda im: cv2.flip(im, 0),
    5: cv2.transpose,
    6: lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE),
    7: lambda im: cv2.flip(cv2.transpose(im), -1),
    8: lambda im: cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


@dataclass(frozen=True)
class ImageHeader:
    """What the file's header says; zeros where the format is not parsed here (left to OpenCV)."""

    kind: str = ""  # "JPEG", "PNG", "BMP" or "" (another format OpenCV may read)
    width: int = 0
    height: int = 0
    exif_orientation: int = 1  # 1 = none or upright


@dataclass(frozen=True)
class LoadedImage:
    """Decoded pixels and the frame they are in."""

    pixels: np.ndarray  # BGR uint8 (H, W, 3)
    exif_orientation: int
    orientation: Orientation

    @property
    def frame(self) -> str:
        """``"exif-rotated"`` when the EXIF tag moved the pixels, else ``"raw"`` (the file's grid)."""
        return "exif-rotated" if self.orientation == "exif" and self.exif_orientation in _UPRIGHT else "raw"


# --------------------------------------------------------------------------- headers


def swaps_axes(exif_orientation: int) -> bool:
    """Whether applying this EXIF orientation exchanges width and height (values 5 to 8)."""
    return exif_orientation in (5, 6, 7, 8)


def describe_orientation(value: int) -> str:
    return ORIENTATION_NAMES.get(value, "not a valid value, ignored")


def tiff_orientation(tiff: bytes) -> int:
    """The Orientation tag of IFD0 of an EXIF (TIFF-structured) block; 1 if absent or unreadable."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for k in range(count):
        entry = ifd + 2 + 12 * k
        if entry + 12 > len(tiff):
            break
        tag, kind, _, value = struct.unpack_from(order + "HHIH", tiff, entry)
        if tag == EXIF_TAG_ORIENTATION and kind == 3:  # SHORT
            return int(value)
    return 1


def _truncated(kind: str, what: str, path: PathLike) -> UserError:
    return UserError(f"cannot decode image: truncated {kind} (the data ends before {what})", path)


def _png_header(data: bytes, path: PathLike) -> ImageHeader:
    """Walk the chunks: IHDR gives the size, eXIf the orientation; IEND must be reached."""
    width = height = 0
    orientation = 1
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8: pos + 8 + length]
        if len(body) < length:
            break
        if kind == b"IHDR" and length >= 8:
            width, height = struct.unpack_from(">II", body)
        elif kind == b"eXIf":
            orientation = tiff_orientation(body)
        elif kind == b"IEND":
            return ImageHeader("PNG", width, height, orientation)
        pos += 12 + length  # length, type, data, CRC
    raise _truncated("PNG", "the IEND chunk", path)


def _jpeg_header(data: bytes, path: PathLike) -> ImageHeader:
    """Walk the segments up to the first scan: SOFn gives the size, APP1 Exif the orientation.

    Entropy-coded data cannot contain FF D9 (a data FF is followed by 00), so an
    end-of-image marker after the first start-of-scan means the file is complete; markers
    are walked by their lengths, so an EXIF thumbnail's own EOI is never mistaken for it.
    """
    width = height = 0
    orientation = 1
    pos = len(JPEG_SOI)
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            raise UserError(f"cannot decode image: corrupt JPEG (no marker at byte {pos})", path)
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in JPEG_STANDALONE:
            pos += 2
            continue
        if marker == JPEG_EOI[1] or pos + 4 > len(data):
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        body = data[pos + 4: pos + 2 + length]
        if len(body) < length - 2:
            break
        if marker in JPEG_SOF and len(body) >= 5:
            height, width = struct.unpack_from(">HH", body, 1)
        elif marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
            orientation = tiff_orientation(body[6:])
        elif marker == 0xDA:  # start of scan
            if data.find(JPEG_EOI, pos + 2 + length) < 0:
                break
            return ImageHeader("JPEG", width, height, orientation)
        pos += 2 + length
    raise _truncated("JPEG", "the end-of-image marker", path)


def _bmp_header(data: bytes) -> ImageHeader:
    """Size from the DIB header; a file merely starting with "BM" (text, say) is left to OpenCV."""
    if len(data) < 26:
        return ImageHeader()
    (dib_size,) = struct.unpack_from("<I", data, 14)
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return ImageHeader("BMP", *struct.unpack_from("<HH", data, 18))
    if dib_size not in (40, 52, 56, 64, 108, 124):
        return ImageHeader()
    width, height = struct.unpack_from("<ii", data, 18)  # a negative height means top-down rows
    return ImageHeader("BMP", abs(width), abs(height))


def parse_header(data: bytes, path: PathLike) -> ImageHeader:
    """Kind, size and EXIF orientation from a JPEG/PNG/BMP header; refuses truncated files."""
    if data.startswith(PNG_SIGNATURE):
        return _png_header(data, path)
    if data.startswith(JPEG_SOI):
        return _jpeg_header(data, path)
    if data.startswith(b"BM"):
        return _bmp_header(data)
    return ImageHeader()


def exif_orientation(path: PathLike) -> int:
    """The EXIF Orientation value (1 to 8) of a JPEG or PNG file; 1 when it has none."""
    return parse_header(_read_file(Path(path)), path).exif_orientation


# --------------------------------------------------------------------------- decoding


def _read_file(path: Path) -> bytes:
    """The file's bytes (Python opens non-ASCII paths everywhere, unlike ``cv2.imread`` on Windows)."""
    if path.is_dir():
        raise UserError("is a directory, not an image", path)
    if not path.is_file():
        raise UserError("image not found", path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read image ({exc.strerror or exc})", path) from exc
    if not data:
        raise UserError("cannot decode image: the file is empty (0 bytes)", path)
    return data


def _check_size(width: int, height: int, max_pixels: int, source: str, path: PathLike) -> None:
    if width * height > max_pixels:
        raise UserError(
            f"image is {width}x{height} = {width * height / 1e6:.1f} megapixels, over the limit of "
            f"{max_pixels / 1e6:g} megapixels ({source})",
            path,
        )


def to_bgr8(image: np.ndarray, path: PathLike) -> np.ndarray:
    """3-channel uint8; 16-bit samples are scaled by 1/257 and rounded (OpenCV's 8-bit read truncates by 1/256)."""
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise UserError(f"cannot decode image: {image.dtype} pixels are not supported (8- or 16-bit images only)", path)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


def _decode(data: bytes, header: ImageHeader, path: PathLike) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), DECODE_FLAGS)
    if image is None or image.size == 0:
        if header.kind:
            raise UserError(f"cannot decode image: corrupt {header.kind} data", path)
        raise UserError(f"cannot decode image: not an image format OpenCV reads (the file starts with {data[:12]!r})", path)
    return to_bgr8(image, path)


def open_image(path: PathLike, orientation: Orientation, max_pixels: int = MAX_IMAGE_PIXELS) -> LoadedImage:
    """Decode ``path`` in the frame ``orientation`` names: ``"raw"`` (file grid) or ``"exif"`` (upright).

    JPEG, PNG and BMP over ``max_pixels`` are refused from their header, before decoding;
    other formats are decoded by OpenCV (itself capped at 2^30 pixels) and then checked.
    """
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    data = _read_file(Path(path))
    header = parse_header(data, path)
    _check_size(header.width, header.height, max_pixels, f"size read from the {header.kind} header, not decoded", path)
    pixels = _decode(data, header, path)
    if not header.kind:
        _check_size(pixels.shape[1], pixels.shape[0], max_pixels, "decoded size", path)
    if orientation == "exif" and header.exif_orientation in _UPRIGHT:
        pixels = _UPRIGHT[header.exif_orientation](pixels)
    return LoadedImage(np.ascontiguousarray(pixels), header.exif_orientation, orientation)


def read_image(path: PathLike, orientation: Orientation = "raw", max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """BGR uint8 (H, W, 3) of ``path``; see :func:`open_image`.

    The default is ``"raw"``, the frame of every dataset's ground truth; code that shows
    results on a user's own photo passes ``orientation="exif"`` and reports the frame.
    Grey and alpha images become 3-channel BGR (alpha dropped), 16-bit ones 8-bit.
    """
    return open_image(path, orientation, max_pixels).pixels


def write_image(path: PathLike, image: np.ndarray) -> Path:
    """Encode by the suffix and write with ``tofile`` (``cv2.imwrite`` fails silently on non-ASCII Windows paths)."""
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise UserError("cannot encode image", path)
    try:
        buf.tofile(str(path))
    except OSError as exc:
        raise UserError(f"cannot write image ({exc.strerror or exc})", path) from exc
    return path

