"""Run the simulator as a ROS 2 node, headless: a generated world, the truck, its stereo camera.

Publishes /stereo/{left,right}/image_raw + camera_info, /odom, /clock, /sim/collisions and
/diagnostics, and drives the truck with /cmd_vel (geometry_msgs/Twist). Stop with Ctrl-C.

    dave sim --seed 3
    dave sim --world my_world.yaml --publish-gt
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dave_cli.child import run_child
from dave_core.rosenv import ros_env


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--seed', type=int, default=0, help='world seed (default: 0)')
    parser.add_argument('--world', type=Path, default=None,
                        help='world generator YAML (keys of dave_sim.world.WorldConfig)')
    parser.add_argument('--publish-gt', action='store_true',
                        help='also publish ground-truth labels and depth of the left camera')
    parser.add_argument('--real-time-factor', type=float, default=1.0,
                        help='sim seconds per wall second (default: 1.0)')


def node_command(args: argparse.Namespace) -> list[str]:
    """The command line that starts the simulator node with these arguments."""
    params = [f'seed:={args.seed}', f'real_time_factor:={args.real_time_factor}',
              f'publish_gt:={"true" if args.publish_gt else "false"}']
    if args.world is not None:
        params.append(f'world:={args.world.expanduser().resolve()}')
    command = [sys.executable, '-m', 'dave_nodes.sim_node', '--ros-args']
    for param in params:
        command += ['-p', param]
    return command


def run(args: argparse.Namespace) -> int:
    if args.seed < 0:
        print(f'error: --seed must be >= 0, got {args.seed}', file=sys.stderr)
        return 2
    if args.world is not None and not args.world.expanduser().is_file():
        print(f'error: --world {args.world}: no such file', file=sys.stderr)
        return 2
    env = ros_env()
    env.setdefault('MUJOCO_GL', 'egl')  # headless rendering unless the user chose a backend
    return run_child(node_command(args), env)

