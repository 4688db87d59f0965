"""launch/teleop_record.launch.yaml: a person drives the robot and everything is recorded.

The resolved launch file is checked without running anything; then the launch runs for real
(`dave launch`'s runner, a side-by-side video file as the camera, the shipped models) while this
process drives like `dave teleop` would, stops it like Ctrl-C and reads the recording back.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from geometry_msgs.msg import Twist, TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, QoSReliabilityPolicy

from dave_cli.commands import launch as launch_command
from dave_core import live_recording as live
from dave_core import recording as rec
from dave_core.launch import LaunchError, LaunchRunner, ParameterRule, RunnerConfig, load_launch_file
from dave_models.bag_dataset import build_steering
from test_stereo_capture import write_side_by_side_video

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / 'launch/teleop_record.launch.yaml'
STACK_NODES = {'stereo_camera', 'steering', 'traversability', 'command'}
# The teleop node's and the command node's QoS for commands: reliable, only the newest matters.
COMMAND_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
DRIVE = (0.5, 0.2)  # the person's command in the middle of the drive [m/s, rad/s]
TELEOP_PERIOD_S = 0.05  # 20 Hz, the teleop node's rate


def _nodes(description) -> dict:
    return {p.node.name: p for p in description.processes if p.node is not None}


def _params(process) -> dict:
    return {p.name: p.value for p in process.node.parameters if isinstance(p, ParameterRule)}


# --- the resolved launch file --------------------------------------------------------------

def test_defaults_run_camera_stack_and_recorder_with_the_person_driving():
    nodes = _nodes(load_launch_file(LAUNCH, {'out': 'data/run1'}))
    assert set(nodes) == STACK_NODES | {'record'}  # no gamepad node unless asked for
    assert _params(nodes['command'])['initial_mode'] == 'manual'
    assert _params(nodes['record']) == {'out': 'data/run1', 'split_s': 60.0}
    assert nodes['record'].required  # a recorder that stops ends the launch
    assert _params(nodes['stereo_camera'])['source'] == '/dev/video0'


def test_arguments_reach_the_nodes():
    nodes = _nodes(load_launch_file(LAUNCH, {
        'out': '/data/run2', 'split': '30', 'mode': 'shared', 'gamepad': 'true',
        'joystick': '/dev/input/js1', 'camera': 'drive.avi'}))
    assert set(nodes) == STACK_NODES | {'record', 'teleop'}
    assert _params(nodes['command'])['initial_mode'] == 'shared'
    assert _params(nodes['record']) == {'out': '/data/run2', 'split_s': 30}
    # The gamepad node announces the mode on /dave/mode, so the recording says who drove.
    assert _params(nodes['teleop']) == {'device': 'gamepad', 'joystick': '/dev/input/js1',
                                        'initial_mode': 'shared'}
    assert _params(nodes['stereo_camera'])['source'] == 'drive.avi'


@pytest.mark.parametrize('launch_file', ['robot.launch.yaml', 'sim.launch.yaml', 'stack.launch.yaml'])
def test_the_autonomous_launch_files_still_start_in_auto(launch_file):
    command = _nodes(load_launch_file(ROOT / 'launch' / launch_file))['command']
    assert _params(command)['initial_mode'] == 'auto'


def test_a_missing_out_is_one_clear_error(capsys):
    with pytest.raises(LaunchError, match=r"required launch argument 'out' .* pass out:=VALUE"):
        load_launch_file(LAUNCH)
    parser = argparse.ArgumentParser()
    launch_command.add_arguments(parser)
    assert launch_command.run(parser.parse_args([str(LAUNCH)])) == 2
    err = capsys.readouterr().err
    assert err.startswith('dave launch: error: ') and err.count('\n') == 1, err


def test_an_unknown_mode_is_refused():
    with pytest.raises(LaunchError, match=r"'mode' is 'drive', not one of: manual, auto, shared, estop"):
        load_launch_file(LAUNCH, {'out': 'x', 'mode': 'drive'})


# --- end to end ----------------------------------------------------------------------------

def _teleop(v: float, w: float) -> TwistStamped:
    msg = TwistStamped()
    msg.header.frame_id = rec.BASE_FRAME
    msg.twist.linear.x, msg.twist.angular.z = v, w
    return msg


def test_a_person_drives_and_the_launch_records_it(context, tmp_path):
    video = write_side_by_side_video(tmp_path / 'stereo.avi', frames=30, eye_width=320, eye_height=240)
    # The shipped camera settings, looping the short video, at 15 fps to spare the test's CPUs.
    camera = yaml.safe_load((ROOT / 'launch/params/camera.yaml').read_text())
    camera['/**/stereo_camera']['ros__parameters'].update(loop=True, fps=15.0)
    camera_params = tmp_path / 'camera.yaml'
    camera_params.write_text(yaml.safe_dump(camera))
    out = tmp_path / 'run1'
    description = load_launch_file(LAUNCH, {'out': str(out), 'split': '2.0', 'camera': str(video),
                                            'camera_params': str(camera_params)})

    node = rclpy.create_node('driver', context=context)
    teleop = node.create_publisher(TwistStamped, rec.TELEOP_CMD_VEL, COMMAND_QOS)
    received: list[tuple[float, float, float]] = []  # (receive time, v, w) of /cmd_vel
    node.create_subscription(Twist, rec.CMD_VEL, lambda m: received.append(
        (time.monotonic(), m.linear.x, m.angular.z)), QoSProfile(depth=10))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    lines = []
    phases = {}
    try:
        with LaunchRunner(description, RunnerConfig(force_localhost=True), sink=lines.append) as runner:
            def spin(seconds: float, command: tuple[float, float] | None = None, until=None) -> None:
                deadline = next_send = time.monotonic()
                deadline += seconds
                while time.monotonic() < deadline and not (until and until()):
                    if command is not None and time.monotonic() >= next_send:
                        teleop.publish(_teleop(*command))
                        next_send += TELEOP_PERIOD_S
                    executor.spin_once(timeout_sec=0.01)
                    assert runner.wait(timeout=0) is None, f'launch ended early: {runner.exits}'

            # Up: the command node and the recorder both listen to the person, /cmd_vel flows.
            spin(25.0, until=lambda: teleop.get_subscription_count() >= 2 and len(received) >= 5)
            assert teleop.get_subscription_count() >= 2 and received, [str(x) for x in lines]
            for name, command, seconds in (('before', (0.0, 0.0), 1.5), ('drive', DRIVE, 2.0),
                                           ('after', (0.0, 0.0), 1.5)):
                phases[name] = time.monotonic()
                spin(seconds, command)
            phases['end'] = time.monotonic()
            exit_code = runner.stop(timeout=30)  # SIGINT to every process, as Ctrl-C
    finally:
        executor.shutdown()
        node.destroy_node()
    log = '\n'.join(str(x) for x in lines)
    assert exit_code == 0, log
    # The recorder closed its last segment on SIGINT and exited 0 (1: the recording failed).
    assert [e.returncode for e in runner.exits if e.label.startswith('record_node')] == [0], (runner.exits, log)

    # Manual mode: /cmd_vel is the person's command (in auto, the networks turn in place on this video).
    def window(start: str, end: str, settle_s: float = 0.5) -> list[tuple[float, float]]:
        return [(v, w) for t, v, w in received if phases[start] + settle_s <= t < phases[end]]

    before, drive, after = window('before', 'drive'), window('drive', 'after'), window('after', 'end')
    assert len(before) >= 10 and len(drive) >= 15 and len(after) >= 10, received
    assert all(c == (0.0, 0.0) for c in before + after), (before, after)
    assert drive == [pytest.approx(DRIVE)] * len(drive), drive

    # The recording: complete segments cut every `split` seconds, and a manifest that adds up.
    manifest = live.read_manifest(out)
    assert manifest['status'] == 'complete' and manifest['error'] is None, manifest
    assert manifest['settings']['split_s'] == 2.0
    bags = sorted((out / live.EPISODES).iterdir())
    assert [s['bag'] for s in manifest['segments']] == [f'{live.EPISODES}/{b.name}' for b in bags]
    assert len(bags) >= 3 and manifest['totals']['segments'] == len(bags)
    counts: dict[str, int] = {}
    for bag in bags:
        info = rec.read_info(bag)
        assert info.format_version == rec.FORMAT_VERSION and rec.storage_problem(info) is None
        for topic, n in info.message_counts.items():
            counts[topic] = counts.get(topic, 0) + n
    assert manifest['totals']['messages_per_topic'] == counts
    for topic in (rec.LEFT_IMAGE, rec.RIGHT_IMAGE, rec.LEFT_INFO, rec.RIGHT_INFO, rec.CMD_VEL,
                  rec.TELEOP_CMD_VEL, rec.STEERING_COMMAND, rec.TRAV_LABELS, rec.INTERVENTION):
        assert counts.get(topic, 0) > 0, (topic, counts)
    assert counts[rec.LEFT_IMAGE] >= 15 * 3  # 15 fps over the ~5 s driven
    # Nothing published /dave/mode (the command node does not; `dave teleop --mode` would).

    messages = [(t, m) for bag in bags
                for t, _, m in rec.read_messages(bag, [rec.TELEOP_CMD_VEL, rec.CMD_VEL, rec.INTERVENTION])]
    teleop_cmds = [(m.twist.linear.x, m.twist.angular.z) for t, m in messages if t == rec.TELEOP_CMD_VEL]
    assert teleop_cmds.count(DRIVE) >= 30  # ~40 sent at 20 Hz over 2 s
    assert sum(1 for t, m in messages if t == rec.CMD_VEL
               and (m.linear.x, m.angular.z) == pytest.approx(DRIVE)) >= 20
    # Latched, repeated at the start of every later segment: a person is in charge in manual mode.
    # (On a loaded machine the first 2 s segment can end before the state is discovered.)
    interventions = [m.data for t, m in messages if t == rec.INTERVENTION]
    assert all(interventions) and len(bags) - 1 <= len(interventions) <= len(bags)

    # The recording is training data: the frames the person drove, labelled with their command.
    manifest, stats = build_steering(out, tmp_path / 'shards', label='human', progress=False)
    labels = np.concatenate([np.load(f)['curvature'] for f in sorted((tmp_path / 'shards').glob('shard_*.npz'))])
    assert len(labels) >= 15  # ~2 s at 15 fps driven; the zero commands before and after are left out
    assert labels == pytest.approx(DRIVE[1] / DRIVE[0])
    assert sum(s['dropped_standing'] for s in stats) >= 15


def test_an_out_that_holds_a_recording_stops_the_whole_launch(tmp_path):
    out = tmp_path / 'run1'
    out.mkdir()
    (out / live.MANIFEST).write_text('{}')
    # No camera file: its node fails too, but only the recorder (on_exit: shutdown) ends the launch.
    description = load_launch_file(LAUNCH, {'out': str(out), 'camera': str(tmp_path / 'none.avi')})
    lines = []
    with LaunchRunner(description, RunnerConfig(force_localhost=True), sink=lines.append) as runner:
        exit_code = runner.wait(timeout=30)
    log = '\n'.join(str(x) for x in lines)
    assert exit_code == 2, log  # the recorder's exit status ends the launch: nobody drives unrecorded
    assert f'{out} already holds a recording' in log, log
