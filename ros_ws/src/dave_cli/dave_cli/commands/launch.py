"""Run a ROS 2 YAML launch file here, without ros2 launch.

The file is a standard launch/*.launch.yaml (it also works with `ros2 launch`); launch
arguments are given as name:=value. Every output line is prefixed with [process-N].
Ctrl-C stops the processes in order (SIGINT, then SIGTERM and SIGKILL after the grace
periods); a second Ctrl-C kills them at once. The exit code is 0 after Ctrl-C, or the
exit status of an `on_exit: shutdown` process whose exit ended the launch.

examples:
  dave launch launch/sim.launch.yaml seed:=3
  dave launch launch/sim.launch.yaml --show        print the processes, run nothing
  dave launch launch/sim.launch.yaml --show-args   list the launch arguments
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from datetime import datetime
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('file', type=Path, help='a *.launch.yaml file')
    parser.add_argument('launch_arguments', nargs='*', metavar='name:=value',
                        help='launch arguments, overriding the defaults of its arg entries')
    parser.add_argument('--show', action='store_true',
                        help='print the resolved processes, one line each, and exit')
    parser.add_argument('-s', '--show-args', action='store_true',
                        help="list the file's launch arguments and exit")
    parser.add_argument('--grace', type=_seconds, default=5.0, metavar='S',
                        help='seconds from SIGINT to SIGTERM when stopping (default: 5)')
    parser.add_argument('--kill-after', type=_seconds, default=5.0, metavar='S',
                        help='seconds from SIGTERM to SIGKILL (default: 5)')
    parser.add_argument('--log-dir', type=Path, default=None,
                        help='where launch.log (output: log) goes '
                             '(default: a new directory under $ROS_LOG_DIR or ~/.ros/log)')


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number of seconds >= 0')
    return value


def run(args: argparse.Namespace) -> int:
    from dave_core.launch import (LaunchError, LaunchRunner, RunnerConfig, declared_arguments,
                                  load_launch_file, parse_launch_arguments)
    try:
        if args.show_args:
            _print_arguments(declared_arguments(args.file))
            return 0
        description = load_launch_file(args.file, parse_launch_arguments(args.launch_arguments))
        if args.show:
            for line in description.describe():
                print(line)
            return 0
        config = RunnerConfig(sigterm_timeout=args.grace, sigkill_timeout=args.kill_after,
                              log_dir=args.log_dir or _default_log_dir())
    except LaunchError as error:
        print(f'dave launch: error: {error}', file=sys.stderr)
        return 2

    handler = _stdout_log_handler()
    runner = LaunchRunner(description, config, sink=_print_line)
    signals_seen = 0

    def on_signal(signum: int, frame: object) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            runner.request_stop(f'received {signal.Signals(signum).name}')
        else:
            runner.kill()

    previous = {signum: signal.signal(signum, on_signal)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        runner.start()
        code = None
        while code is None:
            code = runner.wait(0.5)
        return code
    except LaunchError as error:
        print(f'dave launch: error: {error}', file=sys.stderr)
        return 2
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        logging.getLogger('dave_core.launch').removeHandler(handler)


def _print_line(line: object) -> None:
    try:
        sys.stdout.write(f'{line}\n')
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass  # a closed terminal or pipe must not stop the launch


def _stdout_log_handler() -> logging.Handler:
    """Runner messages on stdout, in ros2 launch's `[INFO] [name]: text` form, in order
    with the processes' lines."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter('[%(levelname)s] %(message)s'))
    logger = logging.getLogger('dave_core.launch')
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def _default_log_dir() -> Path:
    """Like ros2 launch: $ROS_LOG_DIR, else $ROS_HOME/log, else ~/.ros/log; one dir per run."""
    if os.environ.get('ROS_LOG_DIR'):
        root = Path(os.environ['ROS_LOG_DIR'])
    elif os.environ.get('ROS_HOME'):
        root = Path(os.environ['ROS_HOME']) / 'log'
    else:
        root = Path.home() / '.ros' / 'log'
    stamp = datetime.now().strftime('%Y-%m-%d-%H-%M-%S-%f')
    return root / f'{stamp}-{socket.gethostname()}-{os.getpid()}'


def _print_arguments(arguments: list) -> None:
    from dave_core.launch.substitutions import render
    if not arguments:
        print('No arguments.')
        return
    print("Arguments (pass arguments as '<name>:=<value>'):\n")
    for argument in arguments:
        print(f"    '{argument.name}':")
        print(f"        {argument.description or 'no description given'}")
        if argument.choices:
            print(f"        Valid choices are: {', '.join(argument.choices)}")
        if argument.default is None:
            print('        (required)\n')
        else:
            print(f"        (default: '{render(argument.default)}')\n")
