"""Teleop node: a human drives with the keyboard or a gamepad; publishes /teleop/cmd_vel.

The command (geometry_msgs/TwistStamped, base_link) goes out at `rate_hz` the whole time the
node runs, so the command node can tell a silent teleop (stop after 0.5 s) from a zero one. Mode
switches go to /dave/mode (latched), e-stop requests to /dave/estop. Input is polled from the
timer without blocking: the terminal (stdin in cbreak mode, restored on every exit) or a Linux
joystick device (/dev/input/jsN, non-blocking). On exit a zero command is published first.

    python -m dave_nodes.teleop_node --ros-args -p device:=gamepad -p joystick:=/dev/input/js1
"""
from __future__ import annotations

import os
import select
import sys
import termios
import threading
import time
from dataclasses import dataclass, field

from geometry_msgs.msg import TwistStamped
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from std_msgs.msg import Bool, String

from dave_core.command import MODES, STOP, Command
from dave_core.teleop import (KEYBOARD_NEEDS_TTY, Gamepad, GamepadMapping, Keyboard,
                              KeyDecoder, Quit, Request, SetEstop, SetMode, TeleopConfig,
                              parse_joystick_events, status_text)
from dave_nodes.params import declare_from_dataclass
from dave_nodes.runtime import NodeStartupError, run_node_with_exit

# Commands: reliable, depth 1 — only the newest command matters and it must not be dropped.
COMMAND_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
# Mode: latched, so a node started later (or restarted) still learns the current mode.
MODE_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                      durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
# E-stop: reliable and volatile like the command node's subscription; the latch lives there.
ESTOP_QOS = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)

REOPEN_PERIOD_S = 1.0  # how often a disconnected gamepad is looked for again


@dataclass(frozen=True)
class TeleopNodeConfig(TeleopConfig):
    device: str = field(default='keyboard', metadata={'description': 'input device: keyboard or gamepad'})
    joystick: str = field(default='/dev/input/js0', metadata={
        'description': 'gamepad: Linux joystick device (joystick API, /dev/input/jsN)'})
    initial_mode: str = field(default='', metadata={
        'description': 'mode published on /dave/mode at start (manual, auto, shared, estop); empty '
                       'leaves the mode as it is'})
    status_line: bool = field(default=False, metadata={
        'description': 'keyboard: show the command and mode on one self-overwriting terminal line'})
    gamepad: GamepadMapping = GamepadMapping()  # gamepad.* parameters

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.device not in DEVICES:
            raise ValueError(f'device must be one of {", ".join(DEVICES)}, got {self.device!r}')
        if self.initial_mode and self.initial_mode not in MODES:
            raise ValueError(f'initial_mode must be empty or one of {", ".join(MODES)}, '
                             f'got {self.initial_mode!r}')


class KeyboardInput:
    """The terminal as a keyboard: cbreak mode (no echo, no line buffering, Ctrl-C still a signal)."""

    def __init__(self, node: 'TeleopNode', fd: int) -> None:
        if not os.isatty(fd):
            raise NodeStartupError(KEYBOARD_NEEDS_TTY)
        self._fd = fd
        self._decoder = KeyDecoder()
        self.core = Keyboard(node.config)
        self._log = node.get_logger()
        self._saved = termios.tcgetattr(fd)
        attrs = termios.tcgetattr(fd)
        attrs[3] &= ~(termios.ICANON | termios.ECHO)
        attrs[6][termios.VMIN], attrs[6][termios.VTIME] = 1, 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)

    def poll(self) -> list[Request]:
        requests: list[Request] = []
        while select.select([self._fd], [], [], 0.0)[0]:
            try:
                data = os.read(self._fd, 1024)
            except OSError as exc:  # EIO: the terminal hung up
                data, reason = b'', exc.strerror
            else:
                reason = 'end of input'
            if not data:
                self._log.error(f'keyboard: {reason}; stopping')
                return requests + [Quit()]
            for key in self._decoder.feed(data):
                requests += self.core.press(key)
        return requests

    @property
    def command(self) -> Command:
        return self.core.command

    def close(self) -> None:
        try:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        except termios.error:
            pass  # the terminal is gone; nothing left to restore


class GamepadInput:
    """A Linux joystick device, read without blocking; reopened after a disconnection."""

    def __init__(self, node: 'TeleopNode', path: str) -> None:
        self._path = path
        self._log = node.get_logger()
        self.core = Gamepad(node.config, node.config.gamepad)
        self._fd: int | None = None
        self._partial = b''
        self._next_open_s = 0.0
        try:
            self._open()
        except OSError as exc:
            raise NodeStartupError(
                f'gamepad {path}: {exc.strerror} (plugged in, and readable by you: the input group? '
                f'ls -l /dev/input/js*; another one: --joystick PATH)') from None

    def _open(self) -> None:
        self._fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK)
        self._partial = b''
        self.core.connect()

    def poll(self) -> list[Request]:
        if self._fd is None:
            # Wall time, not the node's clock: with use_sim_time and no /clock it would never advance.
            now_s = time.monotonic()
            if now_s < self._next_open_s:
                return []
            self._next_open_s = now_s + REOPEN_PERIOD_S
            try:
                self._open()
            except OSError:
                return []
            self._log.warning(f'gamepad {self._path}: open again; hold the deadman button to drive')
        requests: list[Request] = []
        while True:
            try:
                data = os.read(self._fd, 64 * 8)
            except BlockingIOError:
                return requests
            except OSError as exc:  # ENODEV: unplugged
                self._disconnect(exc.strerror)
                return requests
            if not data:
                self._disconnect('end of input')
                return requests
            events, self._partial = parse_joystick_events(self._partial + data)
            for event in events:
                requests += self.core.feed(event)

    def _disconnect(self, reason: str) -> None:
        self.core.disconnect()
        self.close()
        self._next_open_s = time.monotonic() + REOPEN_PERIOD_S
        self._log.error(f'gamepad {self._path} lost ({reason}): publishing zero commands until it is back')

    @property
    def command(self) -> Command:
        return self.core.command

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _stdin_fd() -> int:
    try:
        return sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):  # no stdin at all (closed, or None)
        raise NodeStartupError(KEYBOARD_NEEDS_TTY) from None


# device parameter -> how to open it
DEVICES = {
    'keyboard': lambda node: KeyboardInput(
        node, _stdin_fd() if node.keyboard_fd is None else node.keyboard_fd),
    'gamepad': lambda node: GamepadInput(node, node.config.joystick),
}


class TeleopNode(Node):
    def __init__(self, keyboard_fd: int | None = None, stop: threading.Event | None = None,
                 **node_kwargs) -> None:
        super().__init__('teleop', **node_kwargs)
        self.config = declare_from_dataclass(self, TeleopNodeConfig)
        self.keyboard_fd = keyboard_fd  # None: stdin
        self._quit_requested = False
        self._stop = stop or threading.Event()  # set by a signal (run_node_with_exit)
        self._estop = False
        self._mode = self.config.initial_mode
        self._status = ''
        self._cmd_pub = self.create_publisher(TwistStamped, '/teleop/cmd_vel', COMMAND_QOS)
        self._mode_pub = self.create_publisher(String, '/dave/mode', MODE_QOS)
        self._estop_pub = self.create_publisher(Bool, '/dave/estop', ESTOP_QOS)
        # The mode anyone set (another teleop, a launch file): shown on the status line.
        self.create_subscription(String, '/dave/mode', self._on_mode, MODE_QOS)
        self._handlers = {SetMode: self._set_mode, SetEstop: self._set_estop, Quit: self._quit}
        self._show_status = self.config.status_line and self.config.device == 'keyboard'
        self.input = DEVICES[self.config.device](self)  # last: the terminal changes mode here
        try:
            if self.config.initial_mode:
                self._set_mode(SetMode(self.config.initial_mode))
            self.create_timer(1.0 / self.config.rate_hz, self._on_timer)
        except BaseException:
            self.input.close()
            raise

    def _on_timer(self) -> None:
        if self.done:
            return
        for request in self.input.poll():
            self._handlers[type(request)](request)
            if self.done:
                return  # the zero command on exit comes from stop()
        self._publish(self.input.command)
        self._update_status()

    def _publish(self, command: Command) -> None:
        msg = TwistStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = 'base_link'
        msg.twist.linear.x = float(command.linear_mps)
        msg.twist.angular.z = float(command.angular_rps)
        self._cmd_pub.publish(msg)

    def _set_mode(self, request: SetMode) -> None:
        self._mode_pub.publish(String(data=request.mode))
        self._log_event(f'mode -> {request.mode}')

    def _set_estop(self, request: SetEstop) -> None:
        self._estop = request.engaged
        self._estop_pub.publish(Bool(data=request.engaged))
        self._log_event('e-stop engaged' if request.engaged else 'e-stop released')

    def _quit(self, request: Quit) -> None:
        self._quit_requested = True

    @property
    def done(self) -> bool:
        """The user quit (q, Ctrl-C key) or a signal arrived: time for `stop`."""
        return self._quit_requested or self._stop.is_set()

    def _on_mode(self, msg: String) -> None:
        self._mode = msg.data

    def _log_event(self, text: str) -> None:
        # With the status line the terminal already shows it; a log line would break the line.
        (self.get_logger().debug if self._show_status else self.get_logger().info)(text)

    def _update_status(self) -> None:
        if not self._show_status:
            return
        text = status_text(self.input.command, self._mode, self._estop)
        if text != self._status:
            self._status = text
            sys.stderr.write(f'\r{text}\x1b[K')
            sys.stderr.flush()

    def stop(self) -> None:
        """Publish one zero command and give it a moment to be delivered; restore the device."""
        try:
            if self.context.ok():  # else nothing can be published any more
                self._publish(STOP)
                self._cmd_pub.wait_for_all_acked(Duration(seconds=0.5))
        finally:
            self.input.close()
            if self._status:
                sys.stderr.write('\n')
                sys.stderr.flush()

    def destroy_node(self) -> None:
        if hasattr(self, 'input'):  # absent when the constructor failed
            self.input.close()
        super().destroy_node()


def _finish(node: TeleopNode) -> int:
    node.stop()
    return 0


def main(args: list[str] | None = None) -> int:
    # A signal (or q) ends the spin; the zero command goes out with ROS still up.
    return run_node_with_exit(lambda stop: TeleopNode(stop=stop), _finish, args)


if __name__ == '__main__':
    raise SystemExit(main())
