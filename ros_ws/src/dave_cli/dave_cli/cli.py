"""`dave`: the one command-line entry point of the project.

Each subcommand lives in dave_core/commands/NAME.py exposing `add_arguments(parser)`
and `run(args) -> int`. Those modules import heavy dependencies (rclpy, torch, mujoco)
inside `run`, so `dave --help` stays fast and `dave launch` never imports torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from dave_core.entry import run_tool

# name -> (module, one-line help). Only commands that exist are listed.
COMMANDS: dict[str, tuple[str, str]] = {
    'launch': ('dave_cli.commands.launch', 'run a launch/*.launch.yaml here (no ros2 launch needed)'),
    'demo': ('dave_cli.commands.demo', 'simulator + full stack in closed loop; prints and writes metrics'),
    'world': ('dave_cli.commands.world', 'write a generated world as MJCF (MuJoCo) and SDF (Gazebo)'),
    'sim': ('dave_cli.commands.sim', 'the simulator as a ROS 2 node, headless'),
    'teleop': ('dave_cli.commands.teleop', 'human driving (keyboard or gamepad), publishes /teleop/cmd_vel'),
    'record': ('dave_cli.commands.record', 'records a rosbag2 (MCAP) of the driving topics'),
    'collect': ('dave_cli.commands.collect', 'expert driver in the simulator, headless, writes training data (rosbag2/MCAP)'),
    'data': ('dave_cli.commands.data', 'inspect recordings, turn bags into training sets, draw contact sheets and plots'),
    'train': ('dave_cli.commands.train', 'train a network (steering, traversability) with progress and plots'),
    'export': ('dave_cli.commands.export', 'ONNX export + sidecar metadata + parity check'),
    'eval': ('dave_cli.commands.eval', 'closed-loop evaluation on generated worlds; report with plots'),
    'bench': ('dave_cli.commands.bench', 'benchmarks (figures as ratios and rates, JSON)'),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='dave',
        description='dave: a learned stereo driving stack on ROS 2 (DAVE + LAGR).')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(
            name, help=help_text, description=(module.__doc__ or help_text).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(lambda: args._module.run(args), f'dave {args.command}')


if __name__ == '__main__':
    sys.exit(main())
