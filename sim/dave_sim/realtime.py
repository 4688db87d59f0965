"""Running a Simulator against a wall clock, like the real world: pacing, frame times, command watchdog.

Pure logic with wall time injected (seconds from any monotonic clock), so the simulator node
stays thin and every rule is tested without ROS:
- sim time follows wall time x real_time_factor; a stalled caller catches up at most
  `max_catch_up_s` per update, so a long stall lowers the achieved real-time factor instead of
  freezing the process in one huge step;
- frames are due on a fixed grid of sim times (k / camera_rate_hz); stepping stops on a frame
  time (to within one physics step), so frames are evenly spaced; frames the caller could not
  keep up with are skipped, not rendered late;
- no command for `cmd_timeout_s` of sim time stops the truck at the deadline (to one physics step).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from dave_sim.simulator import Simulator


@dataclass(frozen=True)
class PacingConfig:
    camera_rate_hz: float = 15.0
    real_time_factor: float = 1.0
    cmd_timeout_s: float = 0.5
    max_catch_up_s: float = 0.5

    def __post_init__(self) -> None:
        for name in ('camera_rate_hz', 'real_time_factor', 'cmd_timeout_s', 'max_catch_up_s'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'{name} must be a positive finite number, got {value!r}')


class RealTimeDriver:
    """Advances `sim` towards wall time; call `advance` often (faster than the camera rate)."""

    def __init__(self, sim: Simulator, config: PacingConfig, wall_start_s: float) -> None:
        self.sim = sim
        self.config = config
        self._wall_start_s = wall_start_s
        self._sim_start_s = sim.time_s
        self._frame_period_s = 1.0 / config.camera_rate_hz
        self._next_frame_s = sim.time_s  # the first frame shows the start pose
        self._last_command_s: float | None = None
        self._timed_out = False
        self.frames_skipped = 0
        self.timeouts = 0

    @property
    def stopped_by_timeout(self) -> bool:
        """True while the watchdog holds the truck (no command within cmd_timeout_s)."""
        return self._last_command_s is None or self._timed_out

    def on_command(self, v: float, w: float) -> bool:
        """A command arrived now; False if it was non-finite (the truck stops)."""
        self._last_command_s = self.sim.time_s
        self._timed_out = False
        return self.sim.apply_controls(v, w)

    def target_time_s(self, wall_now_s: float) -> float:
        """Sim time that corresponds to `wall_now_s`."""
        return self._sim_start_s + max(0.0, wall_now_s - self._wall_start_s) * self.config.real_time_factor

    def advance(self, wall_now_s: float) -> bool:
        """Step towards wall time; True when the sim stands on a due frame time (render now)."""
        target = min(self.target_time_s(wall_now_s), self.sim.time_s + self.config.max_catch_up_s)
        frame_due = target >= self._next_frame_s - 1e-9
        if frame_due:
            target = self._next_frame_s
            next_frame = self._next_frame_s + self._frame_period_s
            behind = self.target_time_s(wall_now_s) - next_frame
            if behind > 0:  # the caller fell behind: skip frames rather than render them late
                skipped = math.ceil(behind / self._frame_period_s)
                self.frames_skipped += skipped
                next_frame += skipped * self._frame_period_s
            self._next_frame_s = next_frame
        self._step_to(target)
        return frame_due

    def _step_to(self, target_s: float) -> None:
        if self._last_command_s is not None and not self._timed_out:
            deadline = self._last_command_s + self.config.cmd_timeout_s
            if deadline <= target_s:
                self.sim.step_to(deadline)  # no-op when the sim already stands past it
                self.sim.apply_controls(0.0, 0.0)
                self._timed_out = True
                self.timeouts += 1
        self.sim.step_to(target_s)

    @property
    def next_frame_s(self) -> float:
        return self._next_frame_s
