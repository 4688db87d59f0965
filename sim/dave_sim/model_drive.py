"""A steering model driving a generated world in-process: no ROS, sim time, deterministic.

The same pieces as the ROS stack (dave_core.autopilot.SteeringPilot for pixels -> proposal,
dave_core.command.CommandGovernor for limits), stepped on the simulator's clock: render a pair,
let the stack's latency pass, apply the governed command, run to the next frame. It runs as
fast as the CPU renders and infers (~5x real time here), and the same world and model give the
same drive, so it is the tool for comparing models; `dave eval` over ROS measures the stack.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from dave_core.autopilot import SteeringPilot
from dave_core.command import CommandGovernor, CommandLimits
from dave_core.metrics import ClosedLoopRecorder
from dave_sim.simulator import Simulator
from dave_sim.world import World


@dataclass(frozen=True)
class ModelDriveConfig:
    """Defaults are the stack's: launch/sim.launch.yaml and launch/params/stack.yaml (tested)."""

    duration_s: float = 60.0
    camera_rate_hz: float = 15.0
    cruise_speed_mps: float = 0.8
    # Image-to-command delay of the ROS stack (dave eval, worlds 40-42: p50 47.5 ms); the
    # simulator keeps driving on the previous command meanwhile, as the real truck would.
    latency_s: float = 0.05
    limits: CommandLimits = CommandLimits()

    def __post_init__(self) -> None:
        for name in ('duration_s', 'camera_rate_hz'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'{name} must be > 0, got {value!r}')
        if not (math.isfinite(self.cruise_speed_mps) and self.cruise_speed_mps >= 0):
            raise ValueError(f'cruise_speed_mps must be >= 0, got {self.cruise_speed_mps!r}')
        if not (math.isfinite(self.latency_s) and 0 <= self.latency_s < 1 / self.camera_rate_hz):
            raise ValueError(f'latency_s must be in [0, 1/camera_rate_hz), got {self.latency_s!r}')


def drive_model(world: World, pilot: SteeringPilot, config: ModelDriveConfig = ModelDriveConfig(),
                on_frame: Callable[[Simulator], None] | None = None) -> dict[str, float | int]:
    """Drive `world` for config.duration_s of sim time; the contract metrics of the drive.

    Rates are per second of sim time; the stack latency keys are NaN (the delay is the
    configured one, not a measurement). Adds distance_to_first_collision_m (NaN without one).
    """
    period = 1.0 / config.camera_rate_hz
    frames = int(round(config.duration_s * config.camera_rate_hz))
    governor = CommandGovernor(config.limits)
    recorder = ClosedLoopRecorder()
    first_collision_m = math.nan
    with Simulator(world) as sim:
        start_s = sim.time_s
        recorder.start(start_s)
        for k in range(frames):
            frame = sim.render()
            recorder.camera_frames += 1
            proposal = pilot.propose(frame.left, frame.right)
            sim.step_to(frame.stamp_s + config.latency_s)
            governor.propose(sim.time_s, proposal, frame.stamp_s)
            command = governor.update(sim.time_s).command
            recorder.commands += 1
            sim.apply_controls(command.linear_mps, command.angular_rps)
            sim.step_to(start_s + (k + 1) * period)  # frame times on the grid: no drift
            if on_frame is not None:
                on_frame(sim)
            if math.isnan(first_collision_m) and sim.collisions > 0:
                first_collision_m = sim.distance_m
        recorder.stop(sim.time_s)
        recorder.distance_m = sim.distance_m
        recorder.collisions = sim.collisions
    metrics = recorder.metrics()
    metrics['distance_to_first_collision_m'] = round(first_collision_m, 3)
    return metrics
