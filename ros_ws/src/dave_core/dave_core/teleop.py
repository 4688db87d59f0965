"""Human driving: keyboard and gamepad input turned into velocity commands and mode requests.

Pure logic, no ROS and no I/O: the teleop node reads the terminal or the joystick device and
feeds bytes / events here; what comes back is the command to publish (`Command`, REP-103:
forward m/s, yaw rad/s, positive = turn left) and the requests the user made (`SetMode`,
`SetEstop`, `Quit`).

Keyboard (sticky, like teleop_twist_keyboard): a key changes the command and it stays until the
next key. Gamepad (Linux joystick API, /dev/input/jsN): the sticks give the command only while
the deadman button is held, as in teleop_twist_joy.
"""
from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from dave_core.command import STOP, Command
KEYBOARD_NEEDS_TTY = ('keyboard teleop needs a terminal (stdin is not a TTY); run `dave teleop` in a '
                      'terminal, or use --device gamepad')


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0.0):
        raise ValueError(f'{name} must be a positive finite number, got {value!r}')


@dataclass(frozen=True)
class TeleopConfig:
    """Command limits and rates of teleoperation, shared by both devices."""

    max_speed_mps: float = field(default=0.8, metadata={
        'description': 'full forward speed (keyboard top speed, gamepad stick fully up) [m/s]; '
                       '0.8 is the stack\'s cruise speed'})
    max_reverse_mps: float = field(default=0.3, metadata={
        'description': 'full reverse speed [m/s] (0 forbids reversing)'})
    max_yaw_rate_rps: float = field(default=1.5, metadata={
        'description': 'full yaw rate [rad/s]'})
    speed_step_mps: float = field(default=0.1, metadata={
        'description': 'keyboard: speed change per w/s (Up/Down) press [m/s]'})
    yaw_step_rps: float = field(default=0.25, metadata={
        'description': 'keyboard: yaw rate change per a/d (Left/Right) press [rad/s]'})
    rate_hz: float = field(default=20.0, metadata={
        'description': 'rate /teleop/cmd_vel is published at, whatever the input does [Hz] (1..200)'})

    def __post_init__(self) -> None:
        for name in ('max_speed_mps', 'max_yaw_rate_rps', 'speed_step_mps', 'yaw_step_rps'):
            _positive(name, getattr(self, name))
        if not (math.isfinite(self.max_reverse_mps) and self.max_reverse_mps >= 0.0):
            raise ValueError(f'max_reverse_mps must be >= 0, got {self.max_reverse_mps!r}')
        # Below 1 Hz the command node's 0.5 s silence timeout stops the vehicle between messages.
        if not (math.isfinite(self.rate_hz) and 1.0 <= self.rate_hz <= 200.0):
            raise ValueError(f'rate_hz must be in [1, 200] Hz, got {self.rate_hz!r}')
        if self.speed_step_mps > self.max_speed_mps:
            raise ValueError(f'speed_step_mps ({self.speed_step_mps}) must not exceed max_speed_mps '
                             f'({self.max_speed_mps})')
        if self.yaw_step_rps > self.max_yaw_rate_rps:
            raise ValueError(f'yaw_step_rps ({self.yaw_step_rps}) must not exceed max_yaw_rate_rps '
                             f'({self.max_yaw_rate_rps})')


# What the user asked for besides the command; the node maps each type to a topic.
@dataclass(frozen=True)
class SetMode:
    mode: str  # one of dave_core.command.MODES


@dataclass(frozen=True)
class SetEstop:
    engaged: bool


@dataclass(frozen=True)
class Quit:
    pass


Request = SetMode | SetEstop | Quit


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


# ---------------------------------------------------------------------------------------------
# Keyboard

# Raw terminal input -> key name. Arrow keys arrive as ANSI sequences (ESC [ A), also in the
# application-cursor form some terminals use (ESC O A).
KEY_SEQUENCES: dict[bytes, str] = {
    b'\x1b[A': 'up', b'\x1b[B': 'down', b'\x1b[C': 'right', b'\x1b[D': 'left',
    b'\x1bOA': 'up', b'\x1bOB': 'down', b'\x1bOC': 'right', b'\x1bOD': 'left',
    b'\x03': 'ctrl-c',
}

# Key name -> action name; letters in either case.
KEY_BINDINGS: dict[str, str] = {
    'w': 'faster', 'up': 'faster',
    's': 'slower', 'down': 'slower',
    'a': 'left', 'left': 'left',
    'd': 'right', 'right': 'right',
    ' ': 'stop', 'x': 'stop',
    '1': 'manual', '2': 'shared', '3': 'auto',
    'e': 'estop', 'r': 'release',
    'q': 'quit', 'ctrl-c': 'quit',
}

KEYBOARD_HELP = """\
dave teleop (keyboard) -- publishes /teleop/cmd_vel
  w / Up      faster (sticky)         s / Down    slower, then reverse
  a / Left    turn more left          d / Right   turn more right
  space / x   stop (zero command)
  1 manual    2 shared (any non-zero command overrides the autopilot)    3 auto
  e           e-stop (latched, also zeroes the command)     r   release e-stop
  q / Ctrl-C  quit (publishes a zero command first)"""


class KeyDecoder:
    """Turns raw terminal bytes into key names, keeping escape sequences split across reads.

    A whole escape sequence is consumed even when unbound (Ctrl-Up is ESC [ 1 ; 5 A), so its
    bytes never read as letters ('a' = turn left).
    """

    def __init__(self) -> None:
        self._pending = b''

    def feed(self, data: bytes) -> list[str]:
        """Key names completed by `data`; an unfinished escape sequence waits for the next read."""
        buf = self._pending + data
        keys: list[str] = []
        i = 0
        while i < len(buf):
            if buf[i] == 0x1b:
                end = _escape_end(buf, i)
                if end is None:
                    break  # cut by the read: keep it for the next one
                keys.append(KEY_SEQUENCES.get(buf[i:end], 'escape'))
                i = end
                continue
            byte = buf[i:i + 1]
            keys.append(KEY_SEQUENCES.get(byte) or byte.decode('latin-1').lower())
            i += 1
        self._pending = buf[i:]
        return keys

    def flush(self) -> list[str]:
        """Keys still pending (a lone ESC the terminal will not complete)."""
        pending, self._pending = self._pending, b''
        return ['escape'] if pending else []


def _escape_end(buf: bytes, i: int) -> int | None:
    """End of the escape sequence starting at buf[i] (ESC), or None if `buf` ends inside it."""
    if i + 1 >= len(buf):
        return None
    introducer = buf[i + 1]
    if introducer == ord('O'):  # SS3: ESC O <final>
        return i + 3 if i + 2 < len(buf) else None
    if introducer != ord('['):
        return i + 1  # a lone ESC (the next byte is a key of its own)
    # CSI: ESC [ parameter bytes 0x30-0x3f, intermediate bytes 0x20-0x2f, one final byte 0x40-0x7e.
    j = i + 2
    while j < len(buf) and 0x20 <= buf[j] <= 0x3f:
        j += 1
    if j >= len(buf):
        return None
    return j + 1 if 0x40 <= buf[j] <= 0x7e else j


@dataclass
class KeyboardState:
    speed_mps: float = 0.0
    yaw_rps: float = 0.0


class Keyboard:
    """Sticky keyboard teleop: each key press adjusts the held command or makes a request."""

    def __init__(self, config: TeleopConfig = TeleopConfig()) -> None:
        self.config = config
        self.state = KeyboardState()
        c = config
        # Action name -> what it does; a request-making action returns the request.
        self._actions: dict[str, Callable[[], Request | None]] = {
            'faster': lambda: self._add(c.speed_step_mps, 0.0),
            'slower': lambda: self._add(-c.speed_step_mps, 0.0),
            'left': lambda: self._add(0.0, c.yaw_step_rps),
            'right': lambda: self._add(0.0, -c.yaw_step_rps),
            'stop': self._zero,
            'manual': lambda: SetMode('manual'),
            'shared': lambda: SetMode('shared'),
            'auto': lambda: SetMode('auto'),
            'estop': lambda: self._zero() or SetEstop(True),
            'release': lambda: SetEstop(False),
            'quit': lambda: self._zero() or Quit(),
        }

    @property
    def command(self) -> Command:
        return Command(self.state.speed_mps, self.state.yaw_rps)

    def press(self, key: str) -> list[Request]:
        """Apply one key (a name from KeyDecoder); unbound keys are ignored."""
        action = KEY_BINDINGS.get(key)
        if action is None:
            return []
        request = self._actions[action]()
        return [] if request is None else [request]

    def _add(self, d_speed: float, d_yaw: float) -> None:
        c = self.config
        # Rounded so ten presses of 0.1 give 1.0, not 0.9999999999999999, and zero is exact.
        self.state.speed_mps = round(_clamp(self.state.speed_mps + d_speed, -c.max_reverse_mps,
                                            c.max_speed_mps), 9)
        self.state.yaw_rps = round(_clamp(self.state.yaw_rps + d_yaw, -c.max_yaw_rate_rps,
                                          c.max_yaw_rate_rps), 9)

    def _zero(self) -> None:
        self.state = KeyboardState()


# ---------------------------------------------------------------------------------------------
# Gamepad (Linux joystick API, linux/joystick.h: struct js_event)

JS_EVENT = struct.Struct('<IhBB')  # time [ms], value, type, number
JS_EVENT_BUTTON = 0x01
JS_EVENT_AXIS = 0x02
JS_EVENT_INIT = 0x80  # synthetic events the driver sends on open, describing the current state
AXIS_MAX = 32767


@dataclass(frozen=True)
class JoystickEvent:
    time_ms: int
    value: int  # axis: -32767..32767 (up / left negative); button: 1 pressed, 0 released
    kind: int  # JS_EVENT_BUTTON or JS_EVENT_AXIS
    number: int
    init: bool = False


def parse_joystick_events(data: bytes) -> tuple[list[JoystickEvent], bytes]:
    """Decode whole 8-byte js_event records; return them and the bytes of an unfinished one."""
    n = len(data) - len(data) % JS_EVENT.size
    events = []
    for time_ms, value, kind, number in JS_EVENT.iter_unpack(data[:n]):
        events.append(JoystickEvent(time_ms, value, kind & ~JS_EVENT_INIT, number,
                                    bool(kind & JS_EVENT_INIT)))
    return events, data[n:]


def encode_joystick_event(event: JoystickEvent) -> bytes:
    """The driver's bytes for `event` (for tests and replay)."""
    kind = event.kind | (JS_EVENT_INIT if event.init else 0)
    return JS_EVENT.pack(event.time_ms, event.value, kind, event.number)


@dataclass(frozen=True)
class GamepadMapping:
    """Axis and button numbers of the Linux xpad driver (Xbox 360 / One / Series, Logitech F710 in
    X mode): axes 0 LX, 1 LY, 2 LT, 3 RX, 4 RY, 5 RT; buttons 0 A, 1 B, 2 X, 3 Y, 4 LB, 5 RB,
    6 Back, 7 Start. teleop_twist_joy's xbox config uses the same deadman (LB, button 4) and speed
    axis (left stick vertical, 1) but steers with the left stick too (yaw_axis 0); we default to
    the right stick like an RC car so speed and steering never disturb each other."""

    speed_axis: int = field(default=1, metadata={'description': 'axis for speed (1: left stick vertical)'})
    yaw_axis: int = field(default=3, metadata={
        'description': 'axis for yaw rate (3: right stick horizontal; 0: left stick, as teleop_twist_joy)'})
    invert_speed: bool = field(default=True, metadata={
        'description': 'stick up reads negative on Linux; true makes up = forward'})
    invert_yaw: bool = field(default=True, metadata={
        'description': 'stick left reads negative on Linux; true makes left = positive yaw (REP-103)'})
    deadzone: float = field(default=0.1, metadata={
        'description': 'stick travel ignored around centre, fraction of full (0..0.9)'})
    deadman_button: int = field(default=4, metadata={
        'description': 'button that must be held for a non-zero command (4: LB)'})
    auto_button: int = field(default=0, metadata={'description': 'button selecting mode auto (0: A)'})
    estop_button: int = field(default=1, metadata={'description': 'button engaging the e-stop (1: B)'})
    manual_button: int = field(default=2, metadata={'description': 'button selecting mode manual (2: X)'})
    shared_button: int = field(default=3, metadata={'description': 'button selecting mode shared (3: Y)'})
    release_button: int = field(default=7, metadata={'description': 'button releasing the e-stop (7: Start)'})

    def __post_init__(self) -> None:
        numbers = {name: getattr(self, name) for name in (
            'speed_axis', 'yaw_axis', 'deadman_button', 'auto_button', 'estop_button',
            'manual_button', 'shared_button', 'release_button')}
        for name, value in numbers.items():
            if not 0 <= value <= 255:  # js_event.number is one byte
                raise ValueError(f'{name} must be in 0..255, got {value!r}')
        if self.speed_axis == self.yaw_axis:
            raise ValueError(f'speed_axis and yaw_axis must differ, both are {self.speed_axis}')
        buttons = [name for name in numbers if name.endswith('_button')]
        for i, a in enumerate(buttons):
            for b in buttons[i + 1:]:
                if numbers[a] == numbers[b]:
                    raise ValueError(f'{a} and {b} must differ, both are button {numbers[a]}')
        if not (math.isfinite(self.deadzone) and 0.0 <= self.deadzone <= 0.9):
            raise ValueError(f'deadzone must be in [0, 0.9], got {self.deadzone!r}')

    def help(self) -> str:
        return (f'dave teleop (gamepad) -- publishes /teleop/cmd_vel\n'
                f'  hold button {self.deadman_button} (LB) to drive; released = zero command\n'
                f'  axis {self.speed_axis} (left stick up/down) speed, '
                f'axis {self.yaw_axis} (right stick left/right) turn\n'
                f'  button {self.manual_button} (X) manual   {self.shared_button} (Y) shared   '
                f'{self.auto_button} (A) auto\n'
                f'  button {self.estop_button} (B) e-stop   {self.release_button} (Start) release e-stop\n'
                f'  Ctrl-C quits (publishes a zero command first)')


def apply_deadzone(value: float, deadzone: float) -> float:
    """Zero inside the deadzone, then rescaled so the output still spans 0..1 without a jump."""
    magnitude = abs(value)
    if magnitude <= deadzone:
        return 0.0
    return math.copysign(min(1.0, (magnitude - deadzone) / (1.0 - deadzone)), value)


class Gamepad:
    """Joystick state -> command and requests.

    The deadman counts only after a real (non-init) press seen since the device was (re)opened:
    a button held, stuck or mis-read at connection time must not start the vehicle.
    """

    def __init__(self, config: TeleopConfig = TeleopConfig(),
                 mapping: GamepadMapping = GamepadMapping()) -> None:
        self.config = config
        self.mapping = mapping
        m = mapping
        self._buttons: dict[int, Request] = {
            m.manual_button: SetMode('manual'), m.shared_button: SetMode('shared'),
            m.auto_button: SetMode('auto'), m.estop_button: SetEstop(True),
            m.release_button: SetEstop(False),
        }
        self.connected = False
        self._axes: dict[int, int] = {}
        self._deadman = False

    def connect(self) -> None:
        """The device was opened; its init events will describe the current state."""
        self._reset(connected=True)

    def disconnect(self) -> None:
        """The device is gone (read error, EOF): zero command until it is back."""
        self._reset(connected=False)

    def _reset(self, connected: bool) -> None:
        self.connected = connected
        self._axes.clear()
        self._deadman = False  # a new press is needed either way

    @property
    def deadman_held(self) -> bool:
        return self.connected and self._deadman

    def feed(self, event: JoystickEvent) -> list[Request]:
        """Apply one event; a button press (not an init event) may make a request."""
        if event.kind == JS_EVENT_AXIS:
            self._axes[event.number] = event.value
            return []
        if event.kind != JS_EVENT_BUTTON:
            return []
        pressed = event.value != 0
        if event.number == self.mapping.deadman_button:
            self._deadman = pressed and not event.init
            return []
        if pressed and not event.init and event.number in self._buttons:
            return [self._buttons[event.number]]
        return []

    def axis(self, number: int, invert: bool) -> float:
        """Axis `number` in -1..1 after the deadzone, sign-corrected."""
        raw = _clamp(self._axes.get(number, 0) / AXIS_MAX, -1.0, 1.0)
        return apply_deadzone(-raw if invert else raw, self.mapping.deadzone)

    @property
    def command(self) -> Command:
        if not self.deadman_held:
            return STOP
        m, c = self.mapping, self.config
        speed = self.axis(m.speed_axis, m.invert_speed)
        speed *= c.max_speed_mps if speed >= 0.0 else c.max_reverse_mps
        yaw = self.axis(m.yaw_axis, m.invert_yaw) * c.max_yaw_rate_rps
        return Command(speed + 0.0, yaw + 0.0)  # + 0.0: never publish -0.0


def status_text(command: Command, mode: str, estop: bool) -> str:
    """One line for the terminal: the held command, the stack's mode and the e-stop."""
    return (f'speed {command.linear_mps:+.2f} m/s  yaw {command.angular_rps:+.2f} rad/s  '
            f'mode {mode or "?"}  {"E-STOP" if estop else "e-stop off"}')
