"""Stereo augmentation: a flip swaps the cameras and negates the label; jitter leaves labels alone."""
import numpy as np
import pytest

from dave_models.augment import AugmentConfig, adjust_photometric, augment_pair, flip_pair

WIDTH = 64
DISPARITY = 6


def _scene(bar_x: int):
    """A stereo pair of a bright vertical bar; the right camera sees it DISPARITY px further left.

    The label depends on where the bar is relative to the rig's centre line (the midpoint of
    the two views, as a real vehicle's steering would): curvature = offset / WIDTH, + = left.
    """
    left = np.zeros((24, WIDTH, 3), np.uint8)
    right = np.zeros((24, WIDTH, 3), np.uint8)
    left[:, bar_x:bar_x + 3] = 200
    right[:, bar_x - DISPARITY:bar_x - DISPARITY + 3] = 200
    centre = (bar_x + (bar_x - DISPARITY)) / 2 + 1  # bar is 3 px wide: its centre is x + 1
    return left, right, (centre - (WIDTH - 1) / 2) / WIDTH


def _bar_x(image):
    return int(np.flatnonzero(image[0, :, 0])[0])


def test_flip_mirrors_swaps_and_negates():
    left, right, curvature = _scene(40)
    fl, fr, fc = flip_pair(left, right, curvature)
    np.testing.assert_array_equal(fl, right[:, ::-1])
    np.testing.assert_array_equal(fr, left[:, ::-1])
    assert fc == -curvature
    back = flip_pair(fl, fr, fc)
    np.testing.assert_array_equal(back[0], left)
    np.testing.assert_array_equal(back[1], right)
    assert back[2] == curvature


@pytest.mark.parametrize('bar_x', [12, 25, 40, 50])
def test_flipped_pair_is_a_consistent_scene(bar_x):
    """The flipped pair must look like a real scene whose label the same rule gives."""
    fl, fr, fc = flip_pair(*_scene(bar_x))
    mirrored_x = _bar_x(fl)
    # Same geometry as an unflipped scene: the right view is shifted left by the same disparity.
    assert _bar_x(fr) == mirrored_x - DISPARITY
    expected_left, expected_right, expected_curvature = _scene(mirrored_x)
    np.testing.assert_array_equal(fl, expected_left)
    np.testing.assert_array_equal(fr, expected_right)
    assert fc == pytest.approx(expected_curvature)


def test_flip_without_swap_would_break_the_geometry():
    left, right, _ = _scene(40)
    # Mirroring each camera in place makes the right view sit to the right: negative disparity.
    assert _bar_x(right[:, ::-1]) > _bar_x(left[:, ::-1])


def test_photometric_jitter_is_shared_and_keeps_the_label():
    rng = np.random.default_rng(1)
    left = rng.integers(40, 200, (24, WIDTH, 3), dtype=np.uint8)
    config = AugmentConfig(flip_prob=0.0, brightness=0.2, contrast=0.2)
    out_l, out_r, curvature = augment_pair(left, left.copy(), 0.12, rng, config)
    assert curvature == 0.12
    np.testing.assert_array_equal(out_l, out_r)  # same draw for both cameras
    assert out_l.dtype == np.uint8 and not np.array_equal(out_l, left)


def test_adjust_photometric_formula_and_clipping():
    image = np.array([[[0, 100, 250]]], np.uint8)
    out = adjust_photometric(image, brightness=0.1, contrast=2.0)
    # mean 116.67: (0-116.67)*2+116.67+25.5 < 0 -> 0; (100-..)*2+..=108.8; 250 -> clipped 255
    np.testing.assert_array_equal(out[0, 0], [0, 109, 255])


def test_augment_flips_about_as_often_as_configured_and_labels_follow():
    rng = np.random.default_rng(7)
    left, right, curvature = _scene(40)
    config = AugmentConfig(flip_prob=0.5, brightness=0.0, contrast=0.0)
    flips = 0
    for _ in range(400):
        out_l, out_r, label = augment_pair(left, right, curvature, rng, config)
        if label < 0:
            flips += 1
            np.testing.assert_array_equal(out_l, right[:, ::-1])
        else:
            np.testing.assert_array_equal(out_l, left)
    assert 160 < flips < 240


def test_augment_is_deterministic_given_the_seed():
    left, right, curvature = _scene(30)
    a = augment_pair(left, right, curvature, np.random.default_rng(3))
    b = augment_pair(left, right, curvature, np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[2] == b[2]


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match='flip_prob'):
        AugmentConfig(flip_prob=1.5)
    with pytest.raises(ValueError, match='sizes differ'):
        flip_pair(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8), 0.0)
