"""World generator: determinism, obstacle kinds and parts, the free-route guarantee, spacing rules,
independent random streams, and YAML config errors."""
import dataclasses
import math

import numpy as np
import pytest
import yaml

from dave_sim.obstacles import OBSTACLE_KINDS, ObstacleError, ObstacleSizes, Part, draw_obstacle
from dave_sim.occupancy import distance_grid, free_route_exists, plan_path
from dave_sim.world import (Obstacle, WorldConfig, WorldConfigError, describe_world, generate_world,
                            load_world_config, world_config_to_mapping)

SEEDS = range(6)


def test_same_seed_gives_identical_world_and_different_seeds_differ():
    a, b = generate_world(7), generate_world(7)
    assert a == b
    c = generate_world(8)
    assert (c.start, c.goal, c.obstacles) != (a.start, a.goal, a.obstacles)
    assert (c.terrain, c.ground_rgb, c.sky_rgb, c.light_dir) != (a.terrain, a.ground_rgb, a.sky_rgb, a.light_dir)


def test_looks_vary_across_seeds():
    worlds = [generate_world(seed) for seed in range(12)]
    assert len({w.ground_style.pattern for w in worlds}) >= 2
    assert len({w.sky_rgb for w in worlds}) == 12
    assert len({w.light_rgb for w in worlds}) == 12
    elevations = [math.degrees(math.asin(-w.light_dir[2])) for w in worlds]
    assert all(24.9 <= e <= 75.1 for e in elevations) and max(elevations) - min(elevations) > 15


@pytest.mark.parametrize('seed', SEEDS)
def test_world_respects_spacing_rules(seed):
    world = generate_world(seed)
    cfg = world.config
    half = cfg.half_size_m
    assert len(world.obstacles) == cfg.n_obstacles
    assert math.dist((world.start.x, world.start.y), world.goal) >= cfg.min_start_goal_distance_m
    assert len({o.kind for o in world.obstacles}) >= 3
    for i, o in enumerate(world.obstacles):
        assert -half <= o.x - o.bounding_radius and o.x + o.bounding_radius <= half
        assert -half <= o.y - o.bounding_radius and o.y + o.bounding_radius <= half
        for point in ((world.start.x, world.start.y), world.goal):
            assert math.dist((o.x, o.y), point) >= o.bounding_radius + cfg.start_goal_clearance_m
        for other in world.obstacles[i + 1:]:
            gap = math.dist((o.x, o.y), (other.x, other.y)) - o.bounding_radius - other.bounding_radius
            assert gap >= cfg.min_clearance_m


def test_every_kind_appears_and_draws_from_its_configured_sizes():
    cfg = WorldConfig()
    obstacles = [o for seed in SEEDS for o in generate_world(seed).obstacles]
    assert {o.kind for o in obstacles} == set(OBSTACLE_KINDS)
    for o in obstacles:
        if o.kind == 'tree':
            assert cfg.tree_crown_radius_range_m[0] <= o.radius <= cfg.tree_crown_radius_range_m[1]
            assert {p.shape for p in o.parts} >= {'cylinder', 'ellipsoid'}  # trunk and crown
            assert 1.5 < o.height <= cfg.tree_height_range_m[1] * 1.15
        else:
            assert cfg.obstacle_radius_range_m[0] <= o.radius <= cfg.obstacle_radius_range_m[1]
        if o.kind == 'bush':
            assert o.height <= cfg.bush_height_range_m[1] and len(o.parts) >= 2
        if o.kind == 'rock':
            assert 1 <= len(o.parts) <= 3 and any(p.rpy[:2] != (0.0, 0.0) for p in o.parts)


@pytest.mark.parametrize('kind', OBSTACLE_KINDS)
def test_parts_stay_inside_the_footprint_the_planner_uses(kind):
    """Seen from above, every part lies within the footprint circle (or square, for boxes)."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        o = draw_obstacle(kind, rng, ObstacleSizes())
        parts = o.solid_parts()
        assert min(p.pos[2] - p.half_extents()[2] for p in parts) <= 1e-9  # stands on the ground, no gap
        assert max(p.top() for p in parts) == pytest.approx(o.height)
        if kind == 'box':
            assert parts[0].size[:2] == (o.radius, o.radius)
        else:
            assert max(p.horizontal_reach() for p in parts) <= o.radius + 1e-9


def test_part_extents_of_turned_solids():
    box = Part('box', (1.0, 0.5, 0.25), (0.0, 0.0, 0.0), (1, 1, 1, 1), (0.0, 0.0, math.pi / 2))
    assert box.half_extents() == pytest.approx((0.5, 1.0, 0.25))
    lying = Part('cylinder', (0.1, 0.1, 1.0), (0.0, 0.0, 0.0), (1, 1, 1, 1), (math.pi / 2, 0.0, 0.0))
    assert lying.half_extents() == pytest.approx((0.1, 1.0, 0.1))
    with pytest.raises(ObstacleError, match='shape'):
        Part('cone', (1, 1, 1), (0, 0, 0), (1, 1, 1, 1))
    with pytest.raises(ObstacleError, match='explicit parts'):
        Obstacle('tree', 0, 0, 1.0, 2.0, (1, 1, 1, 1))


@pytest.mark.parametrize('seed', SEEDS)
def test_route_from_start_to_goal_is_free_for_the_vehicle_disc(seed):
    world = generate_world(seed)
    clearance = world.config.route_clearance_m
    grid = distance_grid(world, 0.05)  # finer than the generator's grid: an independent check
    path = plan_path(grid, (world.start.x, world.start.y), world.goal, clearance, 1.0, 4.0)
    assert path is not None
    points = np.array(path)
    assert np.allclose(points[-1], world.goal, atol=0.05)
    # Exact clearance of every path point to every part of every obstacle and to the boundary.
    for x, y in points:
        assert world.config.half_size_m - max(abs(x), abs(y)) >= clearance - 1e-9
        for o in world.obstacles:
            assert _footprint_distance(o, x, y) >= clearance - 1e-6


def _footprint_distance(o: Obstacle, x: float, y: float) -> float:
    if o.kind != 'box':
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


def test_layout_terrain_and_looks_use_independent_random_streams():
    base = generate_world(3)
    flat = generate_world(3, WorldConfig(terrain_relief_m=0.0))
    assert flat.terrain.is_flat and not base.terrain.is_flat
    assert (flat.obstacles, flat.start, flat.goal, flat.sky_rgb) == (base.obstacles, base.start, base.goal,
                                                                      base.sky_rgb)


def test_fixed_start_and_goal_are_used():
    cfg = WorldConfig(start=(-6.0, -6.0, 0.5), goal=(6.0, 5.0))
    world = generate_world(2, cfg)
    assert (world.start.x, world.start.y, world.start.yaw) == (-6.0, -6.0, 0.5)
    assert world.goal == (6.0, 5.0)
    assert free_route_exists(distance_grid(world, 0.1), (-6.0, -6.0), (6.0, 5.0), cfg.route_clearance_m)


def test_obstacle_weights_select_the_kinds_in_any_order():
    cfg = WorldConfig(obstacle_weights=(('rock', 1.0), ('tree', 0.0)))
    assert {o.kind for o in generate_world(1, cfg).obstacles} == {'rock'}
    mixed = WorldConfig(obstacle_weights=(('bush', 1.0), ('tree', 2.0)))
    assert mixed == WorldConfig(obstacle_weights=(('tree', 2.0), ('bush', 1.0)))
    assert {o.kind for o in generate_world(1, mixed).obstacles} == {'bush', 'tree'}
    with pytest.raises(WorldConfigError, match="'obstacle_weights' names a kind twice"):
        WorldConfig(obstacle_weights=(('rock', 1.0), ('rock', 2.0)))


def test_impossible_density_fails_with_clear_error():
    crowded = WorldConfig(size_m=8.0, n_obstacles=60, min_start_goal_distance_m=4.0, max_tries=2)
    with pytest.raises(WorldConfigError, match='n_obstacles=60'):
        generate_world(1, crowded)


def test_no_feasible_route_after_max_tries_names_the_keys():
    # Start and goal in opposite corners and a dense field: every draw blocks the way.
    cfg = WorldConfig(size_m=10.0, n_obstacles=14, min_clearance_m=0.0, obstacle_weights=(('box', 1.0),),
                      obstacle_radius_range_m=(0.6, 0.6), start_goal_clearance_m=0.5, route_clearance_m=0.45,
                      min_start_goal_distance_m=0.0, start=(-3.5, -3.5, 0.0), goal=(3.5, 3.5), max_tries=3)
    with pytest.raises(WorldConfigError, match=r"max_tries=3 .*no free route") as info:
        generate_world(0, cfg)
    assert '\n' not in str(info.value)


def test_bad_seed_is_rejected():
    with pytest.raises(WorldConfigError, match='seed'):
        generate_world(-1)


def test_yaml_config_round_trip(tmp_path):
    path = tmp_path / 'world.yaml'
    path.write_text('size_m: 30\nn_obstacles: 10\nwalls: false\nobstacle_radius_range_m: [0.2, 0.4]\n'
                    'obstacle_weights: {rock: 2, bush: 1}\ngoal: [5, -4]\nterrain_relief_m: 0.1\n')
    cfg = load_world_config(path)
    assert cfg == WorldConfig(size_m=30.0, n_obstacles=10, walls=False, obstacle_radius_range_m=(0.2, 0.4),
                              obstacle_weights=(('rock', 2.0), ('bush', 1.0)), goal=(5.0, -4.0),
                              terrain_relief_m=0.1)
    assert generate_world(3, cfg).config is cfg


def test_config_mapping_and_description_read_back(tmp_path):
    cfg = WorldConfig(size_m=24.0, start=(1.0, 2.0, 0.3), obstacle_weights=(('tree', 1.0), ('box', 0.5)))
    path = tmp_path / 'config.yaml'
    path.write_text(yaml.safe_dump(world_config_to_mapping(cfg)))
    assert load_world_config(path) == cfg
    world = generate_world(4, cfg)
    described = yaml.safe_load(yaml.safe_dump(describe_world(world)))
    assert described['seed'] == 4 and described['config'] == world_config_to_mapping(cfg)
    assert (described['start']['x'], described['start']['y']) == (1.0, 2.0)
    assert (described['goal']['x'], described['goal']['y']) == world.goal
    assert sum(described['obstacles'].values()) == cfg.n_obstacles


@pytest.mark.parametrize('text, culprit', [
    ('size_m: 20\nn_obstacle: 5\n', "unknown key 'n_obstacle'"),
    ('size_m: -5\n', "'size_m' must be > 0"),
    ('n_obstacles: 2.5\n', "'n_obstacles' must be an integer"),
    ('walls: 1\n', "'walls' must be true or false"),
    ('obstacle_radius_range_m: [0.5, 0.1]\n', "'obstacle_radius_range_m' must be"),
    ('obstacle_radius_range_m: 0.3\n', "'obstacle_radius_range_m' must be a list"),
    ('bush_height_range_m: [-0.2, 0.5]\n', "'bush_height_range_m' must be [low, high] with 0 < low"),
    ('tree_crown_radius_range_m: [0.5, .inf]\n', "'tree_crown_radius_range_m' must be finite numbers"),
    ('min_start_goal_distance_m: 100\n', "'min_start_goal_distance_m' must be in"),
    ('route_clearance_m: .nan\n', "'route_clearance_m' must be a finite number"),
    ('goal: [30, 0]\n', "'goal' must lie inside the arena"),
    ('start: [0, -9.5, 0]\n', "'start' must lie inside the arena"),
    ('start: [0, 0]\n', "'start' must be a list [x, y, yaw_rad]"),
    ('goal: [1, 2, 3]\n', "'goal' must be a list [x, y]"),
    ('obstacle_weights: {tree: 1, shrub: 2}\n', "'obstacle_weights' has unknown kind 'shrub'"),
    ('obstacle_weights: {tree: -1}\n', "'obstacle_weights' weight of 'tree' must be a number >= 0"),
    ('obstacle_weights: [tree, rock]\n', "'obstacle_weights' must be a mapping of kind: weight"),
    ('obstacle_weights: {tree: 0}\n', "'obstacle_weights' must give at least one kind a weight > 0"),
    ('terrain_relief_m: -0.1\n', "'terrain_relief_m' must be in [0, 2]"),
    ('terrain_resolution_m: 0.01\n', "'terrain_resolution_m' must be in [0.05, 2]"),
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
