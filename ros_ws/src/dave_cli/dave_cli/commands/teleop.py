"""Drive by hand with the keyboard or a gamepad: publishes /teleop/cmd_vel, /dave/mode, /dave/estop.

The command node obeys /teleop/cmd_vel in mode manual; in mode shared any non-zero command
overrides the autopilot (an intervention) until it has been zero for 1 s; mode auto ignores it.
Stop with q or Ctrl-C: a zero command is published first.

    dave teleop                                   # keyboard, in this terminal
    dave teleop --device gamepad --joystick /dev/input/js1 --max-speed 0.5
"""
from __future__ import annotations

import argparse
import os
import sys
import termios

from dave_cli.child import run_child
from dave_core.rosenv import ros_env
from dave_core.teleop import KEYBOARD_HELP, KEYBOARD_NEEDS_TTY, GamepadMapping, TeleopConfig

DEFAULTS = TeleopConfig()
# --device -> the help printed once at start
HELP = {'keyboard': KEYBOARD_HELP, 'gamepad': GamepadMapping().help()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--device', choices=sorted(HELP), default='keyboard',
                        help='input device (default: keyboard, this terminal)')
    parser.add_argument('--joystick', default='/dev/input/js0', metavar='PATH',
                        help='gamepad: Linux joystick device (default: /dev/input/js0)')
    parser.add_argument('--max-speed', type=float, default=DEFAULTS.max_speed_mps, metavar='MPS',
                        help=f'full forward speed [m/s] (default: {DEFAULTS.max_speed_mps}, '
                             'the cruise speed)')
    parser.add_argument('--max-yaw-rate', type=float, default=DEFAULTS.max_yaw_rate_rps, metavar='RPS',
                        help=f'full yaw rate [rad/s] (default: {DEFAULTS.max_yaw_rate_rps})')
    parser.add_argument('--rate', type=float, default=DEFAULTS.rate_hz, metavar='HZ',
                        help=f'/teleop/cmd_vel publish rate [Hz] (default: {DEFAULTS.rate_hz:g})')
    parser.add_argument('--mode', choices=('manual', 'shared', 'auto'), default=None,
                        help='switch the stack to this mode at start (default: leave it as it is)')


def node_command(args: argparse.Namespace, status_line: bool = False) -> list[str]:
    """The command line that starts the teleop node with these arguments."""
    params = [f'device:={args.device}', f'joystick:={args.joystick}',
              f'max_speed_mps:={float(args.max_speed)}', f'max_yaw_rate_rps:={float(args.max_yaw_rate)}',
              f'rate_hz:={float(args.rate)}', f'status_line:={"true" if status_line else "false"}']
    if args.mode:  # an empty value does not parse as a ROS argument; the default is empty
        params.append(f'initial_mode:={args.mode}')
    command = [sys.executable, '-m', 'dave_nodes.teleop_node', '--ros-args']
    for param in params:
        command += ['-p', param]
    return command


def run(args: argparse.Namespace) -> int:
    try:
        TeleopConfig(max_speed_mps=args.max_speed, max_yaw_rate_rps=args.max_yaw_rate, rate_hz=args.rate)
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    keyboard = args.device == 'keyboard'
    if keyboard and not sys.stdin.isatty():
        print(f'error: {KEYBOARD_NEEDS_TTY}', file=sys.stderr)
        return 2
    if not keyboard and not os.path.exists(args.joystick):
        print(f'error: gamepad {args.joystick}: no such device (is it plugged in? ls /dev/input/js*)',
              file=sys.stderr)
        return 2
    print(HELP[args.device], flush=True)
    # Keys typed while the node starts must not echo; and should the node die without restoring
    # the terminal (kill -9), it is restored here.
    saved = _no_echo(sys.stdin.fileno()) if keyboard else None
    # The child inherits this terminal (the keyboard). SIGINT is not forwarded: a second one would
    # cut short the node's zero command on exit.
    try:
        return run_child(node_command(args, status_line=keyboard and sys.stderr.isatty()), ros_env())
    finally:
        _restore(sys.stdin.fileno(), saved)


def _no_echo(fd: int) -> list | None:
    """Turn off echo and line buffering on terminal `fd`; return its previous settings."""
    try:
        saved = termios.tcgetattr(fd)
        attrs = termios.tcgetattr(fd)
        attrs[3] &= ~(termios.ICANON | termios.ECHO)
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except termios.error:
        return None
    return saved


def _restore(fd: int, saved: list | None) -> None:
    if saved is not None:
        try:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        except termios.error:
            pass  # the terminal is gone
