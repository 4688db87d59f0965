"""The DAVE-sized skid-steer truck: its parameters and its pure dynamics functions.

State vector (numpy float64, shape (5,)), world frame, REP-103 units:
    x:   position [m]
    y:   position [m]
    yaw: heading [rad], counter-clockwise from +x, wrapped to [-pi, pi)
    v:   forward speed along the body x axis [m/s] (negative = reverse)
    w:   yaw rate [rad/s]
Command vector (shape (2,)): [v_ref, w_ref], the body-frame twist asked for (like /cmd_vel).

The drive is a first-order lag towards the (clamped) reference with acceleration limits: a
skid-steer truck turns in place, so speed and yaw rate are independent. The functions take and
return arrays and never mutate their inputs, so they serve the simulator, planners and tests alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

X, Y, YAW, V, W = range(5)


@dataclass(frozen=True)
class VehicleConfig:
    """Geometry, mass and drive limits; defaults match the ~0.5 m DAVE truck."""

    length_m: float = 0.5
    width_m: float = 0.35
    height_m: float = 0.16  # chassis box height
    ground_clearance_m: float = 0.04
    mass_kg: float = 5.0
    max_speed_mps: float = 2.0
    max_reverse_mps: float = 1.0
    max_yaw_rate_rps: float = 2.0
    max_accel_mps2: float = 2.0
    max_decel_mps2: float = 4.0
    max_yaw_accel_rps2: float = 8.0
    speed_time_constant_s: float = 0.15
    yaw_rate_time_constant_s: float = 0.10

    def __post_init__(self) -> None:
        for name in ('length_m', 'width_m', 'height_m', 'mass_kg', 'max_speed_mps', 'max_yaw_rate_rps',
                     'max_accel_mps2', 'max_decel_mps2', 'max_yaw_accel_rps2',
                     'speed_time_constant_s', 'yaw_rate_time_constant_s'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'vehicle config {name!r} must be a positive finite number, got {value!r}')
        for name in ('ground_clearance_m', 'max_reverse_mps'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f'vehicle config {name!r} must be >= 0, got {value!r}')

    @property
    def footprint_radius_m(self) -> float:
        """Radius of the circle around the chassis footprint (what planners inflate by)."""
        return math.hypot(self.length_m, self.width_m) / 2


def sanitize_command(v: float, w: float) -> tuple[float, float, bool]:
    """(v, w, True) for a finite command; (0, 0, False) otherwise, so callers stop and can log it."""
    if math.isfinite(v) and math.isfinite(w):
        return float(v), float(w), True
    return 0.0, 0.0, False


def step_drive(velocity: np.ndarray, command: np.ndarray, dt: float, config: VehicleConfig) -> np.ndarray:
    """Advance the drive velocities [v, w] by `dt` towards `command` [v_ref, w_ref].

    The reference is clamped to the speed and yaw-rate limits, followed with a first-order lag
    (exact discretisation, so any dt is stable), and each step's change is limited by the
    acceleration limits (braking may be harder than speeding up). A non-finite command means stop.
    """
    v, w = float(velocity[0]), float(velocity[1])
    v_ref, w_ref, _ = sanitize_command(float(command[0]), float(command[1]))
    v_ref = min(max(v_ref, -config.max_reverse_mps), config.max_speed_mps)
    w_ref = min(max(w_ref, -config.max_yaw_rate_rps), config.max_yaw_rate_rps)

    dv = (v_ref - v) * -math.expm1(-dt / config.speed_time_constant_s)
    speeding_up = v * dv >= 0.0
    dv_max = (config.max_accel_mps2 if speeding_up else config.max_decel_mps2) * dt
    dw = (w_ref - w) * -math.expm1(-dt / config.yaw_rate_time_constant_s)
    dw_max = config.max_yaw_accel_rps2 * dt
    return np.array([v + min(max(dv, -dv_max), dv_max), w + min(max(dw, -dw_max), dw_max)])


def step_unicycle(state: np.ndarray, command: np.ndarray, dt: float, config: VehicleConfig) -> np.ndarray:
    """Advance the full state [x, y, yaw, v, w] by `dt` on flat, obstacle-free ground.

    Velocities follow `step_drive`; the pose integrates the mean of the old and new velocities
    along the exact arc (a straight line when the yaw rate is ~0). Returns a new array.
    """
    if not dt >= 0.0:
        raise ValueError(f'dt must be >= 0, got {dt!r}')
    x, y, yaw, v0, w0 = (float(s) for s in state)
    v1, w1 = step_drive(np.array([v0, w0]), command, dt, config)
    v, w = 0.5 * (v0 + v1), 0.5 * (w0 + w1)
    dyaw = w * dt
    if abs(dyaw) < 1e-9:
        x += v * dt * math.cos(yaw)
        y += v * dt * math.sin(yaw)
    else:
        radius = v / w
        x += radius * (math.sin(yaw + dyaw) - math.sin(yaw))
        y += radius * (math.cos(yaw) - math.cos(yaw + dyaw))
    return np.array([x, y, wrap_angle(yaw + dyaw), v1, w1])


def wrap_angle(angle: float) -> float:
    """Angle wrapped to [-pi, pi)."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


@dataclass(frozen=True)
class VehicleState:
    """The truck's state as named fields (see the module docstring for units and frames)."""

    x: float
    y: float
    yaw: float
    v: float
    w: float

    def as_array(self) -> np.ndarray:
        return np.array([self.x, self.y, self.yaw, self.v, self.w])

    @classmethod
    def from_array(cls, state: np.ndarray) -> VehicleState:
        return cls(*(float(s) for s in state[:5]))
