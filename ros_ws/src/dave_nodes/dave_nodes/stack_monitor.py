"""Stack monitor: watches a running stack from outside and feeds the closed-loop metrics.

Used in-process by `dave demo` (and eval/bench): subscribes to the contract topics only, counts
camera frames without deserializing them (raw CDR), integrates odometry, takes collisions from
the simulator and per-command latency from the command node.
"""
from __future__ import annotations

import time

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import (QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy,
                       qos_profile_sensor_data)
from sensor_msgs.msg import Image
from std_msgs.msg import Float64, UInt32

from dave_core.metrics import ClosedLoopRecorder

LATCHED = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)


class StackMonitor(Node):
    """Records metrics between `start_window()` and `stop_window()` (wall clock)."""

    def __init__(self) -> None:
        super().__init__('dave_monitor')
        self.recorder = ClosedLoopRecorder()
        self.measuring = False
        self.first_command_s: float | None = None
        self.last_twist = Twist()
        self._collisions_at_start: int | None = None
        self._collisions = 0
        self.create_subscription(Image, '/stereo/left/image_raw', self._on_image,
                                 qos_profile_sensor_data, raw=True)
        self.create_subscription(Odometry, '/odom', self._on_odom, qos_profile_sensor_data)
        self.create_subscription(Twist, '/cmd_vel', self._on_cmd, QoSProfile(depth=10))
        self.create_subscription(UInt32, '/sim/collisions', self._on_collisions, LATCHED)
        self.create_subscription(Float64, '/dave/stack_latency_ms', self._on_latency, 50)

    def start_window(self) -> None:
        self.recorder.start(time.monotonic())
        self._collisions_at_start = self._collisions
        self.measuring = True

    def stop_window(self) -> None:
        self.recorder.stop(time.monotonic())
        self.measuring = False

    def _on_image(self, _raw: bytes) -> None:
        if self.measuring:
            self.recorder.camera_frames += 1

    def _on_odom(self, msg: Odometry) -> None:
        if self.measuring:
            p = msg.pose.pose.position
            self.recorder.add_position(p.x, p.y)

    def _on_cmd(self, msg: Twist) -> None:
        if self.first_command_s is None and (msg.linear.x != 0.0 or msg.angular.z != 0.0):
            self.first_command_s = time.monotonic()
        self.last_twist = msg
        if self.measuring:
            self.recorder.commands += 1

    def _on_collisions(self, msg: UInt32) -> None:
        self._collisions = msg.data
        if self.measuring and self._collisions_at_start is not None:
            self.recorder.collisions = self._collisions - self._collisions_at_start

    def _on_latency(self, msg: Float64) -> None:
        if self.measuring:
            self.recorder.add_latency_ms(msg.data)
