"""Procedural off-road worlds: terrain, obstacles, a start pose, a goal and a look, all from one seed.

A world is plain data (frozen dataclasses); backends (mjcf: MuJoCo, sdf: Gazebo) turn it into
their own format. `generate_world` guarantees a collision-free route from start to goal for a
disc of radius `route_clearance_m`, checked on an occupancy grid; when a draw fails the check it
redraws with a seed derived from (seed, attempt), so the result still depends on `seed` alone.
Layout, terrain and looks come from three independent random streams of that seed, so changing
e.g. the terrain relief leaves the obstacle layout unchanged.

Coordinates: metres, world frame with +x east, +y north, z up; the arena is centred on the
origin and spans [-size_m / 2, size_m / 2] on both axes; the ground extends to twice that.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from dave_sim.obstacles import OBSTACLE_KINDS, Obstacle, ObstacleSizes, draw_obstacle
from dave_sim.occupancy import distance_grid, free_route_exists
from dave_sim.terrain import FLAT, Terrain, draw_terrain

__all__ = ['GroundStyle', 'Obstacle', 'OBSTACLE_KINDS', 'Pose2D', 'World', 'WorldConfig', 'WorldConfigError',
           'describe_world', 'generate_world', 'load_world_config', 'world_config_from_mapping',
           'world_config_to_mapping']

RGB = tuple[float, float, float]

GROUND_PATTERNS = ('checker', 'gradient', 'flat')  # MuJoCo builtin 2-D textures
# Ground, sky and sun families the looks draw from; each is jittered.
_GROUND_COLOURS: tuple[RGB, ...] = ((0.30, 0.36, 0.20), (0.52, 0.48, 0.30), (0.42, 0.36, 0.27),
                                    (0.62, 0.56, 0.42), (0.26, 0.23, 0.19), (0.22, 0.30, 0.15))
_SKY_COLOURS: tuple[RGB, ...] = ((0.45, 0.65, 0.92), (0.68, 0.77, 0.88), (0.62, 0.64, 0.66), (0.85, 0.72, 0.58))
_SUN_TINTS: tuple[RGB, ...] = ((1.0, 0.95, 0.85), (1.0, 1.0, 1.0), (0.9, 0.95, 1.0), (1.0, 0.85, 0.7))


class WorldConfigError(ValueError):
    """A world configuration value or file is invalid; the message names the key."""


DEFAULT_OBSTACLE_WEIGHTS = (('tree', 0.3), ('rock', 0.25), ('bush', 0.2), ('box', 0.15), ('cylinder', 0.1))


@dataclass(frozen=True)
class WorldConfig:
    """Seed-independent knobs of the world generator (YAML keys have the same names)."""

    size_m: float = 20.0
    walls: bool = True
    wall_height_m: float = 0.6
    wall_thickness_m: float = 0.2
    n_obstacles: int = 24
    # Relative frequency of each obstacle kind (YAML: a mapping kind: weight).
    obstacle_weights: tuple[tuple[str, float], ...] = DEFAULT_OBSTACLE_WEIGHTS
    obstacle_radius_range_m: tuple[float, float] = (0.15, 0.6)  # rocks, bushes, boxes, posts
    cylinder_height_range_m: tuple[float, float] = (0.8, 2.5)
    box_height_range_m: tuple[float, float] = (0.2, 0.8)
    bush_height_range_m: tuple[float, float] = (0.3, 0.7)
    tree_height_range_m: tuple[float, float] = (1.8, 4.0)
    tree_crown_radius_range_m: tuple[float, float] = (0.4, 0.9)
    # Edge-to-edge gap between obstacles: keeps the arena open, not only one thin route.
    min_clearance_m: float = 0.8
    # Radius of the disc that must fit along the guaranteed route (vehicle radius + margin).
    route_clearance_m: float = 0.4
    # No obstacle closer than this to the start pose or the goal.
    start_goal_clearance_m: float = 1.5
    min_start_goal_distance_m: float = 12.0
    start: tuple[float, float, float] | None = None  # [x, y, yaw_rad]; None = drawn
    goal: tuple[float, float] | None = None  # [x, y]; None = drawn
    # Peak-to-peak height of the terrain over the arena; 0 = flat. Hills span metres, so a
    # relief of a few tenths of a metre keeps slopes gentle (a few degrees).
    terrain_relief_m: float = 0.25
    terrain_bumps: int = 30  # small bumps on top of the broad hills
    terrain_resolution_m: float = 0.5  # heightfield node spacing in MuJoCo (rendering cost grows as 1/res^2)
    grid_resolution_m: float = 0.1
    max_tries: int = 20

    def __post_init__(self) -> None:
        _require(self.size_m > 0, 'size_m', 'must be > 0', self.size_m)
        _require(self.wall_height_m > 0, 'wall_height_m', 'must be > 0', self.wall_height_m)
        _require(self.wall_thickness_m > 0, 'wall_thickness_m', 'must be > 0', self.wall_thickness_m)
        _require(self.n_obstacles >= 0, 'n_obstacles', 'must be >= 0', self.n_obstacles)
        self._check_weights()
        for name in ('obstacle_radius_range_m', 'cylinder_height_range_m', 'box_height_range_m',
                     'bush_height_range_m', 'tree_height_range_m', 'tree_crown_radius_range_m'):
            low, high = getattr(self, name)
            _require(0 < low <= high, name, 'must be [low, high] with 0 < low <= high', getattr(self, name))
        _require(self.min_clearance_m >= 0, 'min_clearance_m', 'must be >= 0', self.min_clearance_m)
        _require(self.route_clearance_m > 0, 'route_clearance_m', 'must be > 0', self.route_clearance_m)
        _require(self.start_goal_clearance_m >= self.route_clearance_m, 'start_goal_clearance_m',
                 f'must be >= route_clearance_m ({self.route_clearance_m})', self.start_goal_clearance_m)
        _require(0 < self.grid_resolution_m <= self.route_clearance_m, 'grid_resolution_m',
                 f'must be in (0, route_clearance_m = {self.route_clearance_m}]', self.grid_resolution_m)
        _require(self.max_tries >= 1, 'max_tries', 'must be >= 1', self.max_tries)
        _require(0 <= self.terrain_relief_m <= 0.1 * self.size_m, 'terrain_relief_m',
                 f'must be in [0, {0.1 * self.size_m:g}] (a tenth of size_m)', self.terrain_relief_m)
        _require(self.terrain_bumps >= 0, 'terrain_bumps', 'must be >= 0', self.terrain_bumps)
        _require(0.05 <= self.terrain_resolution_m <= 2.0, 'terrain_resolution_m', 'must be in [0.05, 2]',
                 self.terrain_resolution_m)
        _require(2 * self.size_m / self.terrain_resolution_m <= 1000, 'terrain_resolution_m',
                 f'gives more than 1000 heightfield cells across 2 * size_m = {2 * self.size_m:g} m',
                 self.terrain_resolution_m)
        # Start and goal keep `start_goal_margin_m` from the walls, so both lie in a smaller square.
        inner = self.size_m - 2 * self.start_goal_margin_m
        _require(inner > 0, 'size_m', f'leaves no room for start and goal '
                 f'{self.start_goal_margin_m:.2f} m from the walls', self.size_m)
        _require(0 <= self.min_start_goal_distance_m < inner * math.sqrt(2), 'min_start_goal_distance_m',
                 f'must be in [0, {inner * math.sqrt(2):.2f}) for size_m = {self.size_m}',
                 self.min_start_goal_distance_m)
        for key, point in (('start', self.start), ('goal', self.goal)):
            if point is not None:
                limit = inner / 2
                _require(all(math.isfinite(v) for v in point), key, 'must be finite numbers', point)
                _require(abs(point[0]) <= limit and abs(point[1]) <= limit, key,
                         f'must lie inside the arena, at most {limit:.2f} m from its centre along x and y '
                         f'({self.start_goal_margin_m:.2f} m from the walls of a {self.size_m:g} m map)', point)
        if self.start is not None and self.goal is not None:
            _require(math.dist(self.start[:2], self.goal) > self.route_clearance_m, 'goal',
                     'must differ from the start', self.goal)

    def _check_weights(self) -> None:
        weights = self.obstacle_weights
        _require(isinstance(weights, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in weights),
                 'obstacle_weights', 'must be pairs (kind, weight)', weights)
        for kind, weight in weights:
            _require(kind in OBSTACLE_KINDS, 'obstacle_weights',
                     f'has unknown kind {kind!r} (known: {", ".join(OBSTACLE_KINDS)})', dict(weights))
            _require(isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0,
                     'obstacle_weights', f'weight of {kind!r} must be a number >= 0', weight)
        _require(len({kind for kind, _ in weights}) == len(weights), 'obstacle_weights', 'names a kind twice',
                 weights)
        _require(sum(w for _, w in weights) > 0 or self.n_obstacles == 0, 'obstacle_weights',
                 'must give at least one kind a weight > 0', dict(weights))
        # One canonical order (OBSTACLE_KINDS), so equal weights mean an equal config and equal worlds.
        object.__setattr__(self, 'obstacle_weights', tuple(sorted(
            ((kind, float(w)) for kind, w in weights), key=lambda pair: OBSTACLE_KINDS.index(pair[0]))))

    @property
    def half_size_m(self) -> float:
        return self.size_m / 2

    @property
    def start_goal_margin_m(self) -> float:
        """Distance kept between the walls and the start pose or goal."""
        return max(1.0, self.route_clearance_m + 0.5)

    @property
    def obstacle_sizes(self) -> ObstacleSizes:
        return ObstacleSizes(self.obstacle_radius_range_m, self.cylinder_height_range_m, self.box_height_range_m,
                             self.bush_height_range_m, self.tree_height_range_m, self.tree_crown_radius_range_m)


def _require(ok: bool, key: str, rule: str, value: object) -> None:
    if not ok:
        raise WorldConfigError(f'world config {key!r} {rule}, got {value!r}')


@dataclass(frozen=True)
class Pose2D:
    """Planar pose: position [m] and yaw [rad], counter-clockwise from +x."""

    x: float
    y: float
    yaw: float


@dataclass(frozen=True)
class GroundStyle:
    """The ground texture: a MuJoCo builtin pattern in the two ground colours plus random speckles.

    The speckles give stereo fine texture to match; `tile_m` is the side of one texture tile on
    the ground (a checker tile holds 2 x 2 cells).
    """

    pattern: str = 'checker'
    mark_rgb: RGB | None = None  # None: a lighter shade of the first ground colour
    mark_density: float = 0.08
    tile_m: float = 2.0

    def __post_init__(self) -> None:
        if self.pattern not in GROUND_PATTERNS:
            raise WorldConfigError(f'ground pattern {self.pattern!r} unknown (known: {", ".join(GROUND_PATTERNS)})')
        if not (0 <= self.mark_density <= 1 and self.tile_m > 0):
            raise WorldConfigError(f'ground mark_density must be in [0, 1] and tile_m > 0, '
                                   f'got {self.mark_density!r}, {self.tile_m!r}')


@dataclass(frozen=True)
class World:
    """Everything a backend needs to build the scene; identical for identical seeds."""

    seed: int
    config: WorldConfig
    obstacles: tuple[Obstacle, ...]
    start: Pose2D
    goal: tuple[float, float]
    ground_rgb: tuple[RGB, RGB]  # the two ground colours of the texture
    sky_rgb: RGB
    light_dir: tuple[float, float, float]  # direction the sun shines towards (z < 0)
    attempt: int = 0  # which derived seed produced this world (0 = the seed itself)
    terrain: Terrain = FLAT
    ground_style: GroundStyle = GroundStyle()
    light_rgb: RGB = (0.75, 0.75, 0.7)  # sun colour and strength
    ambient: float = 0.35  # ambient light level

    def ground_mark_rgb(self) -> RGB:
        if self.ground_style.mark_rgb is not None:
            return self.ground_style.mark_rgb
        r, g, b = self.ground_rgb[0]
        return (min(1.0, r + 0.2), min(1.0, g + 0.2), min(1.0, b + 0.15))


def generate_world(seed: int, config: WorldConfig | None = None) -> World:
    """Draw a world from `seed`; the start-goal route is guaranteed free for `route_clearance_m`."""
    config = config or WorldConfig()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise WorldConfigError(f'world seed must be an integer >= 0, got {seed!r}')
    seed = int(seed)
    failures: list[str] = []
    for attempt in range(config.max_tries):
        layout_rng, terrain_rng, looks_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence([seed, attempt]).spawn(3))
        layout, problem = _draw_layout(config, layout_rng)
        if layout is None:
            failures.append(problem)
            continue
        start, goal, obstacles = layout
        terrain = draw_terrain(terrain_rng, config.terrain_relief_m, config.half_size_m, config.terrain_bumps)
        world = World(seed=seed, config=config, obstacles=obstacles, start=start, goal=goal, attempt=attempt,
                      terrain=terrain, **_draw_looks(looks_rng))
        grid = distance_grid(world, config.grid_resolution_m)
        if free_route_exists(grid, (start.x, start.y), goal, config.route_clearance_m):
            return world
        failures.append('no free route from start to goal')
    raise WorldConfigError(
        f'world seed {seed}: no valid world in max_tries={config.max_tries} attempts '
        f'(last problem: {failures[-1]}); lower n_obstacles or min_clearance_m, or raise size_m or max_tries')


_Layout = tuple[Pose2D, tuple[float, float], tuple[Obstacle, ...]]


def _draw_layout(config: WorldConfig, rng: np.random.Generator) -> tuple[_Layout | None, str]:
    """Start pose, goal and obstacles, or None and what went wrong."""
    half = config.half_size_m
    inner = half - config.start_goal_margin_m
    start_xy = np.array(config.start[:2]) if config.start else rng.uniform(-inner, inner, size=2)
    if config.goal is not None:
        goal_xy = np.array(config.goal)
    else:
        for _ in range(200):
            goal_xy = rng.uniform(-inner, inner, size=2)
            if np.hypot(*(goal_xy - start_xy)) >= config.min_start_goal_distance_m:
                break
        else:
            return None, 'could not place the goal far enough from the start'
    if config.start is not None:
        yaw = float(config.start[2])
    else:
        # Face roughly towards the goal: the first images show the way, but not a perfect one.
        to_goal = math.atan2(goal_xy[1] - start_xy[1], goal_xy[0] - start_xy[0])
        yaw = _wrap(to_goal + float(rng.uniform(-0.5, 0.5)))
    start = Pose2D(float(start_xy[0]), float(start_xy[1]), yaw)

    kinds = [k for k, w in config.obstacle_weights if w > 0]
    weights = np.array([w for _, w in config.obstacle_weights if w > 0], dtype=float)
    obstacles: list[Obstacle] = []
    sizes = config.obstacle_sizes
    for _ in range(50 * max(config.n_obstacles, 1)):
        if len(obstacles) == config.n_obstacles:
            break
        drawn = draw_obstacle(kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))], rng, sizes)
        bound = drawn.bounding_radius
        if 2 * bound >= config.size_m:
            continue
        x, y = (float(v) for v in rng.uniform(-half + bound, half - bound, size=2))
        if _too_close(x, y, bound, obstacles, start_xy, goal_xy, config):
            continue
        obstacles.append(dataclasses.replace(drawn, x=x, y=y))
    if len(obstacles) < config.n_obstacles:
        return None, (f'placed only {len(obstacles)} of n_obstacles={config.n_obstacles} '
                      f'with min_clearance_m={config.min_clearance_m}')
    return (start, (float(goal_xy[0]), float(goal_xy[1])), tuple(obstacles)), ''


def _draw_looks(rng: np.random.Generator) -> dict:
    """Randomised ground, sky and light: the World fields of its look."""
    first, second = rng.choice(len(_GROUND_COLOURS), size=2, replace=False)
    ground = (_jitter(_GROUND_COLOURS[first], rng, 0.05), _jitter(_GROUND_COLOURS[second], rng, 0.05))
    # Speckles clearly lighter or darker than the ground: the fine texture stereo matching needs.
    shade = float(rng.choice((-1.0, 1.0))) * float(rng.uniform(0.12, 0.25))
    style = GroundStyle(pattern=GROUND_PATTERNS[int(rng.choice(len(GROUND_PATTERNS), p=(0.4, 0.3, 0.3)))],
                        mark_rgb=_rgb(np.asarray(ground[0]) + shade),
                        mark_density=round(float(rng.uniform(0.05, 0.15)), 4),
                        tile_m=round(float(rng.uniform(1.0, 4.0)), 3))
    sky = _jitter(_SKY_COLOURS[int(rng.integers(len(_SKY_COLOURS)))], rng, 0.06)
    azimuth = rng.uniform(-math.pi, math.pi)
    elevation = rng.uniform(math.radians(25), math.radians(75))
    light_dir = (-math.cos(elevation) * math.cos(azimuth), -math.cos(elevation) * math.sin(azimuth),
                 -math.sin(elevation))
    strength = rng.uniform(0.55, 0.9)
    tint = np.asarray(_SUN_TINTS[int(rng.integers(len(_SUN_TINTS)))])
    return {'ground_rgb': ground, 'ground_style': style, 'sky_rgb': sky,
            'light_dir': tuple(round(float(v), 6) for v in light_dir), 'light_rgb': _rgb(strength * tint),
            'ambient': round(float(rng.uniform(0.25, 0.45)), 4)}


def _too_close(x: float, y: float, bound: float, placed: list[Obstacle], start_xy: np.ndarray,
               goal_xy: np.ndarray, config: WorldConfig) -> bool:
    for point in (start_xy, goal_xy):
        if math.hypot(x - point[0], y - point[1]) < bound + config.start_goal_clearance_m:
            return True
    return any(math.hypot(x - o.x, y - o.y) < bound + o.bounding_radius + config.min_clearance_m
               for o in placed)


def _jitter(base: RGB, rng: np.random.Generator, spread: float) -> RGB:
    return _rgb(np.asarray(base) + rng.uniform(-spread, spread, 3))


def _rgb(values: np.ndarray) -> RGB:
    r, g, b = (round(float(v), 4) for v in np.clip(values, 0.0, 1.0))
    return (r, g, b)


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def describe_world(world: World) -> dict:
    """Plain data (YAML/JSON-ready) naming what a world is: seed, config, start, goal, contents."""
    kinds = {kind: sum(1 for o in world.obstacles if o.kind == kind) for kind in OBSTACLE_KINDS}
    return {
        'seed': world.seed,
        'attempt': world.attempt,
        'config': world_config_to_mapping(world.config),
        'start': {'x': world.start.x, 'y': world.start.y, 'yaw': world.start.yaw},
        'goal': {'x': world.goal[0], 'y': world.goal[1]},
        'obstacles': {kind: n for kind, n in kinds.items() if n},
    }


def world_config_to_mapping(config: WorldConfig) -> dict:
    """The config as the YAML mapping `load_world_config` reads back to an equal config."""
    values: dict = {}
    for field in dataclasses.fields(WorldConfig):
        value = getattr(config, field.name)
        if field.name == 'obstacle_weights':
            value = {kind: weight for kind, weight in value}
        elif isinstance(value, tuple):
            value = list(value)
        values[field.name] = value
    return values


def load_world_config(path: str | Path) -> WorldConfig:
    """Read a WorldConfig from a YAML mapping; unknown keys and bad values name the key and file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise WorldConfigError(f'world config {path}: cannot read ({exc.strerror})') from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark else ''
        problem = getattr(exc, 'problem', None) or type(exc).__name__
        raise WorldConfigError(f'world config {path}: invalid YAML{where}: {problem}') from None
    return world_config_from_mapping({} if raw is None else raw, str(path))


def world_config_from_mapping(raw: object, source: str = 'world config') -> WorldConfig:
    """A WorldConfig from parsed YAML; `source` (a file name) prefixes every error message."""
    if not isinstance(raw, dict):
        raise WorldConfigError(f'world config {source}: expected a mapping of keys, got {type(raw).__name__}')
    hints = typing.get_type_hints(WorldConfig)
    known = [f.name for f in dataclasses.fields(WorldConfig)]
    values = {}
    for key, value in raw.items():
        if key not in hints:
            raise WorldConfigError(f'world config {source}: unknown key {key!r} (known: {", ".join(known)})')
        values[key] = _coerce(source, key, hints[key], value)
    try:
        return WorldConfig(**values)
    except WorldConfigError as exc:
        raise WorldConfigError(f'{source}: {exc}') from None


def _coerce(source: str, key: str, hint: object, value: object) -> object:
    def bad(expected: str) -> WorldConfigError:
        return WorldConfigError(f'world config {source}: key {key!r} must be {expected}, got {value!r}')

    def number(v: object) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise bad('a finite number' if not isinstance(value, (list, dict)) else 'finite numbers')
        return float(v)

    args = typing.get_args(hint)
    if typing.get_origin(hint) is types.UnionType and type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise bad('true or false')
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad('an integer')
        return value
    if hint is float:
        return number(value)
    if typing.get_origin(hint) is tuple and args and args[-1] is Ellipsis:  # obstacle_weights
        if not isinstance(value, dict):
            raise bad(f'a mapping of kind: weight (kinds: {", ".join(OBSTACLE_KINDS)})')
        return tuple((str(kind), number(weight)) for kind, weight in value.items())
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            names = {2: 'a list [low, high]' if key.endswith('_range_m') else 'a list [x, y]',
                     3: 'a list [x, y, yaw_rad]'}
            raise bad(names.get(len(args), f'a list of {len(args)} numbers'))
        return tuple(number(v) for v in value)
    raise bad(f'of type {hint}')  # a new field type needs a rule here
