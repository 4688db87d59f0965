"""The simulator node over real rclpy/DDS (loopback only): stereo pair, camera_info, odom, /cmd_vel."""
import math
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import UInt32

from dave_nodes.conversions import image_to_numpy

pytestmark = pytest.mark.ros


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _stamp_ns_of_clock(msg) -> int:
    return msg.clock.sec * 1_000_000_000 + msg.clock.nanosec


def _spin_until(executor, condition, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.02)
        if condition():
            return True
    return False


def test_sim_node_streams_stereo_and_odom_and_obeys_cmd_vel():
    from dave_nodes.sim_node import SimNode

    rclpy.init(args=['--ros-args', '-p', 'seed:=2', '-p', 'camera_rate_hz:=10.0', '-p', 'publish_gt:=true'])
    executor = SingleThreadedExecutor()
    sim_node = probe = None
    try:
        sim_node = SimNode()
        probe = rclpy.create_node('sim_test_probe')
        got = defaultdict(list)
        topics = [(Image, '/stereo/left/image_raw'), (Image, '/stereo/right/image_raw'),
                  (CameraInfo, '/stereo/left/camera_info'), (CameraInfo, '/stereo/right/camera_info'),
                  (Image, '/sim/left/labels'), (Image, '/sim/left/depth')]
        for msg_type, topic in topics:
            # The steering node's QoS: best effort must match the simulator's reliable writer.
            probe.create_subscription(msg_type, topic, lambda m, t=topic: got[t].append(m),
                                      qos_profile_sensor_data)
        probe.create_subscription(Odometry, '/odom', lambda m: got['/odom'].append(m), 10)
        probe.create_subscription(Clock, '/clock', lambda m: got['/clock'].append(m), 10)
        latched = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                             durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
        probe.create_subscription(UInt32, '/sim/collisions', lambda m: got['/sim/collisions'].append(m), latched)
        cmd_pub = probe.create_publisher(Twist, '/cmd_vel', QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE))
        executor.add_node(sim_node)
        executor.add_node(probe)

        def pair_received():
            left = {_stamp_ns(m) for m in got['/stereo/left/image_raw']}
            right = {_stamp_ns(m) for m in got['/stereo/right/image_raw']}
            return bool(left & right) and got['/stereo/right/camera_info'] and got['/odom'] \
                and got['/sim/left/depth'] and got['/sim/collisions'] and got['/clock']

        assert _spin_until(executor, pair_received, 10.0), {k: len(v) for k, v in got.items()}
        stamp = max({_stamp_ns(m) for m in got['/stereo/left/image_raw']}
                    & {_stamp_ns(m) for m in got['/stereo/right/image_raw']})
        left = next(m for m in got['/stereo/left/image_raw'] if _stamp_ns(m) == stamp)
        right = next(m for m in got['/stereo/right/image_raw'] if _stamp_ns(m) == stamp)
        assert (left.encoding, left.width, left.height) == ('rgb8', 320, 240)
        assert (left.header.frame_id, right.header.frame_id) == ('stereo_left_optical_frame',
                                                                 'stereo_right_optical_frame')
        assert image_to_numpy(left).std() > 10
        # Stamps live on the wall-clock epoch: comparable with this process's system time.
        assert abs(stamp * 1e-9 - time.time()) < 2.0
        info = got['/stereo/right/camera_info'][-1]
        assert info.p[3] == pytest.approx(-info.p[0] * 0.12)
        assert got['/stereo/left/camera_info'][-1].p[3] == 0.0
        labels = image_to_numpy(got['/sim/left/labels'][-1])
        assert set(np.unique(labels)) <= {0, 1, 2} and got['/sim/left/depth'][-1].encoding == '32FC1'
        assert got['/sim/collisions'][-1].data == 0
        assert abs(_stamp_ns_of_clock(got['/clock'][-1]) - stamp) < 2_000_000_000

        start = got['/odom'][-1].pose.pose.position
        drive = Twist()
        drive.linear.x = 1.0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            cmd_pub.publish(drive)
            _spin_until(executor, lambda: False, 0.05)
        moved = got['/odom'][-1]
        travelled = math.hypot(moved.pose.pose.position.x - start.x, moved.pose.pose.position.y - start.y)
        assert travelled > 0.5, moved
        assert moved.twist.twist.linear.x > 0.5, moved
        # Silence on /cmd_vel: the watchdog stops the truck after cmd_timeout_s (0.5 s).
        assert _spin_until(executor, lambda: abs(got['/odom'][-1].twist.twist.linear.x) < 0.05, 3.0), \
            f'odom {got["/odom"][-1].twist.twist.linear.x:.3f} m/s, timeouts {sim_node.driver.timeouts}'
    finally:
        executor.shutdown()
        for node in (sim_node, probe):
            if node is not None:
                node.destroy_node()
        rclpy.shutdown()


def test_bad_parameter_exits_non_zero_with_one_line_naming_it():
    result = subprocess.run([sys.executable, '-m', 'dave_nodes.sim_node', '--ros-args', '-p', 'width:=0'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'width' in errors[0], result.stderr
