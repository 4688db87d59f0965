"""Stereo augmentation keeps labels consistent: a flip swaps the cameras and negates the label, a view
rotation or shift corrects it back towards the path (REP-103 signs), appearance changes leave it alone."""
from dataclasses import replace

import numpy as np
import pytest

import cv2

from dave_models.augment import (AugmentConfig, ViewGeometry, adjust_photometric, augment, augment_pair,
                                 flip_pair, rotate_pair, rotate_view_label, shadow_masks, shift_image,
                                 shift_pair, shift_view_label, yaw_homography)

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
    config = AugmentConfig(flip_prob=0.0, brightness=0.2, contrast=0.2, rotate_prob=0.0, shadow_prob=0.0, blur_prob=0.0)
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
    config = AugmentConfig(flip_prob=0.5, brightness=0.0, contrast=0.0, shadow_prob=0.0, blur_prob=0.0)
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


# --- view rotation, shadows, blur ----------------------------------------------------------

def _sim_camera_geometry():
    """Full-resolution geometry of the simulator's camera, and the camera itself."""
    from dave_sim.camera import StereoCameraConfig
    from dataclasses import asdict
    camera = StereoCameraConfig()
    return ViewGeometry.for_crop(asdict(camera), 0.0, 0.0, camera.width, camera.height), camera


def test_for_crop_matches_the_camera_and_the_preprocessing_crop():
    from dave_core.preprocess import PreprocessSpec, crop_resize
    geometry, camera = _sim_camera_geometry()
    assert (geometry.fx, geometry.cx, geometry.cy) == pytest.approx((camera.fx, camera.cx, camera.cy))
    spec = PreprocessSpec()
    from dataclasses import asdict
    small = ViewGeometry.for_crop(asdict(camera), spec.crop_top, spec.crop_bottom, spec.width, spec.height)
    # A bright block at a known full-size pixel lands where the crop geometry says.
    image = np.zeros((camera.height, camera.width, 3), np.uint8)
    u, v = 200, 180
    image[v - 8:v + 8, u - 8:u + 8] = 255
    out = crop_resize(image, spec).astype(float)[..., 0]
    rows, cols = np.indices(out.shape)
    centroid = (np.sum(cols * out) / out.sum(), np.sum(rows * out) / out.sum())
    # Pixel u - 0.5 .. u + 0.5 -> centre of the block is at u - 0.5 in full-size coordinates.
    ray = np.linalg.inv(geometry.k) @ [u - 0.5, v - 0.5, 1.0]
    expected = small.k @ ray
    assert centroid == pytest.approx((expected[0], expected[1]), abs=0.1)


@pytest.mark.parametrize('yaw_deg', [-6.0, -2.0, 3.0, 6.0])
def test_yaw_homography_matches_projecting_a_yawed_camera(yaw_deg):
    """H maps where a point was to where the simulator's camera sees it after the body yaws."""
    geometry, camera = _sim_camera_geometry()
    r, t = camera.optical_from_body('left')
    yaw = np.radians(yaw_deg)
    c, s = np.cos(yaw), np.sin(yaw)
    # Body turned by yaw about the camera centre: point p (old body frame) -> Rz(yaw)^T (p - t).
    rz_t = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])
    points = np.array([[3.0, 0.5, 0.0], [2.0, -1.0, 0.3], [6.0, 1.5, 0.0], [1.2, 0.0, 0.0]])
    before = camera.project((r @ (points - t).T).T)
    after = camera.project((r @ rz_t @ (points - t).T).T)
    h = yaw_homography(geometry, yaw)
    mapped = (h @ np.c_[before, np.ones(len(before))].T).T
    np.testing.assert_allclose(mapped[:, :2] / mapped[:, 2:], after, atol=1e-6)


def _bar_pair(width=96, height=48, x=48):
    left = np.full((height, width, 3), 40, np.uint8)
    left[:, x - 1:x + 2] = 220
    right = np.full((height, width, 3), 40, np.uint8)
    right[:, x - 5:x - 2] = 220
    return left, right


def _bar_centre(image, row):
    line = image[row, :, 0].astype(float) - 40
    return float(np.sum(np.arange(len(line)) * line) / line.sum())


def test_rotation_sign_follows_rep103():
    """Camera turned right: the scene moves left in the image and the label turns left (+)."""
    geometry = ViewGeometry(fx=60.0, fy=60.0, cx=47.5, cy=23.5, pitch_deg=0.0, height_m=0.3, baseline_m=0.12)
    left, right = _bar_pair()
    yaw = np.radians(-5.0)  # vehicle yawed right of the expert's heading
    out_l, out_r, label = rotate_pair(left, right, 0.2, yaw, geometry, AugmentConfig(return_distance_m=3.5))
    shift = _bar_centre(out_l, 23) - _bar_centre(left, 23)
    # Pure yaw, no pitch: the centre column moves by fx tan(yaw) exactly.
    assert shift == pytest.approx(60.0 * np.tan(yaw), abs=0.3) and shift < 0
    assert _bar_centre(out_r, 23) - _bar_centre(right, 23) == pytest.approx(shift, abs=0.5)
    assert label == pytest.approx(0.2 + 2 * np.sin(np.radians(5.0)) / 3.5) and label > 0.2
    # The mirror case steers right by the same amount.
    assert rotate_pair(left, right, 0.2, -yaw, geometry)[2] == pytest.approx(0.2 - 2 * np.sin(np.radians(5.0)) / 3.5)


def test_rotation_label_is_clipped_to_the_fan():
    assert rotate_view_label(1.45, np.radians(-10), 1.0, 1.5) == 1.5
    assert rotate_view_label(0.0, 0.0, 3.5, 1.5) == 0.0


def test_rotation_then_back_restores_the_image_centre():
    from dave_core.preprocess import PreprocessSpec
    from dataclasses import asdict
    from dave_sim.camera import StereoCameraConfig
    spec = PreprocessSpec()
    geometry = ViewGeometry.for_crop(asdict(StereoCameraConfig()), spec.crop_top, spec.crop_bottom,
                                     spec.width, spec.height)
    rng = np.random.default_rng(0)
    # Smooth texture so bilinear resampling twice loses little.
    coarse = rng.integers(0, 255, (9, 26, 3), dtype=np.uint8)
    left = cv2.resize(coarse, (spec.width, spec.height), interpolation=cv2.INTER_CUBIC)
    right = np.roll(left, -4, axis=1)
    yaw = np.radians(4.0)
    a = rotate_pair(left, right, 0.1, yaw, geometry)
    b = rotate_pair(a[0], a[1], a[2], -yaw, geometry)
    centre = (slice(10, 56), slice(30, 170))  # away from the replicated borders
    error = np.abs(b[0][centre].astype(float) - left[centre]).mean()
    moved = np.abs(a[0][centre].astype(float) - left[centre]).mean()
    assert error < 0.25 * moved and error < 6.0, (error, moved)
    assert b[2] == pytest.approx(0.1, abs=1e-6)  # labels: + then - the same correction
    assert a[0].shape == left.shape and a[0].dtype == np.uint8


def test_ground_disparity_matches_the_camera_projection():
    geometry, camera = _sim_camera_geometry()
    rl, tl = camera.optical_from_body('left')
    rr, tr = camera.optical_from_body('right')
    ground = np.array([[1.0, 0.2, 0.0], [2.5, -0.7, 0.0], [5.0, 1.0, 0.0]])
    ul = camera.project((rl @ (ground - tl).T).T)
    ur = camera.project((rr @ (ground - tr).T).T)
    np.testing.assert_allclose(geometry.ground_disparity(ul[:, 1]), ul[:, 0] - ur[:, 0], rtol=1e-9)
    horizon = camera.cy - camera.fy * np.tan(np.radians(camera.pitch_deg))
    assert geometry.ground_disparity(horizon) == pytest.approx(0.0, abs=1e-9)


def test_shadow_mask_in_the_right_view_is_shifted_by_the_ground_disparity():
    geometry, camera = _sim_camera_geometry()
    corners = np.array([[100, 239], [180, 239], [170, 150], [110, 150]], float)
    mask_l, mask_r = shadow_masks((camera.height, camera.width), corners, geometry)
    for v in (160, 200, 235):
        d = geometry.ground_disparity(v)
        cols_l = np.flatnonzero(mask_l[v] > 0.5)
        cols_r = np.flatnonzero(mask_r[v] > 0.5)
        assert cols_r.mean() == pytest.approx(cols_l.mean() - d, abs=1.0)
    assert mask_r.sum() == pytest.approx(mask_l.sum(), rel=0.02)
    same_l, same_r = shadow_masks((48, 64), corners / 5, None)
    np.testing.assert_array_equal(same_l, same_r)


@pytest.mark.parametrize('config', [
    AugmentConfig(flip_prob=0, brightness=0, contrast=0, rotate_prob=0, blur_prob=0, shadow_prob=1),
    AugmentConfig(flip_prob=0, brightness=0, contrast=0, rotate_prob=0, shadow_prob=0, blur_prob=1),
    AugmentConfig(flip_prob=0, brightness=0.3, contrast=0.3, rotate_prob=0, shadow_prob=0, blur_prob=0),
], ids=['shadow', 'blur', 'brightness-contrast'])
def test_appearance_augmentations_keep_the_label_and_hit_both_images_alike(config):
    rng = np.random.default_rng(5)
    image = rng.integers(20, 230, (24, WIDTH, 3), dtype=np.uint8)
    changed = 0
    for _ in range(10):
        out_l, out_r, label = augment_pair(image, image.copy(), -0.37, rng, config)
        assert label == -0.37
        assert out_l.shape == image.shape and out_l.dtype == np.uint8
        np.testing.assert_array_equal(out_l, out_r)  # same draw for both (no geometry: no disparity)
        changed += not np.array_equal(out_l, image)
    assert changed == 10


def test_full_augmentation_keeps_shapes_and_is_deterministic():
    geometry = ViewGeometry(fx=45.0, fy=45.0, cx=31.5, cy=8.0, pitch_deg=10.0, height_m=0.3, baseline_m=0.12)
    config = AugmentConfig(flip_prob=0.5, shadow_prob=1, blur_prob=1, rotate_prob=1)
    left, right, curvature = _scene(30)
    a = augment_pair(left, right, curvature, np.random.default_rng(11), config, geometry)
    b = augment_pair(left, right, curvature, np.random.default_rng(11), config, geometry)
    c = augment_pair(left, right, curvature, np.random.default_rng(12), config, geometry)
    for x, y in zip(a[:2], b[:2]):
        np.testing.assert_array_equal(x, y)
    assert a[2] == b[2] and a[2] != c[2]  # the rotation always moves a continuous label
    assert a[0].shape == left.shape and a[0].dtype == np.uint8 and a[1].shape == right.shape
    assert abs(abs(a[2]) - abs(curvature)) <= 2 * np.sin(np.radians(config.rotate_max_deg)) / 3.5 + 1e-9


def test_rotation_is_skipped_without_geometry():
    config = AugmentConfig(flip_prob=0, brightness=0, contrast=0, shadow_prob=0, blur_prob=0, rotate_prob=1)
    left, right, curvature = _scene(30)
    out = augment_pair(left, right, curvature, np.random.default_rng(0), config, None)
    np.testing.assert_array_equal(out[0], left)
    assert out[2] == curvature


def test_bad_augment_values_name_the_field():
    for name, value in (('shadow_prob', -0.1), ('blur_max_px', 11.0), ('rotate_max_deg', 45.0),
                        ('return_distance_m', 0.0)):
        with pytest.raises(ValueError, match=name):
            AugmentConfig(**{name: value})


# --- view shift ---------------------------------------------------------------------------

@pytest.mark.parametrize('curvature', [0.0, 0.3, -0.75, 1.5, -1.5])
def test_shift_label_is_the_expert_arc_without_a_shift_and_steers_back_with_one(curvature):
    assert shift_view_label(curvature, 0.0, 3.5, 1.5) == pytest.approx(curvature, abs=1e-9)
    left_of_path = shift_view_label(curvature, 0.1, 3.5, 1.5)
    right_of_path = shift_view_label(curvature, -0.1, 3.5, 1.5)
    if abs(curvature) < 1.5:
        assert left_of_path < curvature < right_of_path  # steer back towards the path
    assert shift_view_label(-curvature, 0.1, 3.5, 1.5) == pytest.approx(-right_of_path)  # mirror
    # Small shifts on a straight path: pure pursuit's -2 s / L^2.
    assert shift_view_label(0.0, 0.05, 3.5, 1.5) == pytest.approx(-2 * 0.05 / (3.5 ** 2 + 0.05 ** 2))
    assert -1.5 <= shift_view_label(curvature, 0.5, 0.5, 1.5) <= 1.5


def test_shift_image_moves_each_pixel_by_its_disparity_and_nearer_wins():
    image = np.full((8, 64, 3), 50, np.uint8)
    image[:, 20:24] = 200  # a near block (disparity 10) in front of far background (disparity 2)
    disparity = np.full((8, 64), 2.0, np.float32)
    disparity[:, 20:24] = 10.0
    out = shift_image(image, disparity, 1.0)
    bright = np.flatnonzero(out[4, :, 0] > 150)
    assert bright.min() == 30 and bright.max() == 33  # moved by its own 10 px, over the background
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out[:, 40:] == 50).all()  # background moved by 2 and is still background
    assert (out[:, :2] > 0).all()  # the uncovered left border is inpainted, not black


@pytest.fixture(scope='module')
def shifted_renders():
    """World 3's start view at 160x120, and the same from 0.1 m to the left and to the right."""
    import math
    from dataclasses import asdict, replace
    from dave_sim.camera import StereoCameraConfig
    from dave_sim.simulator import Simulator
    from dave_sim.world import Pose2D, generate_world

    camera = StereoCameraConfig()
    world = generate_world(3)
    start = world.start
    views = {}
    for shift in (0.0, 0.1, -0.1):
        pose = Pose2D(start.x - shift * math.sin(start.yaw), start.y + shift * math.cos(start.yaw), start.yaw)
        with Simulator(replace(world, start=pose), camera) as sim:
            frame = sim.render()
        views[shift] = tuple(cv2.resize(im, (160, 120), interpolation=cv2.INTER_AREA)
                             for im in (frame.left, frame.right))
    return views, ViewGeometry.for_crop(asdict(camera), 0.0, 0.0, 160, 120)


@pytest.mark.parametrize('shift', [0.1, -0.1])
def test_shifted_pair_matches_a_render_from_the_shifted_pose(shifted_renders, shift):
    """The stereo-depth shift reproduces what the simulator's cameras see from beside the pose
    (measured: 3.5-4x closer to it than the unshifted view)."""
    views, geometry = shifted_renders
    left, right = views[0.0]
    out_l, out_r, label = shift_pair(left, right, 0.2, shift, geometry)
    for synthetic, original, truth in zip((out_l, out_r), (left, right), views[shift]):
        before = np.abs(original.astype(float) - truth).mean()
        after = np.abs(synthetic.astype(float) - truth).mean()
        assert after < 0.4 * before, (after, before)
    assert label == pytest.approx(shift_view_label(0.2, shift, 3.5, 1.5))


def test_augment_shifts_with_its_probability_and_only_with_geometry():
    geometry = ViewGeometry(fx=45.0, fy=45.0, cx=31.5, cy=8.0, pitch_deg=10.0, height_m=0.3, baseline_m=0.12)
    config = AugmentConfig(flip_prob=0, brightness=0, contrast=0, shadow_prob=0, blur_prob=0, rotate_prob=0,
                           shift_prob=1.0, shift_max_m=0.1)
    left, right, curvature = _scene(30)
    out = augment(left, right, curvature, np.random.default_rng(3), config, geometry)
    assert 0 < abs(out.shift_m) <= 0.1
    assert out.curvature == pytest.approx(shift_view_label(curvature, out.shift_m, 3.5, 1.5))
    skipped = augment(left, right, curvature, np.random.default_rng(3), config, None)
    assert skipped.shift_m == 0.0 and skipped.curvature == curvature
    # Shifts off: the four draws the other steps made before shifts existed (flip, rotation,
    # shadow, blur decisions; no photometric range), not one more, so old recipes reproduce.
    used, expected = np.random.default_rng(4), np.random.default_rng(4)
    augment(left, right, curvature, used, replace(config, shift_prob=0.0), geometry)
    expected.random(4)
    assert used.random() == expected.random()
    with pytest.raises(ValueError, match='shift_max_m'):
        AugmentConfig(shift_max_m=1.0)
