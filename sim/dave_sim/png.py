"""Minimal PNG encoder (stdlib zlib): 8/16-bit greyscale and 8-bit RGB, byte-for-byte deterministic.

The Gazebo heightmap needs a 16-bit greyscale image and the ground textures 8-bit RGB; this keeps
dave_sim free of an image library, and the same array always gives the same bytes.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# PNG colour types: 0 greyscale, 2 truecolour (RGB).
_GREY, _RGB = 0, 2


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack('>I', len(payload)) + kind + payload
            + struct.pack('>I', zlib.crc32(kind + payload) & 0xFFFFFFFF))


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an (H, W) uint8/uint16 greyscale or (H, W, 3) uint8 RGB image; row 0 is the top."""
    image = np.asarray(image)
    if image.ndim == 2 and image.dtype in (np.uint8, np.uint16):
        colour_type, depth = _GREY, 8 * image.dtype.itemsize
    elif image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        colour_type, depth = _RGB, 8
    else:
        raise ValueError(f'encode_png takes (H, W) uint8/uint16 or (H, W, 3) uint8, '
                         f'got shape {image.shape} dtype {image.dtype}')
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f'encode_png needs a non-empty image, got shape {image.shape}')
    rows = np.ascontiguousarray(image.astype(image.dtype.newbyteorder('>')))  # PNG is big-endian
    raw = rows.reshape(height, -1).view(np.uint8)
    # Filter type 0 (none) on every row: simple, and zlib still compresses smooth heightmaps well.
    scanlines = np.concatenate([np.zeros((height, 1), np.uint8), raw], axis=1).tobytes()
    header = struct.pack('>IIBBBBB', width, height, depth, colour_type, 0, 0, 0)
    return (_SIGNATURE + _chunk(b'IHDR', header) + _chunk(b'IDAT', zlib.compress(scanlines, 9))
            + _chunk(b'IEND', b''))
