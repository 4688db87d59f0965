"""ROS 2 YAML launch files without the ROS 2 launch packages.

A faithful subset of ros2 launch for `launch/*.launch.yaml`: the same files also run
with `ros2 launch` on a full ROS 2 install.

    from dave_core.launch import LaunchRunner, load_launch_file

    description = load_launch_file('launch/sim.launch.yaml', {'seed': '3'})
    print('\\n'.join(description.describe()))       # what would run
    with LaunchRunner(description, sink=lines.append) as runner:
        exit_code = runner.wait(timeout=30)

Modules: substitutions (the `$(...)` language), frontend (YAML -> actions), parameters
(typed values, parameter files), packages (find-pkg-share and node executables without
ament), description (actions -> processes), runner (process supervision).
"""
from dave_core.launch.description import (LaunchArgument, LaunchDescription, NodeInfo,
                                          ProcessDescription, declared_arguments,
                                          load_launch_file, parse_launch_arguments)
from dave_core.launch.errors import LaunchError
from dave_core.launch.packages import find_node_command, find_package_share
from dave_core.launch.parameters import ParameterFile, ParameterRule
from dave_core.launch.runner import (LaunchRunner, OutputLine, ProcessExit, RunnerConfig,
                                     exit_status)

__all__ = [
    'LaunchArgument', 'LaunchDescription', 'LaunchError', 'LaunchRunner', 'NodeInfo',
    'OutputLine', 'ParameterFile', 'ParameterRule', 'ProcessDescription', 'ProcessExit',
    'RunnerConfig', 'declared_arguments', 'exit_status', 'find_node_command',
    'find_package_share', 'load_launch_file', 'parse_launch_arguments',
]
