"""Stereo geometry labels (dave_core.stereo_geometry) on synthetic scenes with a known answer.

Two levels: exact disparity maps built from the geometry (plane fit and labelling rules alone),
and a rendered rectified pair of a textured ground plane, a box and a textureless sky, which
goes through SGBM like a camera image. The camera is the simulator's (dave_sim.camera), so the
labeller's pitch convention is checked against the one the simulator mounts.
"""
import math
from dataclasses import replace

import numpy as np
import pytest

from dave_core.stereo_geometry import (IGNORE, OBSTACLE, SKY, TRAVERSABLE, GroundPlane, StereoCalibration,
                                       StereoGeometryError, StereoLabelConfig, fit_ground_plane, label_pair,
                                       labels_from_geometry, nominal_up, points_from_disparity,
                                       ray_elevation)
from dave_sim.camera import StereoCameraConfig

CAMERA = StereoCameraConfig()  # 320x240, fx 174.6, baseline 0.12 m, 0.30 m high, pitched 10 deg down
CALIBRATION = StereoCalibration(CAMERA.width, CAMERA.height, CAMERA.fx, CAMERA.fy, CAMERA.cx, CAMERA.cy,
                                CAMERA.baseline_m)
BOX = {'x': 2.5, 'y': (-0.5, 0.5), 'height': 0.4}  # body frame: 2.5 m ahead, 1 m wide, 0.4 m tall
SKY_GREY = 200


def _rays(side: str) -> tuple[np.ndarray, np.ndarray]:
    """Ray directions (H, W, 3) in the body frame and the camera centre of one eye."""
    rotation, centre = CAMERA.optical_from_body(side)
    u, v = np.meshgrid(np.arange(CAMERA.width), np.arange(CAMERA.height))
    optical = np.stack([(u - CAMERA.cx) / CAMERA.fx, (v - CAMERA.cy) / CAMERA.fy, np.ones(u.shape)], -1)
    return optical @ rotation, centre  # rotation.T @ d for each pixel


def _scene(side: str, box: dict = BOX) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(grey image, true class, true depth along the optical axis, true height) seen by one eye.

    Ground z = 0 and the front face of the box carry a random 4 cm checker texture fixed in the
    world (so both eyes see the same surface), unless box['grey'] paints the face one flat grey;
    the sky is one grey level (nothing to match).
    """
    rays, centre = _rays(side)
    with np.errstate(divide='ignore', invalid='ignore'):
        s_ground = np.where(rays[..., 2] < 0, -centre[2] / rays[..., 2], np.inf)
        s_box = np.where(rays[..., 0] > 0, (box['x'] - centre[0]) / rays[..., 0], np.inf)
    hit_box = centre[None, None, :] + s_box[..., None] * rays
    on_box = (np.isfinite(s_box) & (hit_box[..., 1] >= box['y'][0]) & (hit_box[..., 1] <= box['y'][1])
              & (hit_box[..., 2] >= 0) & (hit_box[..., 2] <= box['height']) & (s_box < s_ground))
    s = np.where(on_box, s_box, s_ground)
    hit = centre[None, None, :] + np.where(np.isfinite(s), s, 0.0)[..., None] * rays
    texture = np.random.default_rng(7).integers(30, 170, size=(512, 512))
    cell_a = np.where(on_box, hit[..., 1], hit[..., 0])  # ground: x, y; box face: y, z
    cell_b = np.where(on_box, hit[..., 2], hit[..., 1])
    grey = texture[np.floor(cell_a / 0.04).astype(int) % 512, np.floor(cell_b / 0.04).astype(int) % 512]
    grey = np.where(on_box, box.get('grey', grey // 2 + 80), grey)  # lighter than the ground: an outline
    sky = ~np.isfinite(s)
    grey = np.where(sky, SKY_GREY, grey).astype(np.uint8)
    truth = np.where(sky, SKY, np.where(on_box, OBSTACLE, TRAVERSABLE)).astype(np.uint8)
    rotation, _ = CAMERA.optical_from_body(side)
    depth = np.where(sky, np.inf, ((hit - centre) @ rotation.T)[..., 2])
    return grey, truth, depth, np.where(sky, np.nan, hit[..., 2])


@pytest.fixture(scope='module')
def pair():
    left, truth, depth, _ = _scene('left')
    right = _scene('right')[0]
    return left, right, truth, depth


def _exact_disparity(depth: np.ndarray) -> np.ndarray:
    with np.errstate(divide='ignore'):
        disparity = (CALIBRATION.focal_baseline / depth).astype(np.float32)
    disparity[~np.isfinite(depth)] = np.nan
    return disparity


# ---------------------------------------------------------------- calibration

def test_calibration_comes_from_the_camera_info_projections():
    fx = CAMERA.fx
    left_p = [fx, 0, CAMERA.cx, 0, 0, fx, CAMERA.cy, 0, 0, 0, 1, 0]
    right_p = [fx, 0, CAMERA.cx, -fx * 0.12, 0, fx, CAMERA.cy, 0, 0, 0, 1, 0]
    calibration = StereoCalibration.from_projections(320, 240, left_p, right_p)
    assert calibration.baseline_m == pytest.approx(0.12) and calibration.fx == pytest.approx(fx)
    assert calibration.focal_baseline == pytest.approx(fx * 0.12)
    with pytest.raises(StereoGeometryError, match=r'P\[3\] is 0; expected -fx \* baseline < 0'):
        StereoCalibration.from_projections(320, 240, left_p, left_p)
    with pytest.raises(StereoGeometryError, match='not rectified'):
        StereoCalibration.from_projections(320, 240, left_p, [fx + 5] + right_p[1:])
    with pytest.raises(StereoGeometryError, match='12 values'):
        StereoCalibration.from_projections(320, 240, left_p[:9], right_p)


def test_config_rejects_values_opencv_or_the_rules_cannot_use():
    assert StereoLabelConfig.from_dict(StereoLabelConfig().to_dict()) == StereoLabelConfig()
    with pytest.raises(StereoGeometryError, match='multiple of 16'):
        StereoLabelConfig(num_disparities=40)
    with pytest.raises(StereoGeometryError, match='block_size must be odd'):
        StereoLabelConfig(block_size=4)
    with pytest.raises(StereoGeometryError, match='obstacle_min_height_m must be >='):
        StereoLabelConfig(ground_max_height_m=0.2, obstacle_min_height_m=0.1)
    with pytest.raises(StereoGeometryError, match='max_range_m'):
        StereoLabelConfig(max_range_m=float('nan'))


# ---------------------------------------------------------------- plane fit and rules, exact disparity

def test_plane_fit_recovers_the_mounting_and_ignores_the_box(pair):
    _, _, _, depth = pair
    points = points_from_disparity(_exact_disparity(depth), CALIBRATION)
    plane = fit_ground_plane(points, StereoLabelConfig())
    assert plane is not None
    assert plane.offset == pytest.approx(CAMERA.mount_height_m, abs=0.005)  # camera height
    assert plane.tilt_deg(nominal_up(CAMERA.pitch_deg)) < 0.3


def test_rules_label_ground_box_and_abstain_beyond_range(pair):
    _, _, truth, depth = pair
    config = StereoLabelConfig(cleanup_px=0, margin_px=0, feet_range_m=0.0)
    disparity = _exact_disparity(depth)
    points = points_from_disparity(disparity, CALIBRATION)
    plane = fit_ground_plane(points, config)
    no_texture = np.zeros(truth.shape, bool)
    labels = labels_from_geometry(points, plane, CALIBRATION, no_texture, config)
    near = depth <= config.max_range_m
    ground = (truth == TRAVERSABLE) & near
    assert np.all(labels[ground] == TRAVERSABLE)
    # The box stands 0.4 m: its face above 15 cm is an obstacle, its foot (< 8 cm) is ground, and
    # the band between the thresholds is left unlabelled (ambiguous). 1 cm covers the plane fit.
    height = _scene('left')[3]
    box = truth == OBSTACLE
    assert np.all(labels[box & (height > config.obstacle_min_height_m + 0.01)] == OBSTACLE)
    assert np.all(labels[box & (height < config.ground_max_height_m - 0.01)] == TRAVERSABLE)
    assert np.all(labels[box & (height > config.ground_max_height_m + 0.01)
                         & (height < config.obstacle_min_height_m - 0.01)] == IGNORE)
    # With the foot rule, the whole upright face is an obstacle and the ground before it is not.
    feet = labels_from_geometry(points, plane, CALIBRATION, np.zeros(truth.shape, bool),
                                replace(config, feet_range_m=0.1))
    assert np.all(feet[box] == OBSTACLE)
    assert np.all(feet[ground & (depth < BOX['x'] - 0.3)] == TRAVERSABLE)
    assert np.all(labels[depth > config.max_range_m] == IGNORE)  # beyond range: the network's job
    # A pixel without a disparity is never a class, and no plane means no labels at all.
    disparity[100:110, 100:110] = np.nan
    holes = labels_from_geometry(points_from_disparity(disparity, CALIBRATION), plane, CALIBRATION,
                                 no_texture, config)
    assert np.all(holes[100:110, 100:110] == IGNORE)
    assert np.all(labels_from_geometry(points, None, CALIBRATION, no_texture, config) == IGNORE)


def test_textureless_region_above_the_horizon_reaching_the_top_is_sky(pair):
    _, _, truth, depth = pair
    config = StereoLabelConfig(cleanup_px=0, margin_px=0)
    points = points_from_disparity(_exact_disparity(depth), CALIBRATION)
    plane = fit_ground_plane(points, config)
    textureless = truth == SKY
    labels = labels_from_geometry(points, plane, CALIBRATION, textureless, config)
    # Sky from sky_margin_deg above the plane's horizon up; the band below it is left unlabelled.
    high = ray_elevation(CALIBRATION, plane) > math.radians(config.sky_margin_deg)
    assert np.all(labels[(truth == SKY) & high] == SKY)
    assert np.all(labels[(truth == SKY) & ~high] == IGNORE)
    assert not np.any(labels[truth != SKY] == SKY)
    # The same textureless patch in the lower half (a shadow on the ground) is not sky.
    shadow = np.zeros_like(textureless)
    shadow[200:230, 100:200] = True
    labels = labels_from_geometry(points, plane, CALIBRATION, shadow, config)
    assert not np.any(labels == SKY)


def test_prior_refuses_a_wall_as_ground():
    # A fronto-parallel wall 2 m ahead fills the view: a plane, but not one the camera stands on.
    depth = np.full((CAMERA.height, CAMERA.width), 2.0)
    points = points_from_disparity(_exact_disparity(depth), CALIBRATION)
    assert fit_ground_plane(points, StereoLabelConfig()) is None
    # A tilted ground (vehicle rolled 8 deg on a slope) is still ground: inside max_tilt_deg.
    up = nominal_up(CAMERA.pitch_deg)
    forward = np.cross(np.array([1.0, 0.0, 0.0]), up)  # level, ahead of the camera
    roll = math.radians(8)
    normal = math.cos(roll) * up + math.sin(roll) * np.array([1.0, 0.0, 0.0])
    side = np.cross(forward, normal)
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-2, 2, (3000, 1)), rng.uniform(0.5, 4.5, (3000, 1))
    ground = -0.3 * normal + a * side + b * forward  # 0.3 m below the camera along the normal
    plane = fit_ground_plane(ground.reshape(-1, 1, 3).astype(np.float32), StereoLabelConfig())
    assert plane is not None and plane.offset == pytest.approx(0.3, abs=0.01)
    assert plane.tilt_deg(up) == pytest.approx(8.0, abs=0.2)


# ---------------------------------------------------------------- the whole labeller on a rendered pair

def test_sgbm_labels_of_a_rendered_pair_match_the_scene(pair):
    left, right, truth, depth = pair
    result = label_pair(left, right, CALIBRATION)
    labels = result.labels
    assert result.plane is not None and result.plane.offset == pytest.approx(0.30, abs=0.03)
    valid = np.isfinite(result.disparity) & np.isfinite(depth)
    assert np.median(np.abs(result.disparity[valid] - CALIBRATION.focal_baseline / depth[valid])) < 0.5
    config = StereoLabelConfig()
    near_ground = (truth == TRAVERSABLE) & (depth < 5.0)
    assert np.mean(labels[near_ground] == TRAVERSABLE) > 0.8
    assert np.mean(labels[near_ground] == OBSTACLE) < 0.01
    box_face = (truth == OBSTACLE)
    assert np.mean(labels[box_face] == OBSTACLE) > 0.5
    assert np.mean(labels[box_face] == TRAVERSABLE) < 0.3  # only the foot of the box
    assert np.mean(labels[truth == SKY] == SKY) > 0.5 and np.mean(labels[truth == SKY] <= OBSTACLE) < 0.01
    # Beyond range (true depth; ~3 px of disparity at 7 m, so allow 0.4 px of error) nothing is
    # ground, and only a few pixels hugging the box outline take its depth (SGBM fattening).
    beyond = depth > config.max_range_m * 1.15
    assert not np.any(labels[beyond] == TRAVERSABLE)
    assert np.mean(labels[beyond] == OBSTACLE) < 0.002
    # Labels are a function of the pair: the same input gives the same labels (caches rely on it).
    np.testing.assert_array_equal(label_pair(left, right, CALIBRATION).labels, labels)


def test_a_flat_wall_against_the_sky_is_an_obstacle_not_sky():
    # A flat grey wall 2 m ahead, 1 m tall (above the camera): nothing to match inside it, and
    # its top outline is horizontal (no d/dx) - that outline must still end the sky.
    wall = {'x': 2.2, 'y': (-0.6, 0.6), 'height': 1.0, 'grey': 90}
    left, truth, depth, _ = _scene('left', wall)
    result = label_pair(left, _scene('right', wall)[0], CALIBRATION)
    above = (truth == OBSTACLE) & (ray_elevation(CALIBRATION, result.plane) > 0)
    assert above.sum() > 2000
    assert not np.any(result.labels[above] == SKY)
    assert np.mean(result.labels[above] == OBSTACLE) > 0.5
    assert np.mean(result.labels[truth == SKY] == SKY) > 0.2  # SGBM smears the wall into the sky


def test_pair_errors_name_the_problem(pair):
    left, right, _, _ = pair
    with pytest.raises(StereoGeometryError, match='left image is 320x240 but right image is 160x240'):
        label_pair(left, right[:, :160], CALIBRATION)
    with pytest.raises(StereoGeometryError, match='camera_info says 160x120'):
        label_pair(left, right, replace(CALIBRATION, width=160, height=120))
    with pytest.raises(StereoGeometryError, match='uint8'):
        label_pair(left.astype(np.float32), right, CALIBRATION)


def test_ground_plane_height_is_signed():
    plane = GroundPlane((0.0, -1.0, 0.0), 0.3, 100)  # level camera 0.3 m up: y points down
    points = np.array([[0.0, 0.3, 2.0], [0.0, 0.0, 2.0], [0.0, 0.4, 2.0]], np.float32)
    np.testing.assert_allclose(plane.height(points), [0.0, 0.3, -0.1], atol=1e-6)
