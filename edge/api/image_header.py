"""An uploaded image's width and height, read from its header without decoding any pixel.

A few kilobytes of PNG can inflate to gigabytes of pixels (a decompression bomb), so an upload's
size in bytes says little about the memory its decoding takes. POST /inspect reads the header
first and refuses images over the pixel limit before OpenCV sees them.

The formats are the ones the station decodes: PNG, JPEG, BMP, TIFF and WebP. Anything else, or a
header that is cut short, is ``None``: the caller refuses it rather than decode blind.
"""

from __future__ import annotations

import struct
from typing import NamedTuple


class ImageHeader(NamedTuple):
    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


FORMATS = "PNG, JPEG, BMP, TIFF, WebP"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): C0-CF except
# C4 (Huffman tables), C8 (reserved) and CC (arithmetic conditioning).
_JPEG_SOF = {m for m in range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}


def read_header(data: bytes) -> ImageHeader | None:
    """Format, width and height from the first bytes of an image; None when unknown or cut."""
    try:
        for reader in (_png, _jpeg, _bmp, _tiff, _webp):
            header = reader(data)
            if header is not None:
                return header
    except (struct.error, IndexError):  # a header cut short
        return None
    return None


def _png(data: bytes) -> ImageHeader | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return ImageHeader("PNG", width, height)


def _jpeg(data: bytes) -> ImageHeader | None:
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None  # not at a marker: a broken stream
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return ImageHeader("JPEG", width, height)
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + length
    return None


def _bmp(data: bytes) -> ImageHeader | None:
    if data[:2] != b"BM":
        return None
    (info_size,) = struct.unpack("<I", data[14:18])
    if info_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return ImageHeader("BMP", abs(width), abs(height))  # negative height: rows top-down


def _tiff(data: bytes) -> ImageHeader | None:
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])
    if order is None:
        return None
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (entries,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    size: dict[int, int] = {}
    for n in range(entries):
        at = ifd + 2 + 12 * n
        tag, kind = struct.unpack(order + "HH", data[at : at + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            fmt = order + ("H" if kind == 3 else "I")
            size[tag] = struct.unpack(fmt, data[at + 8 : at + 8 + struct.calcsize(fmt)])[0]
    if 256 not in size or 257 not in size:
        return None
    return ImageHeader("TIFF", size[256], size[257])


def _webp(data: bytes) -> ImageHeader | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the key frame start code
        width, height = struct.unpack("<HH", data[26:30])
        return ImageHeader("WebP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":  # lossless: 14-bit sizes minus one, packed
        (bits,) = struct.unpack("<I", data[21:25])
        return ImageHeader("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":  # extended: 24-bit canvas sizes minus one
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return ImageHeader("WebP", width, height)
    return None
