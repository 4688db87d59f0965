"""sensor_msgs Image / CameraInfo <-> numpy, without cv_bridge (no wheel of it exists for this ROS).

Received images become zero-copy numpy views on the message buffer; outgoing images cost one
memcpy. Only message packages are imported, so everything here works without `rclpy.init()`.
"""
from __future__ import annotations

import array
import math
import sys
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image

_NATIVE_IS_BIGENDIAN = sys.byteorder == 'big'


class ImageConversionError(ValueError):
    """An Image, array or camera model that cannot be converted; the message names the culprit."""


@dataclass(frozen=True)
class _Encoding:
    """Memory layout of one ROS image encoding."""

    dtype: np.dtype
    channels: int

    @property
    def pixel_bytes(self) -> int:
        return self.dtype.itemsize * self.channels


# The encodings dave's topics use (ARCHITECTURE.md): colour stereo, class labels, depth.
ENCODINGS: dict[str, _Encoding] = {
    'rgb8': _Encoding(np.dtype(np.uint8), 3),
    'bgr8': _Encoding(np.dtype(np.uint8), 3),
    'mono8': _Encoding(np.dtype(np.uint8), 1),
    '32FC1': _Encoding(np.dtype(np.float32), 1),
}


def _encoding(name: str) -> _Encoding:
    try:
        return ENCODINGS[name]
    except KeyError:
        raise ImageConversionError(
            f'unsupported image encoding {name!r} (supported: {", ".join(ENCODINGS)})') from None


def image_to_numpy(msg: Image) -> np.ndarray:
    """View `msg.data` as an array without copying: HxWx3 for rgb8/bgr8, HxW for mono8/32FC1.

    The view honours row padding (step > width * pixel bytes) and `is_bigendian`; channel order
    is left as encoded (bgr8 stays BGR). The array shares memory with the message, so it is
    valid as long as the message is, and writes to it change the message.
    """
    enc = _encoding(msg.encoding)
    height, width, step = msg.height, msg.width, msg.step
    row_bytes = width * enc.pixel_bytes
    if step < row_bytes:
        raise ImageConversionError(
            f'{msg.encoding} image {width}x{height}: step {step} < width * {enc.pixel_bytes} '
            f'bytes per pixel = {row_bytes}')
    buffer = memoryview(msg.data).cast('B')
    if len(buffer) < height * step:
        raise ImageConversionError(
            f'{msg.encoding} image {width}x{height}: data has {len(buffer)} bytes, '
            f'height * step needs {height * step}')
    dtype = enc.dtype
    if dtype.itemsize > 1 and bool(msg.is_bigendian) != _NATIVE_IS_BIGENDIAN:
        # A byte-swapped dtype keeps the view zero-copy; numpy swaps on every read.
        dtype = dtype.newbyteorder()
    shape: tuple[int, ...] = (height, width, enc.channels) if enc.channels > 1 else (height, width)
    strides: tuple[int, ...] = (step, enc.pixel_bytes, dtype.itemsize)[:len(shape)]
    if height == 0 or width == 0:
        return np.zeros(shape, dtype)
    return np.ndarray(shape, dtype=dtype, buffer=buffer, strides=strides)


def numpy_to_image(array_: np.ndarray, encoding: str, stamp: Time | None = None,
                   frame_id: str = '') -> Image:
    """Build an Image from an array laid out as `encoding` (HxWx3 uint8 colour, HxW mono8/32FC1).

    Rows are packed (step = width * pixel bytes) in this machine's byte order; one copy is made.
    """
    enc = _encoding(encoding)
    expected_ndim = 3 if enc.channels > 1 else 2
    shape_ok = array_.ndim == expected_ndim and (
        expected_ndim == 2 or array_.shape[2] == enc.channels)
    # Compare kind and size, not the dtype itself: a byte-swapped float32 is still float32 data.
    dtype_ok = array_.dtype.kind == enc.dtype.kind and array_.dtype.itemsize == enc.dtype.itemsize
    if not (shape_ok and dtype_ok):
        wanted = 'HxWx3' if enc.channels == 3 else 'HxW'
        raise ImageConversionError(
            f'{encoding} needs a {wanted} {enc.dtype} array, '
            f'got shape {array_.shape} {array_.dtype}')
    packed = np.ascontiguousarray(array_, dtype=enc.dtype.newbyteorder('='))
    # With field checks on, the generated `data` setter keeps an array.array('B') as is; with
    # them off it copies it once more, and the second 900 KiB buffer per 640x480 frame makes
    # glibc return and re-fault heap pages: 1.1 ms per image instead of 0.06 ms (measured).
    msg = Image(check_fields=True)
    _fill_header(msg, stamp, frame_id, 'image')
    msg.height, msg.width = packed.shape[0], packed.shape[1]
    msg.encoding = encoding
    msg.is_bigendian = int(_NATIVE_IS_BIGENDIAN)
    msg.step = msg.width * enc.pixel_bytes
    data = array.array('B')
    data.frombytes(packed.reshape(-1).view(np.uint8))
    msg.data = data
    return msg


def camera_info_from_intrinsics(width: int, height: int, fx: float, fy: float, cx: float,
                                cy: float, baseline_m: float = 0.0, stamp: Time | None = None,
                                frame_id: str = '') -> CameraInfo:
    """CameraInfo of an ideal (rectified, distortion-free) pinhole camera.

    Pass `baseline_m` for the RIGHT camera of a rectified pair only: its projection then has
    P[3] = -fx * baseline (the ROS stereo convention); the left camera keeps P[3] = 0.
    """
    for name, value in (('width', width), ('height', height)):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ImageConversionError(
                f'camera_info {name} must be a positive integer, got {value!r}')
    for name, value in (('fx', fx), ('fy', fy)):
        if not math.isfinite(value) or value <= 0.0:
            raise ImageConversionError(
                f'camera_info {name} must be a positive focal length in pixels, got {value!r}')
    for name, value in (('cx', cx), ('cy', cy)):
        if not math.isfinite(value):
            raise ImageConversionError(f'camera_info {name} must be finite, got {value!r}')
    if not math.isfinite(baseline_m) or baseline_m < 0.0:
        raise ImageConversionError(
            f'camera_info baseline_m must be >= 0 metres, got {baseline_m!r}')
    fx, fy, cx, cy = float(fx), float(fy), float(cx), float(cy)
    msg = CameraInfo()
    _fill_header(msg, stamp, frame_id, 'camera_info')
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = 'plumb_bob'
    msg.d = [0.0] * 5
    msg.k = [fx, 0.0, cx,
             0.0, fy, cy,
             0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0,
             0.0, 1.0, 0.0,
             0.0, 0.0, 1.0]
    tx = -fx * float(baseline_m) if baseline_m else 0.0  # not -0.0 for the left camera
    msg.p = [fx, 0.0, cx, tx,
             0.0, fy, cy, 0.0,
             0.0, 0.0, 1.0, 0.0]
    return msg


def _fill_header(msg: Image | CameraInfo, stamp: Time | None, frame_id: str, what: str) -> None:
    if stamp is not None and not isinstance(stamp, Time):
        raise ImageConversionError(
            f'{what} stamp must be a builtin_interfaces/Time, got {type(stamp).__name__}')
    if not isinstance(frame_id, str):
        raise ImageConversionError(f'{what} frame_id must be a str, got {type(frame_id).__name__}')
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id


def stereo_baseline_from_camera_info(right_info: CameraInfo) -> float:
    """Baseline in metres of a rectified pair, from the right camera's P[3] = -fx * baseline."""
    fx, tx = float(right_info.p[0]), float(right_info.p[3])
    if not fx > 0.0:
        raise ImageConversionError(
            f'camera_info {right_info.header.frame_id!r}: P[0] (fx) must be > 0, got {fx}')
    baseline = -tx / fx
    if not baseline > 0.0:
        raise ImageConversionError(
            f'camera_info {right_info.header.frame_id!r}: P[3] = {tx} gives baseline {baseline} m; '
            'expected the right camera of a rectified pair (P[3] = -fx * baseline < 0)')
    return baseline
