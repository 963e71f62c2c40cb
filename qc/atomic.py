"""Writing files so that readers see either the old file or the complete new one.

The bytes go to a temporary file in the same folder, are flushed to disk, then renamed over the
target: a crash, a power cut or a full disk mid-write never leaves a truncated file behind. The one
writer every package uses (model cards, registry pointers, station files, images).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_bytes_atomic(path: Path, data: bytes, *, tmp_dir: Path | None = None) -> None:
    """Temporary file (in the target's folder, or ``tmp_dir`` on the same filesystem), flushed to
    disk, then renamed over the target."""
    tmp_dir = Path(path).parent if tmp_dir is None else Path(tmp_dir)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=f".{Path(path).name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable: fsync the folder itself."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
