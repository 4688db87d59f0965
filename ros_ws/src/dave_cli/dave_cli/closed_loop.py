"""One closed-loop drive: the simulator + stack launch file over ROS 2, measured by StackMonitor.

Shared by `dave demo` (one world) and `dave eval` (many worlds). ROS is imported inside the
functions so `dave --help` stays fast; the caller applies the ROS environment (dave_core.rosenv)
before the first call.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STARTUP_TIMEOUT_S = 90.0  # model loading + first renders on a busy 2-core machine


def load_sim_launch(seed: int, model_dir: Path | None = None, launch: Path | None = None):
    """The launch description of the simulator + stack for world `seed` (LaunchError if bad)."""
    from dave_core.launch import load_launch_file
    from dave_core.paths import project_file
    launch_file = launch or project_file('launch/sim.launch.yaml')
    launch_args = {'seed': str(seed)}
    if model_dir is not None:
        check_model_dir(Path(model_dir))
        launch_args['model_dir'] = str(Path(model_dir).resolve())
    return load_launch_file(launch_file, launch_args)


# The stack runs both networks from one folder (launch/stack.launch.yaml's model_dir).
MODEL_FILES = ('steering.onnx', 'steering.json', 'traversability.onnx', 'traversability.json')


def check_model_dir(model_dir: Path) -> None:
    """FileNotFoundError naming what `--model-dir` lacks, before any process starts: a node
    without its model stops the vehicle, so the drive would measure nothing."""
    if not model_dir.is_dir():
        raise FileNotFoundError(f'--model-dir {model_dir}: not a directory')
    missing = [name for name in MODEL_FILES if not (model_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f'--model-dir {model_dir}: missing {", ".join(missing)} (the stack runs both '
                                f'networks; copy the shipped pair from models/ beside a new one)')


def explains_a_stop(text: str) -> bool:
    """Whether a process's stderr line may say why it stopped: not blank, and not a ROS log line
    at INFO or DEBUG level (a node logs those to stderr too, e.g. while shutting down)."""
    text = text.strip()
    return bool(text) and not text.startswith(('[INFO]', '[DEBUG]'))


def drive(description: Any, duration_s: float, domain_id: int,
          sink: Callable[[Any], None]) -> tuple[dict[str, float | int], str | None]:
    """Run `description`, measure `duration_s` of driving after the first command, stop it.

    Returns the contract metrics and a failure message (None when the drive went through).
    """
    import rclpy
    from dave_core.launch import LaunchRunner, RunnerConfig
    from dave_nodes.stack_monitor import StackMonitor

    last_error: dict[str, str] = {}  # per process, its last stderr line: why it stopped, even with --quiet

    def keep_errors(line: Any) -> None:
        if line.stream == 'stderr' and explains_a_stop(line.text):
            last_error[line.process] = line.text.strip()
        sink(line)

    with rclpy.init(args=[]):
        monitor = StackMonitor()
        runner = LaunchRunner(description, RunnerConfig(domain_id=domain_id, force_localhost=True),
                              sink=keep_errors)
        try:
            runner.start()
            failure = _measure(monitor, runner, duration_s, last_error)
        except KeyboardInterrupt:
            failure = 'interrupted'
        finally:
            if monitor.measuring:
                monitor.stop_window()
            runner.stop()
            monitor.destroy_node()
    return monitor.recorder.metrics(), failure


def _measure(monitor, runner, duration_s: float, last_error: dict[str, str]) -> str | None:
    """Spin the monitor through start-up and the measured window; return a failure or None."""
    import rclpy
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while monitor.first_command_s is None:
        rclpy.spin_once(monitor, timeout_sec=0.1)
        # Any process ending counts: the others keep running without it (a dead perception node
        # left a drive that looked fine).
        if runner.exits or runner.wait(timeout=0) is not None:
            return f'the stack stopped during start-up ({_exits(runner, last_error)})'
        if time.monotonic() > deadline:
            return f'no driving command within {STARTUP_TIMEOUT_S:.0f} s of start-up'
    monitor.start_window()
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        rclpy.spin_once(monitor, timeout_sec=0.1)
        if runner.exits or runner.wait(timeout=0) is not None:
            monitor.stop_window()
            return f'a process of the stack stopped while driving ({_exits(runner, last_error)})'
    monitor.stop_window()
    return None


def _exits(runner, last_error: dict[str, str]) -> str:
    time.sleep(0.2)  # the dead process's last lines may still be in its pipe
    return '; '.join(f'{e.label} exited with {e.returncode}'
                     + (f': {last_error[e.label]}' if e.label in last_error else '')
                     for e in runner.exits) or 'no exit recorded'


def print_metrics(metrics: dict, title: str = 'closed-loop metrics') -> None:
    print(f'\n{title}')
    width = max(len(k) for k in metrics)
    for key in sorted(metrics):
        print(f'  {key:<{width}}  {metrics[key]}')
