"""Steering labels from a human driver: which frames a person drove, and with what command.

DAVE learned from a person driving by radio. In a `dave record` bag of a teleoperated vehicle
the person's command is /teleop/cmd_vel; it is what the vehicle did only while the person was
in charge: mode `manual`, or an intervention (/dave/intervention true) in mode `shared`.
Frames the autopilot drove are not labels (they would teach the network its own output).

Everything is matched on the recorder's receive times (the bag's log times), one clock for all
topics, never on header stamps: the teleop laptop's and the camera's clocks need not agree. A
frame's label is the newest teleop command received at or before the frame, if it is at most
`max_age_ns` old (the command node stops the vehicle after the same 0.5 s of silence).
Events are fed in receive-time order, as a bag is read, so a bag streams through once.
"""
from __future__ import annotations

import math

from dave_core.command import parse_mode

# The command node's own default (`initial_mode`) when no /dave/mode was ever recorded.
DEFAULT_MODE = 'auto'
MAX_AGE_NS = 500_000_000
# Why a frame has no label (counted per bag by the dataset builder).
AUTOPILOT = 'autopilot'  # the autopilot drove it, or the vehicle was e-stopped
STALE = 'stale'  # the person was in charge but sent no fresh command


class HumanDriver:
    """Who drives at each instant of a recording, and the person's command (module docstring)."""

    def __init__(self, default_mode: str = DEFAULT_MODE, max_age_ns: int = MAX_AGE_NS) -> None:
        self._mode = parse_mode(default_mode)
        self._intervening = False
        self._command: tuple[float, float] | None = None
        self._command_ns = -math.inf
        self.max_age_ns = int(max_age_ns)

    def mode(self, mode: str) -> None:
        """A /dave/mode message; ValueError names an unknown mode."""
        self._mode = parse_mode(mode)

    def intervention(self, intervening: bool) -> None:
        """A /dave/intervention message."""
        self._intervening = bool(intervening)

    def teleop(self, time_ns: int, speed_mps: float, yaw_rate_rps: float) -> None:
        """A /teleop/cmd_vel message received at `time_ns`."""
        self._command = (float(speed_mps), float(yaw_rate_rps))
        self._command_ns = time_ns

    def label(self, time_ns: int) -> tuple[float, float] | str:
        """The person's (v [m/s], w [rad/s]) for a frame received at `time_ns`, else why not (AUTOPILOT, STALE)."""
        human = self._mode == 'manual' or (self._mode == 'shared' and self._intervening)
        if not human:
            return AUTOPILOT
        if self._command is None or time_ns - self._command_ns > self.max_age_ns:
            return STALE
        return self._command
