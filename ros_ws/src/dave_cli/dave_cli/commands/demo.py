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
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--duration', type=float, default=60.0, metavar='S',
                        help='seconds of closed-loop driving to measure (default: 60)')
    parser.add_argument('--json', type=Path, default=None, metavar='PATH',
                        help='also write the metrics as a flat JSON object (atomically)')
    parser.add_argument('--seed', type=int, default=0, help='world seed (default: 0)')
    add_stack_arguments(parser)


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Options `dave demo` and `dave eval` share."""
    parser.add_argument('--model-dir', type=Path, default=None,
                        help='directory with both networks: steering.onnx, traversability.onnx and their '
                             '.json sidecars (default: the shipped models/; eval --offline uses only '
                             'the steering pair)')
    parser.add_argument('--launch', type=Path, default=None, metavar='FILE',
                        help='launch file to run (default: launch/sim.launch.yaml of this checkout)')
    parser.add_argument('--domain-id', type=int, default=None,
                        help='ROS_DOMAIN_ID for this run (default: $ROS_DOMAIN_ID, else one derived from the pid)')
    parser.add_argument('--quiet', action='store_true', help="do not show the nodes' output")


def apply_domain(args: argparse.Namespace) -> int:
    """Choose the run's ROS domain and keep DDS on this host; returns the domain id."""
    domain_id = args.domain_id
    if domain_id is None:
        domain_id = int(os.environ.get('ROS_DOMAIN_ID', 1 + os.getpid() % 100))
    from dave_core.rosenv import apply_ros_env
    apply_ros_env(domain_id=domain_id, force_localhost=True)
    return domain_id


def run(args: argparse.Namespace) -> int:
    if not args.duration > 0:
        print(f'dave demo: error: --duration must be > 0, got {args.duration}', file=sys.stderr)
        return 2
    domain_id = apply_domain(args)
    from dave_cli.closed_loop import drive, load_sim_launch, print_metrics
    from dave_core.launch import LaunchError
    from dave_core.metrics import write_json_atomic
    try:
        description = load_sim_launch(args.seed, args.model_dir, args.launch)
    except (LaunchError, FileNotFoundError, ValueError) as error:
        print(f'dave demo: error: {error}', file=sys.stderr)
        return 2

    sink = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    print(f'dave demo: world seed {args.seed}, ROS_DOMAIN_ID={domain_id}, '
          f'{args.duration:.0f} s of driving', flush=True)
    metrics, failure = drive(description, args.duration, domain_id, sink)
    metrics['seed'] = args.seed
    print_metrics(metrics)
    if args.json is not None:
        print(f'dave demo: metrics written to {write_json_atomic(args.json, metrics)}')
    if failure:
        print(f'dave demo: error: {failure}', file=sys.stderr)
        return 1
    if metrics['distance_m'] < 0.1:
        print('dave demo: error: the vehicle did not move', file=sys.stderr)
        return 1
    return 0
