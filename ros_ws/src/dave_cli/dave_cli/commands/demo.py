"""Run the whole stack in closed loop in the simulator and report the driving metrics.

Starts launch/sim.launch.yaml (MuJoCo simulator + steering ConvNet + command governor) headless,
waits until the truck receives its first command, measures for DURATION seconds, stops
everything and prints the contract's metrics (distance_m, collisions, rates, latency...).
DDS stays on this host (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) in its own ROS domain.

examples:
  dave demo                               one minute in world 0
  dave demo --duration 20 --seed 3 --json out/demo.json
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

STARTUP_TIMEOUT_S = 90.0  # model loading + first renders on a busy 2-core machine


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--duration', type=float, default=60.0, metavar='S',
                        help='seconds of closed-loop driving to measure (default: 60)')
    parser.add_argument('--json', type=Path, default=None, metavar='PATH',
                        help='also write the metrics as a flat JSON object (atomically)')
    parser.add_argument('--seed', type=int, default=0, help='world seed (default: 0)')
    parser.add_argument('--model-dir', type=Path, default=None,
                        help='directory with steering.onnx + steering.json (default: the shipped models/)')
    parser.add_argument('--launch', type=Path, default=None, metavar='FILE',
                        help='launch file to run (default: launch/sim.launch.yaml of this checkout)')
    parser.add_argument('--domain-id', type=int, default=None,
                        help='ROS_DOMAIN_ID for this run (default: $ROS_DOMAIN_ID, else one derived from the pid)')
    parser.add_argument('--quiet', action='store_true', help="do not show the nodes' output")


def run(args: argparse.Namespace) -> int:
    if not args.duration > 0:
        print(f'dave demo: error: --duration must be > 0, got {args.duration}', file=sys.stderr)
        return 2
    domain_id = args.domain_id
    if domain_id is None:
        domain_id = int(os.environ.get('ROS_DOMAIN_ID', 1 + os.getpid() % 100))
    from dave_core.rosenv import apply_ros_env
    apply_ros_env(domain_id=domain_id, force_localhost=True)

    from dave_core.launch import LaunchError, LaunchRunner, RunnerConfig, load_launch_file
    from dave_core.metrics import write_json_atomic
    from dave_core.paths import project_file
    try:
        launch_file = args.launch or project_file('launch/sim.launch.yaml')
        launch_args = {'seed': str(args.seed)}
        if args.model_dir is not None:
            launch_args['model_dir'] = str(args.model_dir.resolve())
        description = load_launch_file(launch_file, launch_args)
    except (LaunchError, FileNotFoundError, ValueError) as error:
        print(f'dave demo: error: {error}', file=sys.stderr)
        return 2

    import rclpy
    from dave_nodes.stack_monitor import StackMonitor

    sink = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    print(f'dave demo: world seed {args.seed}, ROS_DOMAIN_ID={domain_id}, '
          f'{args.duration:.0f} s of driving', flush=True)
    with rclpy.init(args=[]):
        monitor = StackMonitor()
        runner = LaunchRunner(description, RunnerConfig(domain_id=domain_id, force_localhost=True),
                              sink=sink)
        try:
            runner.start()
            failure = _drive(monitor, runner, args.duration)
        except KeyboardInterrupt:
            failure = 'interrupted'
        finally:
            if monitor.measuring:
                monitor.stop_window()
            runner.stop()
            monitor.destroy_node()

    metrics = monitor.recorder.metrics()
    metrics['seed'] = args.seed
    _print_metrics(metrics)
    if args.json is not None:
        print(f'dave demo: metrics written to {write_json_atomic(args.json, metrics)}')
    if failure:
        print(f'dave demo: error: {failure}', file=sys.stderr)
        return 1
    if metrics['distance_m'] < 0.1:
        print('dave demo: error: the vehicle did not move', file=sys.stderr)
        return 1
    return 0


def _drive(monitor, runner, duration_s: float) -> str | None:
    """Spin the monitor through start-up and the measured window; return a failure or None."""
    import rclpy
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while monitor.first_command_s is None:
        rclpy.spin_once(monitor, timeout_sec=0.1)
        if runner.wait(timeout=0) is not None:
            return f'the stack stopped during start-up ({_exits(runner)})'
        if time.monotonic() > deadline:
            return f'no driving command within {STARTUP_TIMEOUT_S:.0f} s of start-up'
    monitor.start_window()
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        rclpy.spin_once(monitor, timeout_sec=0.1)
        if runner.wait(timeout=0) is not None:
            monitor.stop_window()
            return f'the stack stopped while driving ({_exits(runner)})'
    monitor.stop_window()
    return None


def _exits(runner) -> str:
    return ', '.join(f'{e.label} exited with {e.returncode}' for e in runner.exits) or 'no exit recorded'


def _print_metrics(metrics: dict) -> None:
    print('\nclosed-loop metrics')
    width = max(len(k) for k in metrics)
    for key in sorted(metrics):
        print(f'  {key:<{width}}  {metrics[key]}')
