"""Terrain: exact relief and gentle slopes, the MuJoCo heightfield, the truck riding on it, ground
truth depth over hills, obstacles standing on it and still stopping the truck on a slope.

Needs a headless GL backend for the rendering test (conftest sets MUJOCO_GL=egl).
"""
import dataclasses
import math

import mujoco
import numpy as np
import pytest

from dave_sim.expert import ExpertDriver
from dave_sim.labels import GeomCategory, TerrainClass
from dave_sim.mjcf import GROUND_GEOM, LEFT_CAMERA, RIDE_BODY, world_to_mjcf
from dave_sim.obstacles import ObstacleSizes, draw_obstacle
from dave_sim.scene import ground_grid, obstacle_base_z, obstacle_objects, wheel_layout
from dave_sim.simulator import Simulator
from dave_sim.terrain import FLAT, Terrain, ride_pose
from dave_sim.vehicle import VehicleConfig
from dave_sim.world import Pose2D, World, WorldConfig, generate_world

GROUND_ONLY = np.array([1, 0, 0, 0, 0, 0], np.uint8)  # mj_ray geom groups: GeomCategory.GROUND


def _arena_samples(world, step=0.25):
    half = world.config.half_size_m
    xs, ys = np.meshgrid(np.arange(-half, half + 1e-9, step), np.arange(-half, half + 1e-9, step))
    return xs, ys


def test_relief_is_exact_and_slopes_stay_gentle_over_20_worlds():
    steepest = 0.0
    for seed in range(20):
        world = generate_world(seed)
        xs, ys = _arena_samples(world)
        heights = world.terrain.height(xs, ys)
        assert heights.max() - heights.min() == pytest.approx(world.config.terrain_relief_m, rel=1e-9)
        assert abs(heights.mean()) < 1e-9
        gx, gy = world.terrain.gradient(xs, ys)
        steepest = max(steepest, float(np.hypot(gx, gy).max()))
    assert 0.02 < steepest < 0.15  # hills are there, and never steeper than ~8.5 degrees
    # The analytic gradient is the derivative of the height.
    terrain, eps = generate_world(0).terrain, 1e-5
    gx, gy = terrain.gradient(1.3, -2.7)
    h = terrain.height
    assert gx == pytest.approx((h(1.3 + eps, -2.7) - h(1.3 - eps, -2.7)) / (2 * eps), abs=1e-8)
    assert gy == pytest.approx((h(1.3, -2.7 + eps) - h(1.3, -2.7 - eps)) / (2 * eps), abs=1e-8)


def test_zero_relief_gives_flat_ground_and_a_plane():
    world = generate_world(0, WorldConfig(terrain_relief_m=0.0))
    assert world.terrain == FLAT and world.terrain.is_flat
    model = mujoco.MjModel.from_xml_string(world_to_mjcf(world))
    assert model.geom(GROUND_GEOM).type[0] == mujoco.mjtGeom.mjGEOM_PLANE
    assert model.nhfield == 0


def test_height_grid_matches_the_terrain_at_and_between_nodes():
    world = generate_world(5)
    grid = ground_grid(world)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, grid.size, 50), rng.integers(0, grid.size, 50)
    node_x, node_y = -grid.half_extent_m + j * grid.resolution_m, -grid.half_extent_m + i * grid.resolution_m
    assert np.allclose(grid.heights_at(node_x, node_y), world.terrain.height(node_x, node_y), atol=1e-12)
    xs, ys = rng.uniform(-19.9, 19.9, 500), rng.uniform(-19.9, 19.9, 500)
    assert np.abs(grid.heights_at(xs, ys) - world.terrain.height(xs, ys)).max() < 0.005
    assert all(grid.height_at(x, y) == pytest.approx(v) for x, y, v in zip(xs[:20], ys[:20], grid.heights_at(xs, ys)))
    assert grid.height_at(1e3, 0.0) == pytest.approx(grid.height_at(grid.half_extent_m, 0.0))  # clamped


@pytest.mark.parametrize('yaw', [0.0, 0.7, math.pi / 2, -2.5])
def test_ride_pose_on_a_tilted_plane(yaw):
    plane = Terrain(slope=(0.1, -0.05), offset=0.2)
    height_at = lambda x, y: float(plane.height(x, y))  # noqa: E731
    pose = ride_pose(height_at, 1.0, 2.0, yaw, 0.32, 0.39)
    forward = (math.cos(yaw), math.sin(yaw))
    left = (-math.sin(yaw), math.cos(yaw))
    assert pose.z == pytest.approx(0.2 + 0.1 * 1.0 - 0.05 * 2.0)
    assert pose.pitch == pytest.approx(-math.atan(0.1 * forward[0] - 0.05 * forward[1]))  # uphill: nose up
    assert pose.roll == pytest.approx(math.atan(0.1 * left[0] - 0.05 * left[1]))  # left side higher: > 0


def test_mujoco_heightfield_is_the_terrain():
    world = generate_world(1)
    model = mujoco.MjModel.from_xml_string(world_to_mjcf(world))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    assert model.geom(GROUND_GEOM).type[0] == mujoco.mjtGeom.mjGEOM_HFIELD
    assert model.geom(GROUND_GEOM).group[0] == GeomCategory.GROUND
    grid = ground_grid(world)
    rng = np.random.default_rng(1)
    geom_id = np.zeros(1, np.int32)
    errors = []
    for x, y in rng.uniform(-19.5, 19.5, (200, 2)):
        distance = mujoco.mj_ray(model, data, np.array([x, y, 5.0]), np.array([0.0, 0.0, -1.0]),
                                 GROUND_ONLY, 1, -1, geom_id)
        assert geom_id[0] == model.geom(GROUND_GEOM).id
        errors.append((5.0 - distance) - grid.height_at(x, y))
        assert 5.0 - distance == pytest.approx(float(world.terrain.height(x, y)), abs=0.006)
    # MuJoCo splits each cell into two triangles where the grid interpolates bilinearly: mm apart.
    assert np.abs(errors).max() < 0.003


def test_truck_rides_on_the_ground_under_its_wheels():
    world = generate_world(2)
    vehicle = VehicleConfig()
    wheels = wheel_layout(vehicle)
    sim = Simulator(world, vehicle=vehicle)
    expert = ExpertDriver(world)
    model, data = sim.model, sim.data
    wheel_ids = [model.geom(f'vehicle_wheel_{n}').id for n in ('fl', 'fr', 'rl', 'rr')]
    ride_id = model.body(RIDE_BODY).id
    geom_id = np.zeros(1, np.int32)
    pitches, heights = [], []
    for _ in range(16):
        for _ in range(8):
            command = expert.command(sim.state)
            sim.apply_controls(command.applied_v, command.applied_w)
            sim.step(1 / 15)
        pitches.append(sim.ride.pitch)
        heights.append(sim.ride.z)
        for wheel in wheel_ids:  # each wheel's lowest point is on the heightfield, to a centimetre
            centre = data.geom_xpos[wheel].copy()
            gap = mujoco.mj_ray(model, data, centre, np.array([0.0, 0.0, -1.0]), GROUND_ONLY, 1, ride_id, geom_id)
            assert gap == pytest.approx(wheels.radius, abs=0.012)
        # The body origin (the ground point between the wheels) and the camera ride with it.
        assert data.xpos[ride_id][2] == pytest.approx(sim.ride.z, abs=1e-9)
        camera = data.cam_xpos[model.camera(LEFT_CAMERA).id]
        assert camera[2] - float(world.terrain.height(camera[0], camera[1])) == pytest.approx(0.30, abs=0.04)
    assert max(np.abs(pitches)) > math.radians(0.5)  # the route really went over uneven ground
    assert max(heights) - min(heights) > 0.03
    assert sim.collisions == 0


def test_ground_truth_depth_follows_the_terrain():
    """Ground pixels' depth equals the distance at which the pixel's ray meets the heightfield."""
    world = generate_world(6, WorldConfig(terrain_relief_m=0.4))
    with Simulator(world) as sim:
        frame = sim.render(with_gt=True)
        camera = sim.model.camera(LEFT_CAMERA).id
        origin = sim.data.cam_xpos[camera].copy()
        axes = sim.data.cam_xmat[camera].reshape(3, 3).copy()  # columns: camera x, y, z in the world
        intrinsics = sim.camera
    grid = ground_grid(world)
    v, u = np.mgrid[1:intrinsics.height:3, 1:intrinsics.width:3]
    ground = frame.labels[v, u] == TerrainClass.TRAVERSABLE
    u, v = u[ground], v[ground]
    # MuJoCo cameras look along -z with +y up; a ray with unit forward component has t == depth.
    rays = (axes[:, 0][None] * ((u - intrinsics.cx) / intrinsics.fx)[:, None]
            - axes[:, 1][None] * ((v - intrinsics.cy) / intrinsics.fy)[:, None] - axes[:, 2][None])
    t = np.arange(0.05, 60.0, 0.02)
    expected = np.full(len(u), np.inf)
    above_prev = None
    for k, tk in enumerate(t):
        points = origin[None] + tk * rays
        above = points[:, 2] - grid.heights_at(points[:, 0], points[:, 1])
        if above_prev is not None:
            crossed = (above_prev > 0) & (above <= 0) & np.isinf(expected)
            # Linear interpolation of the crossing between the two samples.
            expected[crossed] = t[k - 1] + 0.02 * above_prev[crossed] / (above_prev[crossed] - above[crossed])
        above_prev = above
    found = np.isfinite(expected)
    assert found.mean() > 0.98
    depth = frame.depth[v, u][found]
    relative = np.abs(depth - expected[found]) / expected[found]
    assert np.percentile(relative, 99) < 0.01
    # And the terrain mattered: a flat plane at the truck's height would be off by more.
    flat = (origin[2] - sim.ride.z) / np.maximum(-rays[found, 2], 1e-9)
    assert np.percentile(np.abs(flat - expected[found]) / expected[found], 90) > 0.02
    assert np.array_equal(frame.labels == TerrainClass.UNKNOWN, np.isinf(frame.depth))


@pytest.mark.parametrize('seed', range(5))
def test_obstacles_stand_on_the_terrain(seed):
    world = generate_world(seed)
    for obstacle, placed in zip(world.obstacles, obstacle_objects(world)):
        angles = np.linspace(0, 2 * math.pi, 24, endpoint=False)
        rim_x = obstacle.x + obstacle.bounding_radius * np.cos(angles)
        rim_y = obstacle.y + obstacle.bounding_radius * np.sin(angles)
        lowest_ground = float(world.terrain.height(np.append(rim_x, obstacle.x), np.append(rim_y, obstacle.y)).min())
        base = obstacle_base_z(world.terrain, obstacle)
        assert base <= lowest_ground + 1e-3  # sunk, never floating over a dip
        assert base > lowest_ground - 0.1
        bottoms = [s.pos[2] - p.half_extents()[2] for s, p in zip(placed.solids, obstacle.solid_parts())]
        assert min(bottoms) <= lowest_ground + 1e-3


@pytest.mark.parametrize('slope', [0.08, -0.08])
def test_a_low_bush_on_a_slope_still_stops_the_truck(slope):
    bush = draw_obstacle('bush', np.random.default_rng(3), ObstacleSizes(radius=(0.35, 0.35), bush_height=(0.3, 0.3)))
    bush = dataclasses.replace(bush, x=2.0, y=0.0)
    world = World(seed=0, config=WorldConfig(n_obstacles=0), obstacles=(bush,), start=Pose2D(0.0, 0.0, 0.0),
                  goal=(8.0, 0.0), ground_rgb=((0.3, 0.35, 0.2), (0.4, 0.35, 0.27)), sky_rgb=(0.5, 0.7, 0.9),
                  light_dir=(0.3, 0.2, -0.9), terrain=Terrain(slope=(slope, 0.02)))
    vehicle = VehicleConfig()
    sim = Simulator(world, vehicle=vehicle)
    sim.apply_controls(1.0, 0.0)
    sim.step(5.0)
    assert sim.collisions == 1
    assert abs(sim.state.v) < 0.05
    assert sim.state.x + vehicle.length_m / 2 < 2.0  # stopped before the bush's centre
    yaw = sim.state.yaw  # the push may turn the truck a little
    assert sim.ride.pitch == pytest.approx(-math.atan(slope * math.cos(yaw) + 0.02 * math.sin(yaw)), abs=1e-3)
