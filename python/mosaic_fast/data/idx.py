"""Parser for the IDX format of (Fashion-)MNIST (LeCun et al.), gzip-compressed or raw.

Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then
one big-endian uint32 per dimension; the payload is the row-major array.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import MosaicValueError

_UBYTE = 0x08


def _gunzip(data: bytes) -> bytes:
    # zlib is ~1.5x faster than gzip.decompress; gzip handles the rare multi-member file.
    inflater = zlib.decompressobj(wbits=31)
    out = inflater.decompress(data)
    if not inflater.eof:
        raise EOFError("compressed stream ends early (truncated file)")
    return out + gzip.decompress(inflater.unused_data) if inflater.unused_data else out


def read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (``.gz`` or raw) into a uint8 array of ``ndim`` dimensions.

    Raises MosaicValueError naming the file if the magic number, the dimensions or the payload
    size is wrong, or if the gzip stream is truncated or corrupt.
    """
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = _gunzip(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise MosaicValueError(f"{str(path)!r} is not a complete gzip file ({exc})") from None
    if len(raw) < 4:
        raise MosaicValueError(f"{str(path)!r} is too short ({len(raw)} bytes) to be an IDX file")
    magic = int.from_bytes(raw[:4], "big")
    expected = (_UBYTE << 8) | ndim
    if magic != expected:
        raise MosaicValueError(
            f"{str(path)!r} has IDX magic number 0x{magic:08x}, expected 0x{expected:08x} "
            f"(unsigned bytes, {ndim} dimensions)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MosaicValueError(f"{str(path)!r} is truncated inside its IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    size = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != size:
        raise MosaicValueError(
            f"{str(path)!r} holds {len(raw) - header} payload bytes but its header "
            f"{dims} needs {size} (truncated or corrupt file)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
