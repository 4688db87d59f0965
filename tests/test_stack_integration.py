"""The stack across real processes: launch files, DDS on loopback, the simulator in closed loop.

These tests start the project's launch files with `dave launch`'s runner and watch the contract
topics from this process, exactly as a user's tools would.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image

from dave_core.launch import LaunchRunner, RunnerConfig, load_launch_file
from dave_core.stereo_sync import StereoSynchronizer
from dave_nodes.conversions import image_to_numpy
from test_stereo_capture import write_side_by_side_video

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parents[1]
DAVE = [sys.executable, '-m', 'dave_cli.cli']


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _spin_until(node, predicate, timeout_s: float, runner: LaunchRunner) -> None:
    from rclpy.executors import SingleThreadedExecutor
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + timeout_s
        while not predicate() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            assert runner.wait(timeout=0) is None, f'launch ended early: {runner.exits}'
    finally:
        executor.remove_node(node)


def test_stereo_pairs_cross_processes_through_a_launch_file(context, tmp_path):
    video = write_side_by_side_video(tmp_path / 'stereo.avi', frames=30, eye_width=320, eye_height=240)
    description = load_launch_file(ROOT / 'tests/launch_files/stereo_camera_pubsub.launch.yaml',
                                   {'video': str(video)})
    node = rclpy.create_node('pair_listener', context=context)
    sync = StereoSynchronizer(max_skew_ns=0, queue_size=10)
    pairs = []

    def on(side):
        def callback(msg: Image) -> None:
            push = sync.push_left if side == 'left' else sync.push_right
            pair = push(_stamp_ns(msg), msg)
            if pair is not None:
                pairs.append(pair)
        return callback

    node.create_subscription(Image, '/stereo/left/image_raw', on('left'), qos_profile_sensor_data)
    node.create_subscription(Image, '/stereo/right/image_raw', on('right'), qos_profile_sensor_data)
    lines = []
    with LaunchRunner(description, RunnerConfig(force_localhost=True), sink=lines.append) as runner:
        _spin_until(node, lambda: len(pairs) >= 20, 30.0, runner)
    node.destroy_node()
    assert len(pairs) >= 20, [str(line) for line in lines]
    first = pairs[0]
    left, right = image_to_numpy(first.left), image_to_numpy(first.right)
    assert left.shape == right.shape == (240, 320, 3)
    assert first.skew_ns == 0  # identical header stamps within a pair
    assert not np.array_equal(left, right)  # two different eyes, not one image twice


def test_demo_drives_in_closed_loop_and_writes_metrics(tmp_path):
    out = tmp_path / 'metrics.json'
    proc = subprocess.run([*DAVE, 'demo', '--duration', '8', '--json', str(out), '--quiet'],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads(out.read_text())
    for key in ('distance_m', 'collisions', 'mean_distance_between_collisions_m', 'camera_rate_hz',
                'command_rate_hz', 'stack_latency_ms_p50', 'stack_latency_ms_p95'):
        assert isinstance(metrics[key], (int, float)), key
    assert metrics['distance_m'] > 1.0  # commands reached the simulator and the truck moved
    assert metrics['camera_rate_hz'] > 5.0 and metrics['command_rate_hz'] > 5.0
    assert 0.0 < metrics['stack_latency_ms_p50'] <= metrics['stack_latency_ms_p95'] < 1000.0
    assert 'distance_m' in proc.stdout


def test_missing_model_is_one_clear_error_and_the_vehicle_stays_stopped(context, tmp_path):
    description = load_launch_file(ROOT / 'launch/sim.launch.yaml',
                                   {'model_dir': str(tmp_path / 'no_models')})
    node = rclpy.create_node('stop_watcher', context=context)
    commands: list[Twist] = []
    positions = []
    node.create_subscription(Twist, '/cmd_vel', commands.append, QoSProfile(depth=10))
    node.create_subscription(Odometry, '/odom', lambda m: positions.append(
        (m.pose.pose.position.x, m.pose.pose.position.y)), qos_profile_sensor_data)
    lines = []
    with LaunchRunner(description, RunnerConfig(force_localhost=True), sink=lines.append) as runner:
        _spin_until(node, lambda: len(commands) >= 40 and len(positions) >= 40, 40.0, runner)
    node.destroy_node()
    errors = [line.text for line in lines if 'steering model' in line.text]
    assert len(errors) == 1 and 'no_models/steering.onnx' in errors[0], [str(x) for x in lines]
    assert len(commands) >= 40
    assert all(c.linear.x == 0.0 and c.angular.z == 0.0 for c in commands)
    travelled = np.hypot(*np.subtract(positions[-1], positions[0]))
    assert travelled < 0.01


def test_bad_parameter_type_names_the_parameter():
    proc = subprocess.run([*DAVE, 'launch', str(ROOT / 'launch/sim.launch.yaml'),
                           'camera_rate_hz:=fast'], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "'camera_rate_hz'" in proc.stdout + proc.stderr


def test_eval_drives_each_world_and_reports_totals_per_world_and_a_plot(tmp_path):
    out = tmp_path / 'eval.json'
    # As a user's shell on a headless robot computer: no MUJOCO_GL, no DISPLAY (the sim picks EGL).
    env = {k: v for k, v in os.environ.items() if k not in ('MUJOCO_GL', 'DISPLAY')}
    proc = subprocess.run([*DAVE, 'eval', '--seeds', '1-2', '--duration', '4', '--json', str(out), '--quiet'],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report['worlds'] == 2 and report['failed_worlds'] == 0
    assert report['distance_m'] == pytest.approx(report['seed1_distance_m'] + report['seed2_distance_m'], abs=0.01)
    assert report['collisions'] == report['seed1_collisions'] + report['seed2_collisions']
    assert report['seed1_distance_m'] > 0.5 and report['seed2_distance_m'] > 0.5
    assert out.with_suffix('.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_eval_counts_a_world_whose_node_died_as_failed(tmp_path):
    # A damaged traversability model: its node exits at start-up while the others run on.
    models = tmp_path / 'models'
    models.mkdir()
    for name in ('steering.onnx', 'steering.json', 'traversability.json'):
        (models / name).write_bytes((ROOT / 'models' / name).read_bytes())
    (models / 'traversability.onnx').write_bytes((ROOT / 'models/traversability.onnx').read_bytes()[:1000])
    out = tmp_path / 'eval.json'
    proc = subprocess.run([*DAVE, 'eval', '--seeds', '1', '--duration', '3', '--model-dir', str(models),
                           '--json', str(out), '--quiet'], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'world 1: error:' in proc.stderr and 'traversability_node' in proc.stderr, proc.stderr
    assert "field 'onnx_sha256'" in proc.stderr  # why it died, though --quiet hides the nodes' output
    assert json.loads(out.read_text())['failed_worlds'] == 1


@pytest.mark.parametrize('line, explains', [
    ("[ERROR] [1764.2] [traversability_node]: field 'onnx_sha256' does not match", True),
    ('RuntimeError: cannot open /dev/ttyUSB0', True),
    ('[INFO] [1764.3] [traversability_node]: shutting down', False),
    ('[DEBUG] [1764.3] [steering_node]: frame 12', False),
    ('   ', False),
])
def test_the_error_kept_for_a_stopped_process_is_not_a_routine_log_line(line, explains):
    from dave_cli.closed_loop import explains_a_stop
    assert explains_a_stop(line) is explains


def test_a_model_dir_without_both_networks_is_refused_before_starting(tmp_path):
    (tmp_path / 'steering.onnx').write_bytes((ROOT / 'models/steering.onnx').read_bytes())
    (tmp_path / 'steering.json').write_bytes((ROOT / 'models/steering.json').read_bytes())
    proc = subprocess.run([*DAVE, 'eval', '--seeds', '1', '--model-dir', str(tmp_path), '--json',
                           str(tmp_path / 'eval.json')], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count('\n') == 1, proc.stderr
    assert f'--model-dir {tmp_path}: missing traversability.onnx, traversability.json' in proc.stderr
    assert not (tmp_path / 'eval.json').exists()


def test_eval_rejects_bad_seeds_in_one_line():
    proc = subprocess.run([*DAVE, 'eval', '--seeds', '3-x', '--json', '/tmp/never.json'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count('\n') == 1 and '--seeds' in proc.stderr
