"""Reading and writing images at the file boundary.

Inside the project an image is a uint8 RGB array (H, W, 3); OpenCV's BGR order, greyscale, alpha and
16-bit files are converted here, once, so no caller has to think about them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from qc.atomic import write_bytes_atomic

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


class ImageReadError(Exception):
    """A file that cannot be used as an image; the message names the file and the reason."""


def to_rgb_uint8(image: np.ndarray, *, source: str = "image") -> np.ndarray:
    """Normalise any decoded array (grey, grey+alpha, RGB, RGBA; uint8/uint16/float) to uint8 RGB.

    Channel order is assumed RGB(A) already; use :func:`read_image` for files (BGR on disk).
    """
    if not isinstance(image, np.ndarray):
        raise ImageReadError(f"{source}: expected a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise ImageReadError(f"{source}: image is empty")
    if image.dtype == np.uint16:
        # 16-bit sensors: keep the full range rather than clipping to the low byte.
        image = (image.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        if not np.isfinite(image).all():
            raise ImageReadError(f"{source}: float image holds NaN or infinity")
        hi = 1.0 if image.max() <= 1.0 else 255.0
        image = np.clip(image / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        raise ImageReadError(f"{source}: unsupported pixel type {image.dtype}")

    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 2:  # grey + alpha
        return np.repeat(image[:, :, :1], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return np.ascontiguousarray(image[:, :, :3])
    raise ImageReadError(f"{source}: unsupported image shape {image.shape}")


def _read_bytes(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise ImageReadError(f"{path}: no such {what}")
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as exc:  # gone since the check (folder renamed, share unmounted), or an I/O error
        raise ImageReadError(f"{path}: cannot be read: {exc.strerror or exc}") from exc


def read_image(path: str | Path) -> np.ndarray:
    """Read a file as uint8 RGB (H, W, 3). Raises ImageReadError naming the file."""
    path = Path(path)
    data = _read_bytes(path, "file")
    if data.size == 0:
        raise ImageReadError(f"{path}: file is empty")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(f"{path}: not a readable image (corrupt or unsupported format)")
    if image.ndim == 3 and image.shape[2] >= 3:
        code = cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        image = cv2.cvtColor(image, code)
    return to_rgb_uint8(image, source=str(path))


def read_mask(path: str | Path) -> np.ndarray:
    """Read a defect mask as uint8 (H, W) with values 0 / 255 (anything non-zero is defect)."""
    path = Path(path)
    image = cv2.imdecode(_read_bytes(path, "mask file"), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ImageReadError(f"{path}: not a readable mask image")
    return np.where(image > 0, 255, 0).astype(np.uint8)


def encode_image(image: np.ndarray, suffix: str, *, jpeg_quality: int = 90) -> bytes:
    """Encode an RGB (or greyscale) uint8 array to the format named by ``suffix`` ('.png', ...)."""
    array = image
    if image.ndim == 3 and image.shape[2] == 3:
        array = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix, array, params)
    if not ok:
        raise ValueError(f"cannot encode image as {suffix}")
    return buf.tobytes()


def write_image_atomic(path: str | Path, image: np.ndarray, *, jpeg_quality: int = 90) -> Path:
    """Write an image so that readers see either the old file or the complete new one.

    The bytes go to a temporary file in the same folder, are flushed to disk, then renamed over the
    target: a crash or power cut mid-write never leaves a truncated image behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, encode_image(image, path.suffix, jpeg_quality=jpeg_quality))
    return path
