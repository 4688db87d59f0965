"""Procedural worlds: a square arena with obstacles, a start pose and a goal, all from one seed.

A world is plain data (frozen dataclasses); backends (MuJoCo now, SDF later) turn it into their
own format. `generate_world` guarantees a collision-free route from start to goal for a disc of
radius `route_clearance_m`, checked on an occupancy grid; when a draw fails the check it redraws
with a seed derived from (seed, attempt), so the result still depends on `seed` alone.

Coordinates: metres, world frame with +x east, +y north, z up; the arena is centred on the
origin and spans [-size_m / 2, size_m / 2] on both axes.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from dave_sim.occupancy import distance_grid, free_route_exists

# Obstacle kinds this version generates; occupancy.FOOTPRINTS and mjcf.GEOM_WRITERS key on them.
OBSTACLE_KINDS = ('cylinder', 'box')

RGB = tuple[float, float, float]
RGBA = tuple[float, float, float, float]

# Base colours per kind (trees, poles / rocks, crates); each obstacle jitters one of them.
_PALETTES: dict[str, tuple[RGB, ...]] = {
    'cylinder': ((0.18, 0.42, 0.16), (0.33, 0.24, 0.14), (0.55, 0.55, 0.52), (0.85, 0.55, 0.10)),
    'box': ((0.45, 0.43, 0.40), (0.35, 0.30, 0.25), (0.60, 0.42, 0.22), (0.20, 0.30, 0.55)),
}


class WorldConfigError(ValueError):
    """A world configuration value or file is invalid; the message names the key."""


@dataclass(frozen=True)
class WorldConfig:
    """Seed-independent knobs of the world generator (YAML keys have the same names)."""

    size_m: float = 20.0
    walls: bool = True
    wall_height_m: float = 0.6
    wall_thickness_m: float = 0.2
    n_obstacles: int = 24
    obstacle_radius_range_m: tuple[float, float] = (0.15, 0.6)
    cylinder_height_range_m: tuple[float, float] = (0.8, 2.5)
    box_height_range_m: tuple[float, float] = (0.2, 0.8)
    box_fraction: float = 0.4
    # Edge-to-edge gap between obstacles: keeps the arena open, not only one thin route.
    min_clearance_m: float = 0.8
    # Radius of the disc that must fit along the guaranteed route (vehicle radius + margin).
    route_clearance_m: float = 0.4
    # No obstacle closer than this to the start pose or the goal.
    start_goal_clearance_m: float = 1.5
    min_start_goal_distance_m: float = 12.0
    grid_resolution_m: float = 0.1
    max_tries: int = 20

    def __post_init__(self) -> None:
        _require(self.size_m > 0, 'size_m', 'must be > 0', self.size_m)
        _require(self.wall_height_m > 0, 'wall_height_m', 'must be > 0', self.wall_height_m)
        _require(self.wall_thickness_m > 0, 'wall_thickness_m', 'must be > 0', self.wall_thickness_m)
        _require(self.n_obstacles >= 0, 'n_obstacles', 'must be >= 0', self.n_obstacles)
        for name in ('obstacle_radius_range_m', 'cylinder_height_range_m', 'box_height_range_m'):
            low, high = getattr(self, name)
            _require(0 < low <= high, name, 'must be [low, high] with 0 < low <= high',
                     getattr(self, name))
        _require(0.0 <= self.box_fraction <= 1.0, 'box_fraction', 'must be in [0, 1]', self.box_fraction)
        _require(self.min_clearance_m >= 0, 'min_clearance_m', 'must be >= 0', self.min_clearance_m)
        _require(self.route_clearance_m > 0, 'route_clearance_m', 'must be > 0', self.route_clearance_m)
        _require(self.start_goal_clearance_m >= self.route_clearance_m, 'start_goal_clearance_m',
                 f'must be >= route_clearance_m ({self.route_clearance_m})', self.start_goal_clearance_m)
        _require(0 < self.grid_resolution_m <= self.route_clearance_m, 'grid_resolution_m',
                 f'must be in (0, route_clearance_m = {self.route_clearance_m}]', self.grid_resolution_m)
        _require(self.max_tries >= 1, 'max_tries', 'must be >= 1', self.max_tries)
        # Start and goal keep `start_goal_margin_m` from the walls, so both lie in a smaller square.
        inner = self.size_m - 2 * self.start_goal_margin_m
        _require(inner > 0, 'size_m', f'leaves no room for start and goal '
                 f'{self.start_goal_margin_m:.2f} m from the walls', self.size_m)
        _require(0 <= self.min_start_goal_distance_m < inner * math.sqrt(2), 'min_start_goal_distance_m',
                 f'must be in [0, {inner * math.sqrt(2):.2f}) for size_m = {self.size_m}',
                 self.min_start_goal_distance_m)

    @property
    def half_size_m(self) -> float:
        return self.size_m / 2

    @property
    def start_goal_margin_m(self) -> float:
        """Distance kept between the walls and the start pose or goal."""
        return max(1.0, self.route_clearance_m + 0.5)


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
class Obstacle:
    """A static obstacle standing on the ground.

    `radius` is the cylinder radius or the box half-side (boxes have a square footprint turned
    by `yaw`); `height` is the full height above ground.
    """

    kind: str
    x: float
    y: float
    radius: float
    height: float
    rgba: RGBA
    yaw: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in OBSTACLE_KINDS:
            raise WorldConfigError(f'obstacle kind {self.kind!r} unknown (known: {", ".join(OBSTACLE_KINDS)})')

    @property
    def bounding_radius(self) -> float:
        """Radius of the smallest circle around the footprint."""
        return self.radius * math.sqrt(2) if self.kind == 'box' else self.radius


@dataclass(frozen=True)
class World:
    """Everything a backend needs to build the scene; identical for identical seeds."""

    seed: int
    config: WorldConfig
    obstacles: tuple[Obstacle, ...]
    start: Pose2D
    goal: tuple[float, float]
    ground_rgb: tuple[RGB, RGB]  # the two checker colours
    sky_rgb: RGB
    light_dir: tuple[float, float, float]  # direction the sun shines towards (z < 0)
    attempt: int = 0  # which derived seed produced this world (0 = the seed itself)


def generate_world(seed: int, config: WorldConfig | None = None) -> World:
    """Draw a world from `seed`; the start-goal route is guaranteed free for `route_clearance_m`."""
    config = config or WorldConfig()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise WorldConfigError(f'world seed must be an integer >= 0, got {seed!r}')
    seed = int(seed)
    failures: list[str] = []
    for attempt in range(config.max_tries):
        rng = np.random.default_rng(np.random.SeedSequence([seed, attempt]))
        world, problem = _draw(seed, attempt, config, rng)
        if world is None:
            failures.append(problem)
            continue
        grid = distance_grid(world, config.grid_resolution_m)
        if free_route_exists(grid, (world.start.x, world.start.y), world.goal, config.route_clearance_m):
            return world
        failures.append('no free route from start to goal')
    raise WorldConfigError(
        f'world seed {seed}: no valid world in max_tries={config.max_tries} attempts '
        f'(last problem: {failures[-1]}); lower n_obstacles or min_clearance_m, or raise size_m')


def _draw(seed: int, attempt: int, config: WorldConfig,
          rng: np.random.Generator) -> tuple[World | None, str]:
    half = config.half_size_m
    inner = half - config.start_goal_margin_m
    start_xy = rng.uniform(-inner, inner, size=2)
    for _ in range(200):
        goal_xy = rng.uniform(-inner, inner, size=2)
        if np.hypot(*(goal_xy - start_xy)) >= config.min_start_goal_distance_m:
            break
    else:
        return None, 'could not place the goal far enough from the start'
    to_goal = math.atan2(goal_xy[1] - start_xy[1], goal_xy[0] - start_xy[0])
    # Face roughly towards the goal: the first images show the way, but not a perfect one.
    start = Pose2D(float(start_xy[0]), float(start_xy[1]),
                   _wrap(to_goal + float(rng.uniform(-0.5, 0.5))))

    obstacles: list[Obstacle] = []
    r_low, r_high = config.obstacle_radius_range_m
    max_draws = 50 * max(config.n_obstacles, 1)
    for _ in range(max_draws):
        if len(obstacles) == config.n_obstacles:
            break
        kind = 'box' if rng.random() < config.box_fraction else 'cylinder'
        radius = float(rng.uniform(r_low, r_high))
        bound = radius * math.sqrt(2) if kind == 'box' else radius
        x, y = (float(v) for v in rng.uniform(-half + bound, half - bound, size=2))
        height_range = config.box_height_range_m if kind == 'box' else config.cylinder_height_range_m
        height = float(rng.uniform(*height_range))
        yaw = float(rng.uniform(0, math.pi / 2)) if kind == 'box' else 0.0
        rgba = _jitter_colour(_PALETTES[kind][rng.integers(len(_PALETTES[kind]))], rng)
        if _too_close(x, y, bound, obstacles, start_xy, goal_xy, config):
            continue
        obstacles.append(Obstacle(kind, x, y, radius, height, rgba, yaw))
    if len(obstacles) < config.n_obstacles:
        return None, (f'placed only {len(obstacles)} of n_obstacles={config.n_obstacles} '
                      f'with min_clearance_m={config.min_clearance_m}')

    grass = np.array([0.30, 0.36, 0.20]) + rng.uniform(-0.05, 0.05, 3)
    dirt = np.array([0.42, 0.36, 0.27]) + rng.uniform(-0.05, 0.05, 3)
    sky = np.array([0.55, 0.70, 0.90]) + rng.uniform(-0.08, 0.08, 3)
    azimuth = rng.uniform(-math.pi, math.pi)
    elevation = rng.uniform(math.radians(35), math.radians(75))
    light_dir = (-math.cos(elevation) * math.cos(azimuth), -math.cos(elevation) * math.sin(azimuth),
                 -math.sin(elevation))
    world = World(seed=seed, config=config, obstacles=tuple(obstacles), start=start,
                  goal=(float(goal_xy[0]), float(goal_xy[1])),
                  ground_rgb=(_rgb(grass), _rgb(dirt)), sky_rgb=_rgb(sky),
                  light_dir=tuple(float(v) for v in light_dir), attempt=attempt)
    return world, ''


def _too_close(x: float, y: float, bound: float, placed: list[Obstacle], start_xy: np.ndarray,
               goal_xy: np.ndarray, config: WorldConfig) -> bool:
    for point in (start_xy, goal_xy):
        if math.hypot(x - point[0], y - point[1]) < bound + config.start_goal_clearance_m:
            return True
    return any(math.hypot(x - o.x, y - o.y) < bound + o.bounding_radius + config.min_clearance_m
               for o in placed)


def _jitter_colour(base: RGB, rng: np.random.Generator) -> RGBA:
    rgb = np.clip(np.asarray(base) + rng.uniform(-0.06, 0.06, 3), 0.0, 1.0)
    return (*_rgb(rgb), 1.0)


def _rgb(values: np.ndarray) -> RGB:
    r, g, b = (round(float(v), 4) for v in np.clip(values, 0.0, 1.0))
    return (r, g, b)


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


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
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise WorldConfigError(f'world config {path}: expected a mapping of keys, got {type(raw).__name__}')
    hints = typing.get_type_hints(WorldConfig)
    known = [f.name for f in dataclasses.fields(WorldConfig)]
    values = {}
    for key, value in raw.items():
        if key not in hints:
            raise WorldConfigError(f'world config {path}: unknown key {key!r} (known: {", ".join(known)})')
        values[key] = _coerce(path, key, hints[key], value)
    try:
        return WorldConfig(**values)
    except WorldConfigError as exc:
        raise WorldConfigError(f'{path}: {exc}') from None


def _coerce(path: Path, key: str, hint: object, value: object) -> object:
    def bad(expected: str) -> WorldConfigError:
        return WorldConfigError(f'world config {path}: key {key!r} must be {expected}, got {value!r}')

    def number(v: object) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise bad('a finite number')
        return float(v)

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
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise bad('a list [low, high]')
        return (number(value[0]), number(value[1]))
    raise bad(f'of type {hint}')  # a new field type needs a rule here
