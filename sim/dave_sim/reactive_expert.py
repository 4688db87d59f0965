"""A reactive expert whose commands are explained by what the stereo camera sees.

The planner expert (expert.py) steers along an A* route to a goal the camera never sees, so its
labels cannot be learned from images. This one drives like DAVE's human trainer: it looks ahead
within the camera's field of view and range, and steers around what is there. Each command:

1. `scan`: cast rays over the camera's horizontal field of view on the world's true obstacle
   distance field; the first surface each ray meets (within `range_m`) is a visible obstacle point.
   Obstacles behind others, beside the truck or beyond the range are not used. The arena border
   counts only when the world has visible walls. An obstacle is the outline of its parts lower
   than `pass_under_height_m` (a tree's trunk, a rock's lumps), not the circle around all of
   its parts: the camera sees the outline, and the truck passes under a high crown.
2. `evaluate_arcs` + `choose_arc`: for a fan of constant-curvature arcs, measure the free
   distance along each arc: how far the truck's centre can go before its inflated footprint
   touches a visible point or leaves the seen field of view (unknown is not free). The best arc
   maximizes free distance plus a small bonus for clearance, minus small penalties on curvature
   (prefer straight) and on the change from the previous arc.
3. Speed follows the free distance; with every arc blocked the truck turns in place, keeping
   the direction it chose until an arc opens again.

The clean command is the label; the driven command may carry DART noise (expert.NoiseConfig).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from dave_sim.camera import StereoCameraConfig
from dave_sim.expert import DartNoise, ExpertCommand, NoiseConfig
from dave_sim.occupancy import DistanceGrid, low_footprint_distance
from dave_sim.vehicle import VehicleConfig, VehicleState
from dave_sim.world import World


@dataclass(frozen=True)
class ReactiveConfig:
    """Perception range, arc fan and speed policy; defaults suit the 0.5 m truck at walking pace."""

    cruise_speed_mps: float = 0.8  # the stack's cruise speed (launch/params/stack.yaml)
    range_m: float = 7.0  # stereo on a 12 cm baseline is reliable to a few metres; 7 m is generous
    n_rays: int = 121  # ~0.7 deg apart over 85 deg: 9 cm between rays at 7 m
    n_arcs: int = 21  # odd, so the straight arc is in the fan
    max_curvature_per_m: float = 1.5  # 0.67 m radius: sharp enough to dodge a 1 m wide rock
    horizon_m: float = 3.5  # arc length evaluated: ~4 s at cruise speed
    arc_step_m: float = 0.05
    # Kept between the footprint circle and an obstacle surface; with 0.15 the model imitating
    # the expert touched what it passed (steering card, p9 and p10).
    margin_m: float = 0.25
    # Arc samples closer than this to the truck are "known" even outside the field of view (they
    # were seen a moment ago and the footprint is already there).
    near_field_m: float = 0.4
    # Decisive by design: leaving the straight arc costs at least 0.05 (its neighbour), so the expert
    # turns for 0.18 m more free length, never for clearance alone (worth at most 0.02), and not for
    # a few centimetres no camera resolves (0.12 / 0.05 made a quarter of the frames near-ties;
    # steering card).
    straight_weight: float = 0.5  # score cost of the sharpest arc relative to a full free horizon
    smooth_weight: float = 0.06  # score cost of swinging from one end of the fan to the other
    clearance_weight: float = 0.02  # score bonus of passing clearance_cap_m or more from obstacles
    clearance_cap_m: float = 1.0
    stop_distance_m: float = 0.5  # best free distance below this: turn in place
    slow_distance_m: float = 2.0  # free distance below this: slow down (linearly to min_speed)
    min_speed_mps: float = 0.25
    turn_in_place_rps: float = 1.0
    grid_resolution_m: float = 0.05
    # Parts of an obstacle higher than this above its base are not in the way: the truck's
    # chassis top is 0.2 m, its camera 0.3 m.
    pass_under_height_m: float = 0.4

    def __post_init__(self) -> None:
        for name in ('cruise_speed_mps', 'range_m', 'max_curvature_per_m', 'horizon_m', 'arc_step_m',
                     'stop_distance_m', 'slow_distance_m', 'min_speed_mps', 'turn_in_place_rps',
                     'grid_resolution_m', 'clearance_cap_m', 'pass_under_height_m'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'reactive expert config {name!r} must be > 0, got {value!r}')
        for name in ('margin_m', 'near_field_m', 'straight_weight', 'smooth_weight', 'clearance_weight'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f'reactive expert config {name!r} must be >= 0, got {value!r}')
        if self.n_rays < 2:
            raise ValueError(f'reactive expert config n_rays must be >= 2, got {self.n_rays}')
        if self.n_arcs < 3 or self.n_arcs % 2 == 0:
            raise ValueError(f'reactive expert config n_arcs must be odd and >= 3, got {self.n_arcs}')
        if self.slow_distance_m <= self.stop_distance_m:
            raise ValueError(f'reactive expert config slow_distance_m ({self.slow_distance_m}) must exceed '
                             f'stop_distance_m ({self.stop_distance_m})')

    @property
    def curvatures(self) -> np.ndarray:
        """The arc fan [1/m], symmetric, from right (-) to left (+), with 0 in the middle."""
        return np.linspace(-self.max_curvature_per_m, self.max_curvature_per_m, self.n_arcs)


@dataclass(frozen=True)
class ArcChoice:
    """The chosen arc and the speeds that drive it."""

    curvature: float  # [1/m], + = left; +-max_curvature while turning in place
    free_m: float  # free distance along the chosen arc
    v: float  # [m/s]
    w: float  # [rad/s]
    turning_in_place: bool


def visible_distance_grid(world: World, resolution: float,
                          pass_under_height_m: float = ReactiveConfig.pass_under_height_m) -> DistanceGrid:
    """Distance to the nearest obstacle surface lower than `pass_under_height_m`, plus the arena
    border only if walls are built.

    Without walls the border is invisible in the images, so steering at it could not be learned.
    The grid spans the arena plus one metre, so rays crossing a wall-less border see nothing there.
    """
    half = world.config.half_size_m + 1.0
    n = int(math.floor(2 * half / resolution)) + 1
    coords = -half + np.arange(n) * resolution
    xs, ys = np.meshgrid(coords, coords)
    distance = np.full(xs.shape, np.inf)
    if world.config.walls:
        arena = world.config.half_size_m
        distance = np.maximum(np.abs(xs), np.abs(ys))
        distance = np.where(distance <= arena, arena - distance, 0.0)  # outside the walls is solid
    for obstacle in world.obstacles:
        distance = np.minimum(distance, low_footprint_distance(obstacle, xs, ys, pass_under_height_m, resolution))
    return DistanceGrid(np.minimum(distance, 1e3).astype(np.float32), float(coords[0]), float(coords[0]),
                        resolution)


def scan(grid: DistanceGrid, x: float, y: float, yaw: float, hfov_deg: float, range_m: float,
         n_rays: int) -> np.ndarray:
    """Visible obstacle points (N, 2) in the sensor frame (x forward, y left) seen from (x, y, yaw).

    Sphere tracing over the distance field: each ray advances by the distance to the nearest
    surface, so it never steps through an obstacle and needs few steps in open space.
    """
    half_fov = math.radians(hfov_deg) / 2
    bearings = np.linspace(-half_fov, half_fov, n_rays)
    dirs = np.stack([np.cos(yaw + bearings), np.sin(yaw + bearings)], axis=1)
    t = np.zeros(n_rays)
    hit = np.zeros(n_rays, bool)
    rows, cols = grid.distance.shape
    eps = grid.resolution / 2
    for _ in range(64):  # enough for 7 m at 0.05 m cells; rays that are still going see nothing
        active = ~hit & (t < range_m)
        if not active.any():
            break
        px, py = x + t * dirs[:, 0], y + t * dirs[:, 1]
        col = np.clip(np.rint((px - grid.origin_x) / grid.resolution).astype(int), 0, cols - 1)
        row = np.clip(np.rint((py - grid.origin_y) / grid.resolution).astype(int), 0, rows - 1)
        d = grid.distance[row, col]
        newly = active & (d < eps)
        hit |= newly
        t = np.where(active & ~newly, t + np.maximum(d, eps), t)
    hit &= t < range_m
    return np.stack([t[hit] * np.cos(bearings[hit]), t[hit] * np.sin(bearings[hit])], axis=1)


def arc_points(curvatures: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Body-frame positions (K, S, 2) after driving `lengths` along arcs of `curvatures` from the origin."""
    k = curvatures[:, None]
    s = lengths[None, :]
    ks = k * s
    small = np.abs(k) < 1e-9
    safe_k = np.where(small, 1.0, k)
    x = np.where(small, s, np.sin(ks) / safe_k)
    y = np.where(small, 0.0, (1.0 - np.cos(ks)) / safe_k)
    return np.stack([x, y], axis=-1)


def evaluate_arcs(points: np.ndarray, config: ReactiveConfig, footprint_radius_m: float,
                  camera_forward_m: float, hfov_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Free arc length [m] and clearance [m] of each arc in the fan, given visible body-frame points.

    An arc ends where the inflated footprint touches a visible point, or where its centre leaves
    the seen wedge (field of view from the camera, within range) beyond the near field. The
    clearance is the smallest gap between the footprint and a visible point along the free part,
    capped at `clearance_cap_m`; it breaks ties towards the side away from obstacles.
    """
    lengths = np.arange(1, int(round(config.horizon_m / config.arc_step_m)) + 1) * config.arc_step_m
    samples = arc_points(config.curvatures, lengths)  # (K, S, 2)
    radius = footprint_radius_m + config.margin_m
    # Points further than any arc sample can reach (plus the clearance cap) cannot matter.
    reach = config.horizon_m + radius + config.clearance_cap_m
    points = points[np.hypot(points[:, 0], points[:, 1]) <= reach] if len(points) else points
    if len(points):
        gaps = np.linalg.norm(samples[:, :, None, :] - points[None, None, :, :], axis=-1).min(axis=2) - radius
    else:
        gaps = np.full(samples.shape[:2], np.inf)
    rel_x = samples[..., 0] - camera_forward_m
    bearing = np.arctan2(samples[..., 1], rel_x)
    seen = ((np.abs(bearing) <= math.radians(hfov_deg) / 2) & (np.hypot(rel_x, samples[..., 1]) <= config.range_m)) \
        | (np.hypot(samples[..., 0], samples[..., 1]) <= config.near_field_m)
    stop = (gaps < 0) | ~seen
    first = np.where(stop.any(axis=1), stop.argmax(axis=1), len(lengths))  # index of the first bad sample
    before = np.arange(len(lengths))[None, :] < first[:, None]
    clearance = np.where(before, gaps, np.inf).min(axis=1)
    return first * config.arc_step_m, np.clip(clearance, 0.0, config.clearance_cap_m)


def arc_scores(free: np.ndarray, clearance: np.ndarray, previous_curvature: float | np.ndarray,
               config: ReactiveConfig) -> np.ndarray:
    """`choose_arc`'s score of each arc of the fan (last axis; leading axes are frames): free
    length, plus the clearance bonus, minus the pulls towards straight and the previous arc."""
    curvatures = config.curvatures
    k_max = config.max_curvature_per_m
    previous = np.asarray(previous_curvature, dtype=float)[..., None]
    return (np.minimum(free, config.horizon_m) / config.horizon_m
            + config.clearance_weight * clearance / config.clearance_cap_m
            - config.straight_weight * np.abs(curvatures) / k_max
            - config.smooth_weight * np.abs(curvatures - previous) / (2 * k_max))


# A direction margin below this is a near-tie: 0.01 is the bonus of 0.5 m more clearance, or
# 3.5 cm more free length on the 3.5 m horizon (default weights).
NEAR_TIE_SCORE = 0.01


def direction_margin(free: np.ndarray, clearance: np.ndarray, deadband_per_m: float,
                     config: ReactiveConfig = ReactiveConfig()) -> np.ndarray:
    """Per frame ((N, K) free lengths and clearances of the fan): how much the memoryless best
    arc outscores the best arc of another direction (right / straight within `deadband_per_m` /
    left). A small margin is a near-tie: the expert's direction there hangs on a few
    centimetres of free length or clearance, which no camera resolves reliably."""
    if free.shape[-1] != len(config.curvatures):
        raise ValueError(f'direction_margin: {free.shape[-1]} arcs per frame, the expert config '
                         f'has {len(config.curvatures)}')
    curvatures = config.curvatures
    direction = np.where(curvatures > deadband_per_m, 1, np.where(curvatures < -deadband_per_m, -1, 0))
    score = arc_scores(free, clearance, 0.0, replace(config, smooth_weight=0.0))
    best = score.max(axis=-1, keepdims=True)
    best_direction = direction[score.argmax(axis=-1)][..., None]
    other = np.where(direction == best_direction, -np.inf, score).max(axis=-1, keepdims=True)
    return (best - other)[..., 0]


def choose_arc(free: np.ndarray, clearance: np.ndarray, previous_curvature: float, config: ReactiveConfig,
               max_yaw_rate_rps: float, turn_direction: float = 0.0) -> ArcChoice:
    """Best arc of the fan given its free distances and clearances; turn in place when all are short.

    `turn_direction` (+1 left, -1 right, 0 none) is the direction of an ongoing turn in place,
    kept so the truck does not dither between two equally blocked sides.
    """
    curvatures = config.curvatures
    k_max = config.max_curvature_per_m
    score = arc_scores(free, clearance, previous_curvature, config)
    best = int(np.argmax(score))
    if free[best] < config.stop_distance_m:
        if turn_direction == 0.0:
            # Towards the side with more room; left on an exact tie.
            left, right = free[curvatures > 0].sum(), free[curvatures < 0].sum()
            turn_direction = 1.0 if left >= right else -1.0
        w = turn_direction * min(config.turn_in_place_rps, max_yaw_rate_rps)
        return ArcChoice(turn_direction * k_max, float(free[best]), 0.0, w, True)
    k = float(curvatures[best])
    fraction = (free[best] - config.stop_distance_m) / (config.slow_distance_m - config.stop_distance_m)
    v = config.cruise_speed_mps * float(np.clip(fraction, 0.0, 1.0))
    v = max(v, config.min_speed_mps)
    if abs(k) > 1e-9:
        v = min(v, max_yaw_rate_rps / abs(k))
    return ArcChoice(k, float(free[best]), v, v * k, False)


def memoryless_arc(free: np.ndarray, clearance: np.ndarray, config: ReactiveConfig,
                   max_yaw_rate_rps: float) -> ArcChoice:
    """The arc `choose_arc` picks from this view alone: no pull towards the previous arc and no
    kept turn-in-place direction. A label that is a function of what the camera sees now."""
    return choose_arc(free, clearance, 0.0, replace(config, smooth_weight=0.0), max_yaw_rate_rps, 0.0)


# Perception errors of about one pixel of the steering network's 160x120 input (0.53 deg a
# column): every obstacle edge this much nearer or further, every bearing this much off, every
# range this share off. Alone, each flips the expert's direction on a few % of frames.
FRAGILE_EDGE_M = 0.025
FRAGILE_BEARING_DEG = 0.5
FRAGILE_RANGE = 0.03


def direction_fragile(points: np.ndarray, config: ReactiveConfig, footprint_radius_m: float,
                      camera_forward_m: float, hfov_deg: float, max_yaw_rate_rps: float,
                      arcs: tuple[np.ndarray, np.ndarray] | None = None) -> bool:
    """Whether the direction (right / straight / left) of the memoryless choice on these visible
    body-frame points changes under one of the small perception errors above, each tried alone
    in both signs. On such frames the label hangs on what a camera barely resolves. `arcs`: the
    (free, clearance) `evaluate_arcs` already gave for `points`, if at hand."""
    def direction(free: np.ndarray, clearance: np.ndarray) -> float:
        # The fan's straight arc is exactly 0, so the sign is the direction.
        return float(np.sign(memoryless_arc(free, clearance, config, max_yaw_rate_rps).curvature))

    def evaluated(view: np.ndarray, view_config: ReactiveConfig) -> tuple[np.ndarray, np.ndarray]:
        return evaluate_arcs(view, view_config, footprint_radius_m, camera_forward_m, hfov_deg)

    camera = np.array([camera_forward_m, 0.0])
    relative = points - camera
    base = direction(*(arcs if arcs is not None else evaluated(points, config)))
    for sign in (-1.0, 1.0):
        angle = math.radians(sign * FRAGILE_BEARING_DEG)
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        views = ((points, replace(config, margin_m=config.margin_m + sign * FRAGILE_EDGE_M)),
                 (relative @ rotation.T + camera, config),
                 (relative * (1.0 + sign * FRAGILE_RANGE) + camera, config))
        if any(direction(*evaluated(view, view_config)) != base for view, view_config in views):
            return True
    return False


class ReactiveExpert:
    """Privileged, vision-limited obstacle avoider; `command(state)` at the camera rate.

    Same calling convention as expert.ExpertDriver (`command`, `reached_goal`), so data
    generators can use either. It has no goal: it wanders and avoids, like DAVE's trainer.
    """

    def __init__(self, world: World, vehicle: VehicleConfig = VehicleConfig(),
                 camera: StereoCameraConfig = StereoCameraConfig(), config: ReactiveConfig = ReactiveConfig(),
                 noise: NoiseConfig | None = None) -> None:
        if config.cruise_speed_mps > vehicle.max_speed_mps:
            raise ValueError(f'reactive expert cruise_speed_mps {config.cruise_speed_mps} exceeds the '
                             f'vehicle max_speed_mps {vehicle.max_speed_mps}')
        self.world = world
        self.vehicle = vehicle
        self.camera = camera
        self.config = config
        self.grid = visible_distance_grid(world, config.grid_resolution_m, config.pass_under_height_m)
        self._noise = DartNoise(noise, vehicle) if noise is not None else None
        self._previous = 0.0
        self._turn_direction = 0.0
        self.last_choice: ArcChoice | None = None
        # Free length and clearance [m] of every arc of the fan at the last command (privileged
        # labels a data generator may store, e.g. as auxiliary training targets).
        self.last_free: np.ndarray | None = None
        self.last_clearance: np.ndarray | None = None
        self.last_points: np.ndarray | None = None  # the visible obstacle points they came from

    def reached_goal(self, state: VehicleState) -> bool:
        """Never: the reactive expert has no goal."""
        return False

    def visible_points(self, state: VehicleState) -> np.ndarray:
        """Obstacle points the camera sees from `state`, in the body frame (x forward, y left)."""
        c, s = math.cos(state.yaw), math.sin(state.yaw)
        fwd = self.camera.mount_forward_m
        points = scan(self.grid, state.x + fwd * c, state.y + fwd * s, state.yaw, self.camera.hfov_deg,
                      self.config.range_m, self.config.n_rays)
        return points + np.array([fwd, 0.0])

    def command(self, state: VehicleState) -> ExpertCommand:
        """The clean reactive command (the label) and the command to drive (noisy if configured)."""
        self.last_points = self.visible_points(state)
        free, clearance = evaluate_arcs(self.last_points, self.config, self.vehicle.footprint_radius_m,
                                        self.camera.mount_forward_m, self.camera.hfov_deg)
        choice = choose_arc(free, clearance, self._previous, self.config, self.vehicle.max_yaw_rate_rps,
                            self._turn_direction)
        self._turn_direction = math.copysign(1.0, choice.w) if choice.turning_in_place else 0.0
        self._previous = choice.curvature
        self.last_choice = choice
        self.last_free, self.last_clearance = free, clearance
        applied_v, applied_w = self._noise(choice.v, choice.w) if self._noise else (choice.v, choice.w)
        return ExpertCommand(choice.v, choice.w, choice.curvature, applied_v, applied_w)

    def privileged_labels(self) -> dict[str, np.ndarray | float]:
        """Labels of the last command beyond the curvature: the memoryless choice and the arc fan's
        free lengths and clearances [m]. Call after `command`."""
        if self.last_free is None or self.last_clearance is None:
            raise RuntimeError('privileged_labels: call command() first')
        memoryless = memoryless_arc(self.last_free, self.last_clearance, self.config,
                                    self.vehicle.max_yaw_rate_rps)
        return {'curvature_memoryless': memoryless.curvature,
                'arc_free_m': self.last_free.astype(np.float32),
                'arc_clearance_m': self.last_clearance.astype(np.float32)}

    def last_direction_fragile(self) -> bool:
        """`direction_fragile` of the last command's view. Call after `command`."""
        if self.last_points is None or self.last_free is None or self.last_clearance is None:
            raise RuntimeError('last_direction_fragile: call command() first')
        return direction_fragile(self.last_points, self.config, self.vehicle.footprint_radius_m,
                                 self.camera.mount_forward_m, self.camera.hfov_deg, self.vehicle.max_yaw_rate_rps,
                                 arcs=(self.last_free, self.last_clearance))
