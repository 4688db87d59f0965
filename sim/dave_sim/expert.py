"""The privileged expert driver: plans on the world's true obstacle map and follows the plan.

It knows the world (obstacles, goal), so it plans with A* on the obstacle distance grid, keeping
clear of obstacles by a clearance cost, and follows the path with pure pursuit. It labels
training data: the clean command (speed, yaw rate, curvature) is always the label, while the
command actually driven may carry bounded, time-correlated noise (DART: Laskey et al. 2017) so
the recorded data shows how to recover from the small mistakes a learned driver will make.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dave_sim.occupancy import DistanceGrid, distance_grid, plan_path
from dave_sim.vehicle import VehicleConfig, VehicleState
from dave_sim.world import World


@dataclass(frozen=True)
class ExpertConfig:
    """Planner and pure-pursuit tuning; defaults suit the 0.5 m truck at ~1 m/s."""

    lookahead_min_m: float = 0.8
    lookahead_time_s: float = 0.8  # lookahead grows with speed: L = max(min, v * time)
    preferred_clearance_m: float = 1.0  # the planner pays extra to pass closer than this
    clearance_weight: float = 6.0
    goal_tolerance_m: float = 0.5
    max_lateral_accel_mps2: float = 1.5
    goal_decel_mps2: float = 0.8  # gentle stop on the goal
    min_speed_mps: float = 0.2  # creep speed while close to the goal or steering hard
    turn_in_place_deg: float = 70.0  # target further off-axis than this: stop and turn
    replan_deviation_m: float = 0.8
    grid_resolution_m: float = 0.1

    def __post_init__(self) -> None:
        for name in ('lookahead_min_m', 'lookahead_time_s', 'preferred_clearance_m', 'goal_tolerance_m',
                     'max_lateral_accel_mps2', 'goal_decel_mps2', 'replan_deviation_m', 'grid_resolution_m'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'expert config {name!r} must be > 0, got {value!r}')
        if not 0 < self.turn_in_place_deg <= 180:
            raise ValueError(f'expert config turn_in_place_deg must be in (0, 180], got {self.turn_in_place_deg!r}')


@dataclass(frozen=True)
class NoiseConfig:
    """Bounded AR(1) noise added to the driven command (not to the label), one sample per call.

    `correlation` is the AR(1) coefficient between consecutive `command` calls: at 15 Hz, 0.9
    means the noise changes over ~0.7 s, slow enough for the truck to actually swerve.
    """

    yaw_rate_std_rps: float = 0.3
    yaw_rate_max_rps: float = 0.6
    speed_std_mps: float = 0.05
    speed_max_mps: float = 0.15
    correlation: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ('yaw_rate_std_rps', 'yaw_rate_max_rps', 'speed_std_mps', 'speed_max_mps'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f'noise config {name!r} must be >= 0, got {value!r}')
        if not 0 <= self.correlation < 1:
            raise ValueError(f'noise config correlation must be in [0, 1), got {self.correlation!r}')


@dataclass(frozen=True)
class ExpertCommand:
    """The clean expert command (the training label) and the command to drive (noisy or not)."""

    v: float  # [m/s]
    w: float  # [rad/s]
    curvature: float  # [1/m], of the pure-pursuit arc towards the lookahead point
    applied_v: float
    applied_w: float


STOP_COMMAND = ExpertCommand(0.0, 0.0, 0.0, 0.0, 0.0)


class DartNoise:
    """Bounded AR(1) perturbation of a command (Laskey et al. 2017), one sample per call."""

    def __init__(self, config: NoiseConfig, vehicle: VehicleConfig) -> None:
        self.config = config
        self.vehicle = vehicle
        self._rng = np.random.default_rng(config.seed)
        self._state = np.zeros(2)  # [speed, yaw rate]

    def __call__(self, v: float, w: float) -> tuple[float, float]:
        n = self.config
        rho = n.correlation
        innovation = self._rng.standard_normal(2) * np.array([n.speed_std_mps, n.yaw_rate_std_rps])
        self._state = rho * self._state + math.sqrt(1 - rho * rho) * innovation
        dv = float(np.clip(self._state[0], -n.speed_max_mps, n.speed_max_mps))
        dw = float(np.clip(self._state[1], -n.yaw_rate_max_rps, n.yaw_rate_max_rps))
        applied_v = min(max(v + dv, 0.0), self.vehicle.max_speed_mps) if v > 0 else 0.0
        limit = self.vehicle.max_yaw_rate_rps
        return applied_v, min(max(w + dw, -limit), limit)


class ExpertDriver:
    """Plans once from the start, re-plans when the truck strays; `command(state)` at a fixed rate."""

    def __init__(self, world: World, vehicle: VehicleConfig = VehicleConfig(), cruise_speed: float = 1.0,
                 config: ExpertConfig = ExpertConfig(), noise: NoiseConfig | None = None) -> None:
        if not (math.isfinite(cruise_speed) and 0 < cruise_speed <= vehicle.max_speed_mps):
            raise ValueError(f'cruise_speed must be in (0, max_speed_mps = {vehicle.max_speed_mps}], '
                             f'got {cruise_speed!r}')
        if world.config.route_clearance_m < vehicle.footprint_radius_m:
            raise ValueError(f'world config route_clearance_m = {world.config.route_clearance_m} is smaller '
                             f'than the vehicle footprint radius {vehicle.footprint_radius_m:.3f} m: '
                             'the guaranteed route would not fit the truck')
        self.world = world
        self.vehicle = vehicle
        self.cruise_speed = cruise_speed
        self.config = config
        self.noise = noise
        self.grid: DistanceGrid = distance_grid(world, config.grid_resolution_m)
        self._goal = np.array(world.goal)
        self._noise = DartNoise(noise, vehicle) if noise is not None else None
        self.replans = 0
        self._set_path(self._plan((world.start.x, world.start.y)))

    @property
    def path(self) -> np.ndarray:
        """Current path, (N, 2) world-frame points from the planning position to the goal."""
        return self._path

    def reached_goal(self, state: VehicleState) -> bool:
        return math.hypot(state.x - self._goal[0], state.y - self._goal[1]) <= self.config.goal_tolerance_m

    def command(self, state: VehicleState) -> ExpertCommand:
        """Pure-pursuit command for `state`; zero once the goal is reached."""
        if self.reached_goal(state):
            return STOP_COMMAND
        position = np.array([state.x, state.y])
        closest, offset = self._closest(position)
        if offset > self.config.replan_deviation_m:
            self._set_path(self._plan((state.x, state.y)))
            self.replans += 1
            closest, offset = self._closest(position)
        self._progress = closest
        v, w, curvature = self._pursue(state, closest)
        applied_v, applied_w = self._noise(v, w) if self._noise is not None else (v, w)
        return ExpertCommand(v, w, curvature, applied_v, applied_w)

    def _plan(self, start_xy: tuple[float, float]) -> np.ndarray:
        cfg = self.config
        points = plan_path(self.grid, start_xy, self.world.goal, self.world.config.route_clearance_m,
                           cfg.preferred_clearance_m, cfg.clearance_weight)
        if points is None:
            raise RuntimeError(f'world seed {self.world.seed}: no free path from {start_xy} to the goal')
        return self._smooth(np.array(points))

    def _smooth(self, path: np.ndarray, half_window: int = 3) -> np.ndarray:
        # A moving average removes the grid's 45-degree zigzag; points it pulls too close to an
        # obstacle keep their grid position.
        if len(path) <= 2 * half_window + 1:
            return path
        kernel = np.ones(2 * half_window + 1) / (2 * half_window + 1)
        padded = np.pad(path, ((half_window, half_window), (0, 0)), mode='edge')
        smooth = np.stack([np.convolve(padded[:, k], kernel, mode='valid') for k in range(2)], axis=1)
        clearance = self.world.config.route_clearance_m
        ok = np.array([self.grid.distance_at(x, y) >= clearance for x, y in smooth])
        smooth[~ok] = path[~ok]
        smooth[0], smooth[-1] = path[0], path[-1]
        return smooth

    def _set_path(self, path: np.ndarray) -> None:
        self._path = path
        steps = np.hypot(*np.diff(path, axis=0).T) if len(path) > 1 else np.zeros(0)
        self._arc = np.concatenate([[0.0], np.cumsum(steps)])
        self._progress = 0

    def _closest(self, position: np.ndarray) -> tuple[int, float]:
        # Search ahead of the last progress only, so the follower never jumps back along the path.
        window = self._path[self._progress:self._progress + 80]
        distances = np.hypot(*(window - position).T)
        k = int(np.argmin(distances))
        return self._progress + k, float(distances[k])

    def _pursue(self, state: VehicleState, closest: int) -> tuple[float, float, float]:
        cfg = self.config
        lookahead = max(cfg.lookahead_min_m, abs(state.v) * cfg.lookahead_time_s)
        target_s = self._arc[closest] + lookahead
        if target_s >= self._arc[-1]:
            target = self._path[-1]
        else:
            target = np.array([np.interp(target_s, self._arc, self._path[:, k]) for k in range(2)])
        dx, dy = target[0] - state.x, target[1] - state.y
        c, s = math.cos(state.yaw), math.sin(state.yaw)
        x_body, y_body = c * dx + s * dy, -s * dx + c * dy
        distance = max(math.hypot(x_body, y_body), 1e-6)
        alpha = math.atan2(y_body, x_body)
        curvature = 2.0 * math.sin(alpha) / distance

        max_w = self.vehicle.max_yaw_rate_rps
        if abs(alpha) > math.radians(cfg.turn_in_place_deg):
            return 0.0, math.copysign(0.6 * max_w, alpha), curvature
        remaining = (self._arc[-1] - self._arc[closest]) + math.hypot(
            self._path[closest][0] - state.x, self._path[closest][1] - state.y)
        v = min(self.cruise_speed,
                math.sqrt(cfg.max_lateral_accel_mps2 / max(abs(curvature), 1e-6)),
                math.sqrt(2.0 * cfg.goal_decel_mps2 * remaining))
        v = max(v * max(math.cos(alpha), 0.0), cfg.min_speed_mps)
        if abs(v * curvature) > max_w:
            v = max_w / abs(curvature)
        return v, v * curvature, curvature
