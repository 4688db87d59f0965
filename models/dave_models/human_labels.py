"""Steering labels from a human driver: which frames a person drove, and with what command.

DAVE learned from a person driving by radio. In a `dave record` bag of a teleoperated vehicle
the person's command is /teleop/cmd_vel; it is what the vehicle did only while the person was in
charge, which the command node says on /dave/intervention (latched; true in mode manual and
during a takeover in mode shared; each recorded segment starts with its current value). Frames
the autopilot drove are not labels (they would teach the network its own output).

Everything is matched on the recorder's receive times (the bag's log times), one clock for all
topics, never on header stamps: the teleop laptop's and the camera's clocks need not agree. A
frame's label is the newest teleop command received at or before the frame, if it is at most
`max_age_ns` old (the command node stops the vehicle after the same 0.5 s of silence).
Events are fed in receive-time order, as a bag is read, so a bag streams through once.
"""
from __future__ import annotations

import math

MAX_AGE_NS = 500_000_000
# Why a frame has no label (counted per bag by the dataset builder).
AUTOPILOT = 'autopilot'  # the autopilot was in charge (or the vehicle e-stopped), or nobody said
STALE = 'stale'  # the person was in charge but sent no fresh command


class HumanDriver:
    """Who drives at each instant of a recording, and the person's command (module docstring)."""

    def __init__(self, max_age_ns: int = MAX_AGE_NS) -> None:
        self._person_in_charge = False  # until the recording says otherwise
        self._command: tuple[float, float] | None = None
        self._command_ns = -math.inf
        self.max_age_ns = int(max_age_ns)

    def intervention(self, person_in_charge: bool) -> None:
        """A /dave/intervention message."""
        self._person_in_charge = bool(person_in_charge)

    def teleop(self, time_ns: int, speed_mps: float, yaw_rate_rps: float) -> None:
        """A /teleop/cmd_vel message received at `time_ns`."""
        self._command = (float(speed_mps), float(yaw_rate_rps))
        self._command_ns = time_ns

    def label(self, time_ns: int) -> tuple[float, float] | str:
        """The person's (v [m/s], w [rad/s]) for a frame received at `time_ns`, else why not (AUTOPILOT, STALE)."""
        if not self._person_in_charge:
            return AUTOPILOT
        if self._command is None or time_ns - self._command_ns > self.max_age_ns:
            return STALE
        return self._command
