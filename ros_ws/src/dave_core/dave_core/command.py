"""The command governor: turns the autopilot's proposals into the one command the vehicle obeys.

Pure logic with time injected (seconds on the node's clock), so every safety rule is tested
without ROS. Rules, in order of precedence:
1. e-stop latched -> zero;
2. no proposal yet, proposal older than `command_timeout_s`, or its source image older than
   `image_timeout_s` (a frozen camera must never keep the vehicle moving) -> zero;
3. non-finite proposal -> zero (and reported, so the node can log it once);
4. otherwise clamp to speed / yaw-rate limits, then limit acceleration from the last output.
Stops are immediate (zero), not ramped: the vehicle's low-level controller brakes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f'{name} must be a positive finite number, got {value!r}')


@dataclass(frozen=True)
class CommandLimits:
    """Limits and timeouts of the governor; defaults suit a 0.5 m DAVE-sized truck."""

    max_speed_mps: float = field(default=1.5, metadata={'description': 'forward speed limit [m/s]'})
    max_reverse_mps: float = field(default=0.5, metadata={'description': 'reverse speed limit [m/s]'})
    max_yaw_rate_rps: float = field(default=2.0, metadata={'description': 'yaw rate limit [rad/s]'})
    max_accel_mps2: float = field(default=2.0, metadata={'description': 'speed-up limit [m/s^2]'})
    max_yaw_accel_rps2: float = field(default=8.0, metadata={'description': 'yaw acceleration limit [rad/s^2]'})
    image_timeout_s: float = field(
        default=0.5, metadata={'description': 'stop when the newest image a proposal used is older [s]'})
    command_timeout_s: float = field(
        default=0.5, metadata={'description': 'stop when no proposal arrived for this long [s]'})

    def __post_init__(self) -> None:
        for name in ('max_speed_mps', 'max_yaw_rate_rps', 'max_accel_mps2',
                     'max_yaw_accel_rps2', 'image_timeout_s', 'command_timeout_s'):
            _positive(name, getattr(self, name))
        if not (math.isfinite(self.max_reverse_mps) and self.max_reverse_mps >= 0.0):
            raise ValueError(f'max_reverse_mps must be >= 0, got {self.max_reverse_mps!r}')


@dataclass(frozen=True)
class Command:
    """A body-frame velocity command: forward speed [m/s] and yaw rate [rad/s] (REP-103)."""

    linear_mps: float = 0.0
    angular_rps: float = 0.0

    @property
    def is_finite(self) -> bool:
        return math.isfinite(self.linear_mps) and math.isfinite(self.angular_rps)


STOP = Command()


@dataclass(frozen=True)
class GovernorOutput:
    """What to publish and why; `reason` is 'ok' only when the autopilot is obeyed."""

    command: Command
    reason: str  # ok | estop | no_command | stale_command | stale_image | invalid
    image_stamp_s: float | None = None


class CommandGovernor:
    """Arbitrates proposals into safe, rate-limited commands. Not thread-safe (one executor)."""

    def __init__(self, limits: CommandLimits = CommandLimits()) -> None:
        self.limits = limits
        self._proposal: Command | None = None
        self._proposal_time_s = -math.inf
        self._image_stamp_s = -math.inf
        self._estop = False
        self._last = STOP
        self._last_time_s: float | None = None

    @property
    def estop(self) -> bool:
        return self._estop

    def set_estop(self, engaged: bool) -> None:
        """Engage or release the latched e-stop."""
        self._estop = bool(engaged)

    def propose(self, now_s: float, proposal: Command, image_stamp_s: float) -> None:
        """Record the autopilot's proposal made from the image stamped `image_stamp_s`."""
        self._proposal = proposal
        self._proposal_time_s = now_s
        self._image_stamp_s = image_stamp_s

    def update(self, now_s: float) -> GovernorOutput:
        """Command to publish at `now_s`."""
        reason = self._stop_reason(now_s)
        if reason is None:
            target = self._clamp(self._proposal)
            command = self._rate_limit(now_s, target)
            out = GovernorOutput(command, 'ok', self._image_stamp_s)
        else:
            command = STOP
            out = GovernorOutput(STOP, reason, None)
        self._last, self._last_time_s = command, now_s
        return out

    def _stop_reason(self, now_s: float) -> str | None:
        if self._estop:
            return 'estop'
        if self._proposal is None:
            return 'no_command'
        if not self._proposal.is_finite:
            return 'invalid'
        if now_s - self._proposal_time_s > self.limits.command_timeout_s:
            return 'stale_command'
        if now_s - self._image_stamp_s > self.limits.image_timeout_s:
            return 'stale_image'
        return None

    def _clamp(self, proposal: Command) -> Command:
        lim = self.limits
        return Command(min(max(proposal.linear_mps, -lim.max_reverse_mps), lim.max_speed_mps),
                       min(max(proposal.angular_rps, -lim.max_yaw_rate_rps), lim.max_yaw_rate_rps))

    def _rate_limit(self, now_s: float, target: Command) -> Command:
        if self._last_time_s is None:
            dt = 0.0  # the first command starts from standstill
        else:
            dt = max(0.0, now_s - self._last_time_s)
        lim = self.limits
        # Only speeding up is limited: slowing down (towards zero) is always allowed at once.
        linear = _approach(self._last.linear_mps, target.linear_mps, lim.max_accel_mps2 * dt)
        angular = _approach(self._last.angular_rps, target.angular_rps, lim.max_yaw_accel_rps2 * dt)
        return Command(linear, angular)


def _approach(current: float, target: float, max_increase: float) -> float:
    """Move from `current` to `target`, limiting growth of |value| to `max_increase`; shrinking is free."""
    if abs(target) <= abs(current) and (target == 0.0 or math.copysign(1.0, target) == math.copysign(1.0, current)):
        return target
    if current != 0.0 and math.copysign(1.0, target) != math.copysign(1.0, current):
        current = 0.0  # reversing direction passes through zero at once
    step = min(abs(target) - abs(current), max_increase)
    return math.copysign(abs(current) + step, target)
