"""Image/CameraInfo <-> numpy without cv_bridge: round trips, padding, zero copy, bad input."""
import array
import sys

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image

from dave_nodes.conversions import (ImageConversionError, camera_info_from_intrinsics,
                                    image_to_numpy, numpy_to_image,
                                    stereo_baseline_from_camera_info)

RNG = np.random.default_rng(0)


def _sample(encoding: str, height: int = 5, width: int = 7) -> np.ndarray:
    if encoding == '32FC1':
        return RNG.normal(size=(height, width)).astype(np.float32)
    shape = (height, width, 3) if encoding in ('rgb8', 'bgr8') else (height, width)
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def _padded_message(image: np.ndarray, encoding: str, pad_bytes: int, big_endian: bool) -> Image:
    """Hand-build an Image the way another driver might: padded rows, chosen byte order."""
    height, width = image.shape[:2]
    dtype = image.dtype.newbyteorder('>' if big_endian else '<')
    row = image.astype(dtype).reshape(height, -1).view(np.uint8)
    padded = np.zeros((height, row.shape[1] + pad_bytes), np.uint8)
    padded[:, :row.shape[1]] = row
    padded[:, row.shape[1]:] = 0xAB  # garbage that must not leak into the pixels
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(big_endian),
                step=padded.shape[1])
    msg.data = padded.tobytes()
    return msg


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'mono8', '32FC1'])
def test_round_trip_keeps_pixels_shape_and_dtype(encoding):
    image = _sample(encoding)
    msg = numpy_to_image(image, encoding, stamp=Time(sec=12, nanosec=34), frame_id='cam')
    channels = 3 if image.ndim == 3 else 1
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * channels * image.dtype.itemsize
    assert len(msg.data) == msg.step * msg.height
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (12, 34, 'cam')
    back = image_to_numpy(msg)
    assert back.shape == image.shape
    assert back.dtype == image.dtype
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'mono8', '32FC1'])
@pytest.mark.parametrize('big_endian', [False, True])
def test_padded_rows_and_either_byte_order_are_honoured_without_copy(encoding, big_endian):
    image = _sample(encoding, height=4, width=6)
    msg = _padded_message(image, encoding, pad_bytes=10, big_endian=big_endian)
    assert msg.step > msg.width * (3 if image.ndim == 3 else 1) * image.itemsize
    view = image_to_numpy(msg)
    assert view.shape == image.shape
    np.testing.assert_array_equal(view, image)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))


def test_receive_view_is_zero_copy_and_live():
    image = _sample('rgb8', 48, 64)
    msg = numpy_to_image(image, 'rgb8')
    view = image_to_numpy(msg)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
    view[0, 0] = (1, 2, 3)
    assert list(msg.data[:3]) == [1, 2, 3]


def test_outgoing_message_owns_its_pixels():
    image = _sample('mono8')
    msg = numpy_to_image(image, 'mono8')
    image[:] = 0
    assert not np.shares_memory(image, np.frombuffer(msg.data, np.uint8))
    assert image_to_numpy(msg).any()
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'B'


def test_non_contiguous_and_byte_swapped_inputs_are_packed():
    wide = _sample('rgb8', 6, 20)
    crop = wide[:, 5:12]  # a strided view, as the stereo driver's side-by-side split makes
    np.testing.assert_array_equal(image_to_numpy(numpy_to_image(crop, 'rgb8')), crop)
    depth = _sample('32FC1').astype('>f4')
    msg = numpy_to_image(depth, '32FC1')
    assert msg.is_bigendian == int(sys.byteorder == 'big')
    np.testing.assert_array_equal(image_to_numpy(msg), depth)


def test_empty_image_round_trips():
    msg = numpy_to_image(np.zeros((0, 0, 3), np.uint8), 'rgb8')
    assert image_to_numpy(msg).shape == (0, 0, 3)


@pytest.mark.parametrize('encoding', ['rgba8', '16UC1', 'bayer_rggb8', ''])
def test_unsupported_encoding_is_named(encoding):
    msg = Image(height=2, width=2, encoding=encoding, step=8, data=bytes(16))
    with pytest.raises(ImageConversionError, match=f"unsupported image encoding '{encoding}'"):
        image_to_numpy(msg)
    with pytest.raises(ImageConversionError, match='unsupported image encoding'):
        numpy_to_image(np.zeros((2, 2, 3), np.uint8), encoding)


def test_data_shorter_than_height_times_step_is_rejected():
    msg = Image(height=4, width=3, encoding='rgb8', step=9, data=bytes(9 * 4 - 1))
    with pytest.raises(ImageConversionError,
                       match=r'rgb8 image 3x4: data has 35 bytes, height \* step needs 36'):
        image_to_numpy(msg)


def test_step_smaller_than_a_row_is_rejected():
    msg = Image(height=2, width=4, encoding='32FC1', step=12, data=bytes(24))
    with pytest.raises(ImageConversionError, match=r'32FC1 image 4x2: step 12 < width \* 4'):
        image_to_numpy(msg)


@pytest.mark.parametrize('encoding, array_, wanted', [
    ('rgb8', np.zeros((4, 4), np.uint8), 'HxWx3 uint8'),
    ('rgb8', np.zeros((4, 4, 4), np.uint8), 'HxWx3 uint8'),
    ('bgr8', np.zeros((4, 4, 3), np.float32), 'HxWx3 uint8'),
    ('mono8', np.zeros((4, 4, 3), np.uint8), 'HxW uint8'),
    ('mono8', np.zeros((4, 4), np.int8), 'HxW uint8'),
    ('mono8', np.zeros((4, 4), bool), 'HxW uint8'),
    ('32FC1', np.zeros((4, 4), np.float64), 'HxW float32'),
    ('32FC1', np.zeros((4, 4), np.uint32), 'HxW float32'),
])
def test_array_not_matching_encoding_is_rejected(encoding, array_, wanted):
    with pytest.raises(ImageConversionError, match=f'{encoding} needs a {wanted} array, got shape'):
        numpy_to_image(array_, encoding)


def test_bad_stamp_or_frame_id_is_rejected():
    with pytest.raises(ImageConversionError, match='image stamp must be a builtin_interfaces/Time'):
        numpy_to_image(np.zeros((2, 2), np.uint8), 'mono8', stamp=123)
    with pytest.raises(ImageConversionError, match='camera_info frame_id must be a str'):
        camera_info_from_intrinsics(4, 4, 1.0, 1.0, 2.0, 2.0, frame_id=None)


def test_camera_info_left_and_right_of_a_rectified_pair():
    stamp = Time(sec=5, nanosec=6)
    left = camera_info_from_intrinsics(640, 480, 400.0, 410.0, 319.5, 239.5, stamp=stamp,
                                       frame_id='left')
    right = camera_info_from_intrinsics(640, 480, 400.0, 410.0, 319.5, 239.5, baseline_m=0.12,
                                        stamp=stamp, frame_id='right')
    for info in (left, right):
        assert (info.width, info.height, info.distortion_model) == (640, 480, 'plumb_bob')
        assert list(info.d) == [0.0] * 5
        assert list(info.k) == [400.0, 0.0, 319.5, 0.0, 410.0, 239.5, 0.0, 0.0, 1.0]
        assert list(info.r) == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        assert (info.header.stamp.sec, info.header.stamp.nanosec) == (5, 6)
    assert left.p[3] == 0.0
    assert right.p[3] == pytest.approx(-400.0 * 0.12)
    assert [right.p[i] for i in (0, 2, 5, 6, 10)] == [400.0, 319.5, 410.0, 239.5, 1.0]
    assert stereo_baseline_from_camera_info(right) == pytest.approx(0.12)


def test_baseline_from_a_left_or_empty_camera_info_is_an_error():
    left = camera_info_from_intrinsics(64, 48, 40.0, 40.0, 32.0, 24.0, frame_id='stereo_left')
    with pytest.raises(ImageConversionError, match="'stereo_left': P\\[3\\] = 0.0 gives baseline"):
        stereo_baseline_from_camera_info(left)
    with pytest.raises(ImageConversionError, match=r'P\[0\] \(fx\) must be > 0'):
        stereo_baseline_from_camera_info(CameraInfo())


@pytest.mark.parametrize('kwargs, culprit', [
    ({'width': 0}, 'width'),
    ({'height': 2.5}, 'height'),
    ({'fx': 0.0}, 'fx'),
    ({'fy': float('nan')}, 'fy'),
    ({'cx': float('inf')}, 'cx'),
    ({'baseline_m': -0.1}, 'baseline_m'),
])
def test_bad_intrinsics_name_the_culprit(kwargs, culprit):
    args = {'width': 64, 'height': 48, 'fx': 40.0, 'fy': 40.0, 'cx': 32.0, 'cy': 24.0} | kwargs
    with pytest.raises(ImageConversionError, match=f'camera_info {culprit} must be'):
        camera_info_from_intrinsics(**args)
