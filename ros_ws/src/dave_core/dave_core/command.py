"""The command governor: turns the autopilot's and the human's commands into the one the vehicle obeys.

Pure logic with time injected (seconds on the node's clock), so every safety rule is tested
without ROS. The mode (ARCHITECTURE.md /dave/mode) picks whose command is obeyed:
- `auto`: the autopilot's proposal; the human's teleop command is ignored;
- `manual`: the human's teleop command; the autopilot is ignored;
- `shared`: the autopilot, until the human gives a non-zero command: then the human drives (a
  takeover) until their command has been zero for `takeover_release_s`;
- `estop`: zero.
`intervention` (/dave/intervention) is true while a person, not the autopilot, is in charge:
mode manual, or a takeover in shared mode. It is the one signal that says who drove, so a
recording can tell a person's frames (training labels) from the autopilot's.
Then, in order of precedence:
1. e-stop latched or mode `estop` -> zero;
2. no command yet from the chosen source, its command older than `command_timeout_s`, or (for
   the autopilot) its source image older than `image_timeout_s` (a frozen camera must never keep
   the vehicle moving) -> zero;
3. non-finite command -> zero (and reported, so the node can log it once);
4. otherwise clamp to speed / yaw-rate limits, then limit acceleration from the last output.
Stops are immediate (zero), not ramped: the vehicle's low-level controller brakes. Acceleration
limits hold across a change of source, so a takeover never jumps the speed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

MODES = ('manual', 'auto', 'shared', 'estop')
# A teleop command smaller than this in both axes counts as "hands off" (stick noise, rounding).
_HANDS_OFF = 1e-3


def parse_mode(text: str) -> str:
    """The mode named by `text` (surrounding blanks and case ignored); ValueError names the culprit."""
    mode = str(text).strip().lower()
    if mode not in MODES:
        raise ValueError(f'unknown mode {text!r} (known: {", ".join(MODES)})')
    return mode


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
        default=0.5, metadata={'description': 'stop when the obeyed source sent nothing for this long [s]'})
    takeover_release_s: float = field(
        default=1.0, metadata={'description': 'shared mode: the autopilot takes over again after the '
                                              'human command has been zero this long [s]'})

    def __post_init__(self) -> None:
        for name in ('max_speed_mps', 'max_yaw_rate_rps', 'max_accel_mps2', 'max_yaw_accel_rps2',
                     'image_timeout_s', 'command_timeout_s', 'takeover_release_s'):
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

    @property
    def is_hands_off(self) -> bool:
        """Both axes (near) zero; a non-finite command is never hands-off."""
        return abs(self.linear_mps) < _HANDS_OFF and abs(self.angular_rps) < _HANDS_OFF


STOP = Command()


@dataclass(frozen=True)
class GovernorOutput:
    """What to publish and why; `reason` is 'ok' only when the chosen source is obeyed."""

    command: Command
    # ok | estop | mode_estop | no_command | stale_command | stale_image | invalid (autopilot)
    #    | no_teleop | stale_teleop | invalid_teleop (human)
    reason: str
    image_stamp_s: float | None = None  # the autopilot's source image, when it is obeyed
    source: str = 'autopilot'  # autopilot | human | none (mode estop / e-stop)
    intervention: bool = False  # a person is in charge: mode manual, or a shared-mode takeover


class CommandGovernor:
    """Arbitrates commands into safe, rate-limited ones. Not thread-safe (one executor)."""

    def __init__(self, limits: CommandLimits = CommandLimits(), mode: str = 'auto') -> None:
        self.limits = limits
        self._mode = parse_mode(mode)
        self._proposal: Command | None = None
        self._proposal_time_s = -math.inf
        self._image_stamp_s = -math.inf
        self._teleop: Command | None = None
        self._teleop_time_s = -math.inf
        self._human_active_s = -math.inf  # last time the human commanded something non-zero
        self._estop = False
        self._last = STOP
        self._last_time_s: float | None = None

    @property
    def estop(self) -> bool:
        return self._estop

    @property
    def mode(self) -> str:
        return self._mode

    def set_estop(self, engaged: bool) -> None:
        """Engage or release the latched e-stop."""
        self._estop = bool(engaged)

    def set_mode(self, mode: str) -> None:
        """Switch mode (one of MODES); ValueError names an unknown one and leaves the mode as it was."""
        self._mode = parse_mode(mode)

    def propose(self, now_s: float, proposal: Command, image_stamp_s: float) -> None:
        """Record the autopilot's proposal made from the image stamped `image_stamp_s`."""
        self._proposal = proposal
        self._proposal_time_s = now_s
        self._image_stamp_s = image_stamp_s

    def teleop(self, now_s: float, command: Command) -> None:
        """Record the human's teleop command."""
        self._teleop = command
        self._teleop_time_s = now_s
        if not command.is_hands_off:
            self._human_active_s = now_s

    def update(self, now_s: float) -> GovernorOutput:
        """Command to publish at `now_s`."""
        source, intervention = self.in_charge(now_s)
        reason = self._stop_reason(now_s, source)
        if reason is None:
            chosen, image_stamp_s = ((self._proposal, self._image_stamp_s) if source == 'autopilot'
                                     else (self._teleop, None))
            command = self._rate_limit(now_s, self._clamp(chosen))
            out = GovernorOutput(command, 'ok', image_stamp_s, source, intervention)
        else:
            command = STOP
            out = GovernorOutput(STOP, reason, None, source, intervention)
        self._last, self._last_time_s = command, now_s
        return out

    def in_charge(self, now_s: float) -> tuple[str, bool]:
        """Whose command the mode obeys at `now_s` (autopilot, human, none) and whether a person is in
        charge (an intervention); no side effect."""
        if self._estop or self._mode == 'estop':
            return 'none', False
        if self._mode == 'manual':
            return 'human', True
        if self._mode == 'shared' and now_s - self._human_active_s <= self.limits.takeover_release_s:
            return 'human', True
        return 'autopilot', False

    def _stop_reason(self, now_s: float, source: str) -> str | None:
        if self._estop:
            return 'estop'
        if source == 'none':
            return 'mode_estop'
        if source == 'human':
            reason = _unusable(self._teleop, now_s - self._teleop_time_s, self.limits.command_timeout_s)
            return _HUMAN_REASONS.get(reason, reason)
        reason = _unusable(self._proposal, now_s - self._proposal_time_s, self.limits.command_timeout_s)
        if reason is None and now_s - self._image_stamp_s > self.limits.image_timeout_s:
            return 'stale_image'
        return reason

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


# The same rules named for the human's source, so a log line says whose command is missing.
_HUMAN_REASONS = {'no_command': 'no_teleop', 'invalid': 'invalid_teleop', 'stale_command': 'stale_teleop'}


def _unusable(command: Command | None, age_s: float, timeout_s: float) -> str | None:
    """Why a source's latest command cannot be obeyed, or None when it can."""
    if command is None:
        return 'no_command'
    if not command.is_finite:
        return 'invalid'
    if age_s > timeout_s:
        return 'stale_command'
    return None


def _approach(current: float, target: float, max_increase: float) -> float:
    """Move from `current` to `target`, limiting growth of |value| to `max_increase`; shrinking is free."""
    if abs(target) <= abs(current) and (target == 0.0 or math.copysign(1.0, target) == math.copysign(1.0, current)):
        return target
    if current != 0.0 and math.copysign(1.0, target) != math.copysign(1.0, current):
        current = 0.0  # reversing direction passes through zero at once
    step = min(abs(target) - abs(current), max_increase)
    return math.copysign(abs(current) + step, target)
