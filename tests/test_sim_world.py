"""World generator: determinism, the free-route guarantee, spacing rules and YAML config errors."""
import dataclasses
import math

import numpy as np
import pytest

from dave_sim.occupancy import distance_grid, free_route_exists, plan_path
from dave_sim.world import (Obstacle, WorldConfig, WorldConfigError, generate_world,
                            load_world_config)

SEEDS = range(6)


def test_same_seed_gives_identical_world_and_different_seeds_differ():
    a, b = generate_world(7), generate_world(7)
    assert a == b
    c = generate_world(8)
    assert (c.start, c.goal, c.obstacles) != (a.start, a.goal, a.obstacles)


@pytest.mark.parametrize('seed', SEEDS)
def test_world_respects_spacing_rules(seed):
    world = generate_world(seed)
    cfg = world.config
    half = cfg.half_size_m
    assert len(world.obstacles) == cfg.n_obstacles
    assert math.dist((world.start.x, world.start.y), world.goal) >= cfg.min_start_goal_distance_m
    kinds = {o.kind for o in world.obstacles}
    assert kinds == {'cylinder', 'box'}  # 24 draws at box_fraction 0.4: both kinds appear
    for i, o in enumerate(world.obstacles):
        assert -half <= o.x - o.bounding_radius and o.x + o.bounding_radius <= half
        assert -half <= o.y - o.bounding_radius and o.y + o.bounding_radius <= half
        for point in ((world.start.x, world.start.y), world.goal):
            assert math.dist((o.x, o.y), point) >= o.bounding_radius + cfg.start_goal_clearance_m
        for other in world.obstacles[i + 1:]:
            gap = math.dist((o.x, o.y), (other.x, other.y)) - o.bounding_radius - other.bounding_radius
            assert gap >= cfg.min_clearance_m


@pytest.mark.parametrize('seed', SEEDS)
def test_route_from_start_to_goal_is_free_for_the_vehicle_disc(seed):
    world = generate_world(seed)
    clearance = world.config.route_clearance_m
    grid = distance_grid(world, 0.05)  # finer than the generator's grid: an independent check
    path = plan_path(grid, (world.start.x, world.start.y), world.goal, clearance, 1.0, 4.0)
    assert path is not None
    points = np.array(path)
    assert np.allclose(points[-1], world.goal, atol=0.05)
    # Exact clearance of every path point to every obstacle footprint and to the boundary.
    for x, y in points:
        assert world.config.half_size_m - max(abs(x), abs(y)) >= clearance - 1e-9
        for o in world.obstacles:
            assert _footprint_distance(o, x, y) >= clearance - 1e-6


def _footprint_distance(o: Obstacle, x: float, y: float) -> float:
    if o.kind == 'cylinder':
        return math.hypot(x - o.x, y - o.y) - o.radius
    c, s = math.cos(o.yaw), math.sin(o.yaw)
    qx = abs(c * (x - o.x) + s * (y - o.y)) - o.radius
    qy = abs(-s * (x - o.x) + c * (y - o.y)) - o.radius
    return math.hypot(max(qx, 0.0), max(qy, 0.0)) + min(max(qx, qy), 0.0)


def test_blocked_route_is_detected():
    world = generate_world(0)
    # A wall of cylinders across the whole arena between start and goal blocks every route.
    sx, sy = world.start.x, world.start.y
    gx, gy = world.goal
    mx, my = (sx + gx) / 2, (sy + gy) / 2
    nx, ny = -(gy - sy), gx - sx  # perpendicular to start->goal
    norm = math.hypot(nx, ny)
    fence = tuple(Obstacle('cylinder', mx + nx / norm * d, my + ny / norm * d, 0.3, 1.0, (1, 1, 1, 1))
                  for d in np.arange(-30, 30, 0.4))
    blocked = dataclasses.replace(world, obstacles=world.obstacles + fence)
    grid = distance_grid(blocked, 0.1)
    assert not free_route_exists(grid, (sx, sy), world.goal, 0.4)
    assert free_route_exists(distance_grid(world, 0.1), (sx, sy), world.goal, 0.4)


def test_impossible_density_fails_with_clear_error():
    crowded = WorldConfig(size_m=8.0, n_obstacles=60, min_start_goal_distance_m=4.0, max_tries=2)
    with pytest.raises(WorldConfigError, match='n_obstacles=60'):
        generate_world(1, crowded)


def test_bad_seed_is_rejected():
    with pytest.raises(WorldConfigError, match='seed'):
        generate_world(-1)


def test_yaml_config_round_trip(tmp_path):
    path = tmp_path / 'world.yaml'
    path.write_text('size_m: 30\nn_obstacles: 10\nwalls: false\nobstacle_radius_range_m: [0.2, 0.4]\n')
    cfg = load_world_config(path)
    assert cfg == WorldConfig(size_m=30.0, n_obstacles=10, walls=False, obstacle_radius_range_m=(0.2, 0.4))
    assert generate_world(3, cfg).config is cfg


@pytest.mark.parametrize('text, culprit', [
    ('size_m: 20\nn_obstacle: 5\n', "unknown key 'n_obstacle'"),
    ('size_m: -5\n', "'size_m' must be > 0"),
    ('n_obstacles: 2.5\n', "'n_obstacles' must be an integer"),
    ('walls: 1\n', "'walls' must be true or false"),
    ('obstacle_radius_range_m: [0.5, 0.1]\n', "'obstacle_radius_range_m' must be"),
    ('obstacle_radius_range_m: 0.3\n', "'obstacle_radius_range_m' must be a list"),
    ('min_start_goal_distance_m: 100\n', "'min_start_goal_distance_m' must be in"),
    ('route_clearance_m: .nan\n', "'route_clearance_m' must be a finite number"),
    ('- 1\n- 2\n', 'expected a mapping'),
    ('size_m: [1\n', 'invalid YAML'),
])
def test_yaml_config_errors_name_the_key_and_file(tmp_path, text, culprit):
    path = tmp_path / 'bad.yaml'
    path.write_text(text)
    with pytest.raises(WorldConfigError) as info:
        load_world_config(path)
    message = str(info.value)
    assert culprit in message
    assert str(path) in message
    assert '\n' not in message


def test_missing_yaml_file_is_named(tmp_path):
    with pytest.raises(WorldConfigError, match='missing.yaml'):
        load_world_config(tmp_path / 'missing.yaml')
