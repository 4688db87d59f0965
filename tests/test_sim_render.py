"""MJCF scene and headless stereo rendering: shapes, ground truth, depth, intrinsics, determinism.

Needs a headless GL backend (conftest sets MUJOCO_GL=egl before mujoco is imported).
"""
import math
import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import pytest

from dave_sim.camera import StereoCameraConfig
from dave_sim.labels import GeomCategory, TerrainClass
from dave_sim.mjcf import ACTUATORS, LEFT_CAMERA, RIGHT_CAMERA, far_clip_m, world_to_mjcf
from dave_sim.simulator import Simulator
from dave_sim.world import Obstacle, Pose2D, World, WorldConfig, generate_world

CAMERA = StereoCameraConfig()


def _world_with(*obstacles: Obstacle) -> World:
    """Truck at the origin facing +x, flat open ground, only the given obstacles."""
    return World(seed=0, config=WorldConfig(walls=False, n_obstacles=0), obstacles=obstacles,
                  start=Pose2D(0.0, 0.0, 0.0), goal=(8.0, 0.0), ground_rgb=((0.3, 0.35, 0.2), (0.4, 0.35, 0.27)),
                  sky_rgb=(0.5, 0.7, 0.9), light_dir=(0.3, 0.2, -0.9))


@pytest.fixture(scope='module')
def start_frame():
    # Flat ground: the depth test below checks the ray-plane geometry (test_sim_terrain: hills).
    with Simulator(generate_world(0, WorldConfig(terrain_relief_m=0.0)), CAMERA) as sim:
        yield sim.render(with_gt=True)


def test_mjcf_loads_with_the_scene_contract():
    world = generate_world(1)
    xml = world_to_mjcf(world)
    ET.fromstring(xml)  # well-formed
    model = mujoco.MjModel.from_xml_string(xml)
    n_walls = 4
    n_parts = sum(len(o.solid_parts()) for o in world.obstacles)  # a tree is a trunk and a crown...
    assert model.ngeom == 1 + n_walls + n_parts + 5  # ground, walls, obstacle parts, chassis + 4 wheels
    groups = model.geom_group
    assert np.count_nonzero(groups == GeomCategory.OBSTACLE) == n_walls + n_parts
    assert np.count_nonzero(groups == GeomCategory.GROUND) == 1
    assert [model.actuator(i).name for i in range(model.nu)] == list(ACTUATORS)
    assert model.opt.timestep == pytest.approx(0.005)
    assert model.vis.map.zfar * model.stat.extent == pytest.approx(far_clip_m(world), rel=1e-6)
    for name, lateral in ((LEFT_CAMERA, CAMERA.baseline_m / 2), (RIGHT_CAMERA, -CAMERA.baseline_m / 2)):
        cam = model.camera(name)
        assert cam.fovy[0] == pytest.approx(CAMERA.fovy_deg, abs=1e-6)
        assert np.allclose(cam.pos, [CAMERA.mount_forward_m, lateral, CAMERA.mount_height_m])
    # Collision bits: the chassis meets obstacles, nothing meets the ground.
    ground = model.geom('ground')
    assert ground.contype[0] == 0 and ground.conaffinity[0] == 0
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, 0)
    assert np.allclose(data.qpos, [world.start.x, world.start.y, world.start.yaw])


def test_stereo_frame_shapes_and_types(start_frame):
    f = start_frame
    for image in (f.left, f.right):
        assert image.shape == (CAMERA.height, CAMERA.width, 3) and image.dtype == np.uint8
        assert image.std() > 10  # a real picture, not a cleared buffer
    assert f.labels.shape == (CAMERA.height, CAMERA.width) and f.labels.dtype == np.uint8
    assert f.depth.shape == (CAMERA.height, CAMERA.width) and f.depth.dtype == np.float32
    assert f.stamp_s == 0.0
    assert not np.array_equal(f.left, f.right)  # 12 cm apart: a real stereo pair


def test_ground_truth_classes_from_the_start_pose(start_frame):
    labels = start_frame.labels
    counts = np.bincount(labels.ravel(), minlength=3)
    assert len(counts) == 3  # no ids outside the contract
    for terrain_class in TerrainClass:
        assert counts[terrain_class] > 0.02 * labels.size, terrain_class
    # Sky on top, ground at the bottom for a camera pitched slightly down.
    assert np.all(labels[0] != TerrainClass.TRAVERSABLE)
    assert np.all(labels[-1] == TerrainClass.TRAVERSABLE)
    # Sky pixels are exactly the pixels with no depth.
    assert np.array_equal(labels == TerrainClass.UNKNOWN, np.isinf(start_frame.depth))


def test_ground_depth_matches_plane_geometry(start_frame):
    """Every ground pixel's depth equals the analytic ray-plane distance from the intrinsics."""
    rot, _ = CAMERA.optical_from_body('left')
    v, u = np.mgrid[0:CAMERA.height, 0:CAMERA.width]
    rays = np.stack([(u - CAMERA.cx) / CAMERA.fx, (v - CAMERA.cy) / CAMERA.fy, np.ones(u.shape)], axis=-1)
    down = -(rays @ rot)[..., 2]  # body-frame z of each optical ray with unit optical z, negated
    ground = start_frame.labels == TerrainClass.TRAVERSABLE
    expected = CAMERA.mount_height_m / down[ground]
    relative_error = np.abs(start_frame.depth[ground] - expected) / expected
    assert np.percentile(relative_error, 99) < 1e-3
    assert relative_error.max() < 1e-2
    assert 0.3 < start_frame.depth[ground].min() < 0.4  # bottom image row, ~0.35 m ahead
    obstacle_depth = start_frame.depth[start_frame.labels == TerrainClass.OBSTACLE]
    assert np.all((obstacle_depth > 0.5) & (obstacle_depth < 30.0))


def test_intrinsics_match_what_the_renderer_draws():
    """A vertical cylinder straight ahead of the left lens projects where fx, fy, cx, cy say."""
    camera = StereoCameraConfig(pitch_deg=0.0)
    distance, radius = 3.0, 0.25
    x = camera.mount_forward_m + distance
    y = camera.baseline_m / 2  # in line with the left camera
    with Simulator(_world_with(Obstacle('cylinder', x, y, radius, 2.0, (0.2, 0.6, 0.2, 1.0))), camera) as sim:
        tall = sim.render(with_gt=True).labels
    # Horizontal: on the optical-axis rows the silhouette spans cx +- fx * tan(asin(r / D)).
    half_width = camera.fx * radius / math.sqrt(distance ** 2 - radius ** 2)
    for row in (int(camera.cy), int(camera.cy) + 1):
        cols = np.flatnonzero(tall[row] == TerrainClass.OBSTACLE)
        assert (cols[0] + cols[-1]) / 2 == pytest.approx(camera.cx, abs=0.5)
        assert cols[-1] - cols[0] + 1 == pytest.approx(2 * half_width, abs=1.5)
    # Vertical: a short cylinder spans from its far top edge to its near foot.
    height = 0.15
    with Simulator(_world_with(Obstacle('cylinder', x, y, radius, height, (0.2, 0.6, 0.2, 1.0))), camera) as sim:
        short = sim.render(with_gt=True).labels
    rows = np.flatnonzero(short[:, int(camera.cx)] == TerrainClass.OBSTACLE)
    top = camera.cy + camera.fy * (camera.mount_height_m - height) / (distance + radius)
    bottom = camera.cy + camera.fy * camera.mount_height_m / (distance - radius)
    assert rows[0] == pytest.approx(top, abs=1.0)
    assert rows[-1] == pytest.approx(bottom, abs=1.0)
    assert camera.fovy_deg == pytest.approx(math.degrees(2 * math.atan(camera.height / 2 / camera.fy)))


def test_right_image_is_the_left_seen_from_12_cm_to_the_right():
    """Disparity of a fronto-parallel feature equals fx * baseline / depth."""
    camera = StereoCameraConfig(pitch_deg=0.0)
    distance = 2.0
    box = Obstacle('box', camera.mount_forward_m + distance + 0.2, 0.0, 0.2, 1.0, (0.9, 0.2, 0.1, 1.0))
    with Simulator(_world_with(box), camera) as sim:
        frame = sim.render()
    row = int(camera.cy)

    def red_columns(image):
        pixels = image[row].astype(int)
        red = pixels[:, 0] > 2 * pixels[:, 1] + 20
        cols = np.flatnonzero(red)
        return (cols[0] + cols[-1]) / 2

    disparity = red_columns(frame.left) - red_columns(frame.right)
    assert disparity == pytest.approx(camera.fx * camera.baseline_m / distance, abs=1.0)


def test_same_commands_give_identical_images():
    world = generate_world(5)
    frames = []
    for _ in range(2):
        with Simulator(world, CAMERA) as sim:
            shots = []
            for v, w in ((1.0, 0.0), (0.8, 0.6), (0.5, -0.8)):
                sim.apply_controls(v, w)
                sim.step(0.5)
                shots.append(sim.render(with_gt=True))
            frames.append(shots)
    for a, b in zip(*frames):
        assert a.stamp_s == b.stamp_s
        for name in ('left', 'right', 'labels', 'depth'):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
    # And the images did change along the way (the test would otherwise prove nothing).
    assert not np.array_equal(frames[0][0].left, frames[0][-1].left)
