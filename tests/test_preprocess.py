"""Stereo preprocessing: values, channel order, cropping, spec round-trip, errors, speed."""

import cv2
import numpy as np
import pytest

from dave_core.preprocess import (PreprocessSpec, crop_resize, crop_rows, preprocess_stereo,
                                  to_network_input)


def _pair(seed=0, shape=(240, 320, 3)):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 256, shape, dtype=np.uint8))


def test_output_matches_a_direct_computation():
    spec = PreprocessSpec()
    left, right = _pair()
    x = preprocess_stereo(left, right, spec)
    assert x.shape == (6, 66, 200) and x.dtype == np.float32 and x.flags['C_CONTIGUOUS']
    top = int(round(240 * spec.crop_top))
    for side, image in enumerate((left, right)):
        small = cv2.resize(image[top:], (200, 66), interpolation=cv2.INTER_AREA)
        yuv = cv2.cvtColor(small, cv2.COLOR_RGB2YUV).astype(np.float64) / 255.0
        for c in range(3):
            expected = (yuv[:, :, c] - spec.mean[c]) / spec.std[c]
            np.testing.assert_allclose(x[3 * side + c], expected, atol=1e-5)


def test_left_channels_come_first():
    spec = PreprocessSpec()
    left, right = _pair()
    base = preprocess_stereo(left, right, spec)
    changed = preprocess_stereo(left, np.zeros_like(right), spec)
    np.testing.assert_array_equal(base[:3], changed[:3])
    assert not np.allclose(base[3:], changed[3:])
    assert spec.channel_names() == ('left_Y', 'left_U', 'left_V', 'right_Y', 'right_U', 'right_V')


def test_cropped_rows_do_not_influence_the_output():
    spec = PreprocessSpec(crop_top=0.4, crop_bottom=0.1)
    left, right = _pair()
    top, bottom = crop_rows(240, spec)
    assert (top, bottom) == (96, 216)
    altered_l, altered_r = left.copy(), right.copy()
    for image in (altered_l, altered_r):
        image[:top] = 255
        image[bottom:] = 0
    np.testing.assert_array_equal(preprocess_stereo(left, right, spec),
                                  preprocess_stereo(altered_l, altered_r, spec))
    altered_l[top] = 255 - altered_l[top]
    assert not np.array_equal(preprocess_stereo(left, right, spec),
                              preprocess_stereo(altered_l, altered_r, spec))


def test_rgb_colour_space_and_other_input_sizes():
    spec = PreprocessSpec(color_space='rgb', height=32, width=64, mean=(0, 0, 0), std=(1, 1, 1))
    left = np.full((480, 640, 3), (255, 0, 51), dtype=np.uint8)
    x = preprocess_stereo(left, left.copy(), spec)
    assert x.shape == (6, 32, 64)
    np.testing.assert_allclose(x[:, 0, 0], [1.0, 0.0, 0.2, 1.0, 0.0, 0.2], atol=1e-6)


def test_two_stages_compose_to_the_full_function():
    spec = PreprocessSpec()
    left, right = _pair(3)
    staged = to_network_input(crop_resize(left, spec), crop_resize(right, spec), spec)
    np.testing.assert_array_equal(staged, preprocess_stereo(left, right, spec))


def test_spec_round_trips_through_its_dict():
    spec = PreprocessSpec(crop_top=0.3, height=48, width=160, mean=(0.4, 0.5, 0.5), std=(0.2, 0.1, 0.1))
    data = spec.to_dict()
    assert data['mean'] == [0.4, 0.5, 0.5]  # JSON-ready lists
    assert PreprocessSpec.from_dict(data) == spec
    assert hash(PreprocessSpec.from_dict(data)) == hash(spec)


@pytest.mark.parametrize('data, culprit', [
    ({'crop_top': 1.2}, 'crop_top'),
    ({'crop_top': 0.6, 'crop_bottom': 0.5}, 'crop_bottom'),
    ({'height': 4}, 'height'),
    ({'color_space': 'hsv'}, 'color_space'),
    ({'interpolation': 'nearestish'}, 'interpolation'),
    ({'std': [0.2, 0.0, 0.2]}, 'std'),
    ({'mean': [0.5, 0.5]}, 'mean'),
    ({'gamma': 2.2}, 'gamma'),
])
def test_bad_spec_values_name_the_key(data, culprit):
    with pytest.raises(ValueError, match=culprit):
        PreprocessSpec.from_dict(data)


@pytest.mark.parametrize('left, right, culprit', [
    (np.zeros((240, 320, 3), np.float32), np.zeros((240, 320, 3), np.uint8), r'left image: expected dtype uint8'),
    (np.zeros((240, 320, 3), np.uint8), np.zeros((240, 320), np.uint8), r'right image: expected shape'),
    (np.zeros((240, 320, 3), np.uint8), np.zeros((240, 322, 3), np.uint8), r'left .* and right .* sizes differ'),
    ([[0]], np.zeros((240, 320, 3), np.uint8), r'left image: expected a numpy array'),
])
def test_bad_images_raise_one_clear_error(left, right, culprit):
    with pytest.raises(ValueError, match=culprit):
        preprocess_stereo(left, right, PreprocessSpec())


def test_image_too_short_for_the_crop():
    with pytest.raises(ValueError, match='rows'):
        preprocess_stereo(*_pair(shape=(2, 320, 3)), PreprocessSpec())
