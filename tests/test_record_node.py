"""`dave record` on real rclpy + DDS: what is published is what the MCAP segments hold.

In-process tests run the record node and a publisher node in one executor with bounded spin
loops; the stop test runs the real `dave record` CLI (child process) and stops it with a signal.
Bags are read back with the format's reader.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from std_msgs.msg import Bool, String

from dave_core import live_recording as live
from dave_core import recording as rec
from dave_nodes.conversions import numpy_to_image
from dave_nodes.params import ParameterError
from dave_nodes.record_node import RecordNode

pytestmark = pytest.mark.ros
RELIABLE = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
DAVE = str(Path(sys.executable).parent / 'dave')


def _stamp(ns):
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _spin_until(executor, condition, timeout_s, tick=None):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if condition():
            return True
        if tick:
            tick()
        executor.spin_once(timeout_sec=0.02)
    return condition()


def _read_all(out):
    """(topic, log ns, msg) of every segment in order, after checking each bag is complete."""
    bags = sorted(p for p in (out / live.EPISODES).iterdir())
    assert bags and all(not b.name.startswith('.') for b in bags), bags
    messages = []
    for bag in bags:
        info = rec.read_info(bag)
        assert rec.storage_problem(info) is None, bag
        segment = list(rec.read_messages(bag))
        assert len(segment) == sum(info.message_counts.values())
        messages += segment
    return bags, messages


@pytest.fixture
def graph(context):
    executor = SingleThreadedExecutor(context=context)
    probe = rclpy.create_node('probe', context=context)
    executor.add_node(probe)
    nodes = []

    def start_recorder(**params):
        node = RecordNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        nodes.append(node)
        executor.add_node(node)
        return node
    try:
        yield executor, probe, start_recorder
    finally:
        for node in nodes:
            node.recorder.close()  # idempotent: joins the closer thread if a test failed early
        executor.shutdown()
        for node in nodes + [probe]:
            node.destroy_node()


def test_published_topics_round_trip_through_the_bag(graph, tmp_path):
    executor, probe, start_recorder = graph
    mode = probe.create_publisher(String, '/dave/mode', LATCHED)
    mode.publish(String(data='manual'))  # before the recorder exists: latched, must still be recorded
    pubs = {
        rec.LEFT_IMAGE: probe.create_publisher(type(numpy_to_image(np.zeros((1, 1, 3), np.uint8), 'rgb8')),
                                               rec.LEFT_IMAGE, RELIABLE),
        rec.ODOM: probe.create_publisher(Odometry, rec.ODOM, RELIABLE),
        rec.CMD_VEL: probe.create_publisher(Twist, rec.CMD_VEL, RELIABLE),
        rec.TELEOP_CMD_VEL: probe.create_publisher(TwistStamped, rec.TELEOP_CMD_VEL, RELIABLE),
        rec.INTERVENTION: probe.create_publisher(Bool, rec.INTERVENTION, LATCHED),
    }
    out = tmp_path / 'run'
    node = start_recorder(out=str(out))
    assert _spin_until(executor, lambda: all(p.get_subscription_count() for p in pubs.values()), 10.0)

    rng = np.random.default_rng(0)
    frames, stamps = [], []
    for i in range(5):
        ns = 1_800_000_000_000_000_000 + i * 66_666_667
        frame = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        frames.append(frame)
        stamps.append(ns)
        pubs[rec.LEFT_IMAGE].publish(numpy_to_image(frame, 'rgb8', _stamp(ns), rec.LEFT_OPTICAL_FRAME))
        odom = Odometry()
        odom.header.stamp, odom.pose.pose.position.x = _stamp(ns), float(i)
        pubs[rec.ODOM].publish(odom)
        pubs[rec.CMD_VEL].publish(Twist())
        teleop = TwistStamped()
        teleop.header.stamp, teleop.twist.linear.x = _stamp(ns), 0.25 * i
        pubs[rec.TELEOP_CMD_VEL].publish(teleop)
        executor.spin_once(timeout_sec=0.05)
    pubs[rec.INTERVENTION].publish(Bool(data=True))
    pubs[rec.INTERVENTION].publish(Bool(data=False))
    expected = {rec.LEFT_IMAGE: 5, rec.ODOM: 5, rec.CMD_VEL: 5, rec.TELEOP_CMD_VEL: 5, rec.MODE: 1, rec.INTERVENTION: 2}
    written = node.recorder.written
    assert _spin_until(executor, lambda: all(written[t] >= n for t, n in expected.items()), 10.0), written
    before_ns = node.get_clock().now().nanoseconds
    summary = node.finish()

    assert summary.status == 'complete' and summary.segments == 1
    assert {t: n for t, n in summary.counts.items() if n} == expected  # topics nobody published count 0
    [bag], messages = _read_all(out)
    by_topic = {}
    for topic, log_ns, msg in messages:
        by_topic.setdefault(topic, []).append((log_ns, msg))
    assert {t: len(v) for t, v in by_topic.items()} == expected
    assert [m.data for _, m in by_topic[rec.MODE]] == ['manual']
    assert [m.data for _, m in by_topic[rec.INTERVENTION]] == [True, False]
    assert [rec.stamp_to_ns(m.header.stamp) for _, m in by_topic[rec.LEFT_IMAGE]] == stamps
    for frame, (_, msg) in zip(frames, by_topic[rec.LEFT_IMAGE]):
        assert msg.header.frame_id == rec.LEFT_OPTICAL_FRAME
        np.testing.assert_array_equal(rec.image_to_numpy(msg), frame)
    assert [m.pose.pose.position.x for _, m in by_topic[rec.ODOM]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [m.twist.linear.x for _, m in by_topic[rec.TELEOP_CMD_VEL]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    # Bag time is the receive time on the node clock (wall time here), not the header stamp.
    log_times = [ns for _, ns, _ in messages]
    assert before_ns - 30e9 < min(log_times) <= max(log_times) <= before_ns
    assert live.read_manifest(out)['status'] == 'complete'


def test_rotation_loses_no_message_across_segments(graph, tmp_path):
    executor, probe, start_recorder = graph
    teleop = probe.create_publisher(TwistStamped, rec.TELEOP_CMD_VEL, RELIABLE)
    out = tmp_path / 'run'
    node = start_recorder(out=str(out), topics=[rec.TELEOP_CMD_VEL], split_s=0.3)
    assert _spin_until(executor, lambda: teleop.get_subscription_count() > 0, 10.0)
    sent = 0
    end = time.monotonic() + 1.5
    while time.monotonic() < end:  # ~100 Hz for 1.5 s: 4-6 segments
        msg = TwistStamped()
        msg.twist.linear.x = float(sent)
        teleop.publish(msg)
        sent += 1
        executor.spin_once(timeout_sec=0.01)
    written = node.recorder.written
    assert _spin_until(executor, lambda: written[rec.TELEOP_CMD_VEL] >= sent, 10.0), (written, sent)
    summary = node.finish()
    assert summary.messages == sent and summary.segments >= 3, summary
    bags, messages = _read_all(out)
    assert len(bags) == summary.segments
    assert [m.twist.linear.x for _, _, m in messages] == [float(i) for i in range(sent)]  # none lost, in order


def test_use_sim_time_stamps_bags_with_the_simulator_clock(graph, tmp_path):
    from rosgraph_msgs.msg import Clock
    executor, probe, start_recorder = graph
    clock = probe.create_publisher(Clock, '/clock', RELIABLE)
    teleop = probe.create_publisher(TwistStamped, rec.TELEOP_CMD_VEL, RELIABLE)
    out = tmp_path / 'run'
    node = start_recorder(out=str(out), topics=[rec.TELEOP_CMD_VEL], use_sim_time=True)
    sim_ns = 42_000_000_000
    assert _spin_until(executor, lambda: teleop.get_subscription_count() > 0, 10.0,
                       tick=lambda: clock.publish(Clock(clock=_stamp(sim_ns))))
    teleop.publish(TwistStamped())
    assert _spin_until(executor, lambda: node.recorder.written[rec.TELEOP_CMD_VEL] == 1, 10.0)
    node.finish()
    [_], [(_, log_ns, _)] = _read_all(out)
    assert log_ns == sim_ns
    assert live.read_manifest(out)['settings']['use_sim_time'] is True


def test_out_is_required_and_an_existing_recording_refused(context, tmp_path):
    with pytest.raises(ParameterError, match="'out' is required"):
        RecordNode(context=context)
    out = tmp_path / 'run'
    (out / live.EPISODES).mkdir(parents=True)
    from dave_nodes.runtime import NodeStartupError
    with pytest.raises(NodeStartupError, match='already holds a recording'):
        RecordNode(context=context, parameter_overrides=[Parameter('out', value=str(out))])
    assert list((out / live.EPISODES).iterdir()) == []


@pytest.mark.parametrize('how', ['ctrl-c', 'sigterm'])
def test_dave_record_stops_cleanly_on_a_signal(context, tmp_path, how):
    out = tmp_path / 'run'
    probe = rclpy.create_node('probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    teleop = probe.create_publisher(TwistStamped, rec.TELEOP_CMD_VEL, RELIABLE)
    mode = probe.create_publisher(String, rec.MODE, LATCHED)
    mode.publish(String(data='manual'))
    # The terminal's Ctrl-C signals the whole process group: the CLI and its node child.
    proc = subprocess.Popen([DAVE, 'record', '--out', str(out), '--topics', f'{rec.TELEOP_CMD_VEL},{rec.MODE}'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    sent = 0
    try:
        def publish():
            nonlocal sent
            msg = TwistStamped()
            msg.twist.linear.x = float(sent)
            teleop.publish(msg)
            sent += 1
        assert _spin_until(executor, lambda: teleop.get_subscription_count() > 0 or proc.poll() is not None, 60.0)
        assert proc.poll() is None, proc.communicate()
        matched_at = sent
        _spin_until(executor, lambda: sent - matched_at >= 30, 10.0, tick=publish)
        if how == 'ctrl-c':
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)  # `kill PID` of the CLI alone: forwarded to the node
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        executor.shutdown()
        probe.destroy_node()
    assert proc.returncode == 0, stderr
    assert 'Traceback' not in stderr, stderr
    assert stdout.startswith(f'dave record: {out}: 1 segment, ') and '(complete)' in stdout, stdout
    _, messages = _read_all(out)
    ids = [int(m.twist.linear.x) for t, _, m in messages if t == rec.TELEOP_CMD_VEL]
    assert len(ids) >= 25 and ids == list(range(ids[0], ids[0] + len(ids)))  # contiguous: none dropped
    assert [m.data for t, _, m in messages if t == rec.MODE] == ['manual']
    manifest = live.read_manifest(out)
    assert manifest['status'] == 'complete' and manifest['totals']['messages'] == len(messages)
