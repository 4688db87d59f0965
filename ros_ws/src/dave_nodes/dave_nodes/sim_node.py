"""Simulator node: the MuJoCo world as a ROS 2 robot — stereo camera, odometry, clock; obeys /cmd_vel.

The simulator runs in real time (x real_time_factor) and its clock starts at the wall-clock
epoch of start-up, so image stamps compare with the system time of every other process; it
also publishes /clock for nodes run with use_sim_time. Pacing, frame times and the /cmd_vel
watchdog live in dave_sim.realtime; this node converts messages and publishes.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import rclpy.logging
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import UInt32

from dave_nodes.conversions import camera_info_from_intrinsics, numpy_to_image
from dave_sim.rotations import quat_from_rpy  # pure math; MuJoCo loads later, in SimNode
from dave_nodes.params import declare_from_dataclass
from dave_nodes.runtime import NodeStartupError, run_node

# Camera streams: RELIABLE, KEEP_LAST 2, volatile. A reliable writer also serves best-effort
# readers (the steering node's qos_profile_sensor_data), while a best-effort writer would be
# invisible to reliable readers such as recorders; KEEP_LAST keeps publish non-blocking, and with
# the shared-memory profile reliability costs nothing measurable.
CAMERA_QOS = QoSProfile(depth=2, reliability=QoSReliabilityPolicy.RELIABLE)
COMMAND_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
# Latched: a late subscriber (eval, demo) still learns the current count.
COLLISIONS_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                            durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
LEFT_FRAME = 'stereo_left_optical_frame'
RIGHT_FRAME = 'stereo_right_optical_frame'


@dataclass(frozen=True)
class SimNodeConfig:
    seed: int = field(default=0, metadata={'description': 'world seed (same seed -> same world)'})
    world: str = field(default='', metadata={
        'description': "world generator YAML (dave_sim WorldConfig keys); '' = defaults"})
    width: int = field(default=320, metadata={'description': 'image width [px]'})
    height: int = field(default=240, metadata={'description': 'image height [px]'})
    camera_rate_hz: float = field(default=15.0, metadata={'description': 'stereo frame rate in sim time [Hz]'})
    update_rate_hz: float = field(default=50.0, metadata={
        'description': 'physics catch-up, /cmd_vel sampling, /odom and /clock rate (wall) [Hz]'})
    real_time_factor: float = field(default=1.0, metadata={'description': 'sim seconds per wall second'})
    cmd_timeout_s: float = field(default=0.5, metadata={
        'description': 'stop the truck when no /cmd_vel arrived for this long (sim time) [s]'})
    publish_gt: bool = field(default=False, metadata={
        'description': 'also publish ground truth: /sim/left/labels (mono8) and /sim/left/depth (32FC1)'})

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f'parameter seed must be >= 0, got {self.seed}')
        if self.world and not Path(self.world).expanduser().is_file():
            raise ValueError(f'parameter world: file {self.world!r} does not exist')
        for name in ('width', 'height'):
            if not 0 < getattr(self, name) <= 4096:
                raise ValueError(f'parameter {name} must be in 1..4096, got {getattr(self, name)}')
        for name in ('camera_rate_hz', 'update_rate_hz', 'real_time_factor', 'cmd_timeout_s'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'parameter {name} must be > 0, got {value!r}')


def _stamp(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__('sim')
        self.config = cfg = declare_from_dataclass(self, SimNodeConfig)
        # Heavy imports here: parameter errors above are reported without loading MuJoCo.
        from dave_sim.camera import StereoCameraConfig
        from dave_sim.realtime import PacingConfig, RealTimeDriver
        from dave_sim.simulator import Simulator
        from dave_sim.world import WorldConfig, WorldConfigError, generate_world, load_world_config

        try:
            world_config = load_world_config(Path(cfg.world).expanduser()) if cfg.world else WorldConfig()
            world = generate_world(cfg.seed, world_config)
            camera = StereoCameraConfig(width=cfg.width, height=cfg.height)
            self.sim = Simulator(world, camera)
            self.sim.render()  # fail at start-up, not in the first callback, if GL is unusable
        except (WorldConfigError, ValueError) as exc:
            raise NodeStartupError(str(exc)) from None
        except Exception as exc:  # GL / MuJoCo failures carry no parameter name; add the context
            raise NodeStartupError(f'simulator start-up failed ({type(exc).__name__}: {exc}); '
                                   'for headless rendering set MUJOCO_GL=egl') from None
        self._epoch_ns = time.time_ns()  # sim time 0 == this wall-clock instant
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.driver = RealTimeDriver(
            self.sim, PacingConfig(cfg.camera_rate_hz, cfg.real_time_factor, cfg.cmd_timeout_s),
            self._steady_s())

        self._left_pub = self.create_publisher(Image, '/stereo/left/image_raw', CAMERA_QOS)
        self._right_pub = self.create_publisher(Image, '/stereo/right/image_raw', CAMERA_QOS)
        self._left_info_pub = self.create_publisher(CameraInfo, '/stereo/left/camera_info', CAMERA_QOS)
        self._right_info_pub = self.create_publisher(CameraInfo, '/stereo/right/camera_info', CAMERA_QOS)
        if cfg.publish_gt:
            self._labels_pub = self.create_publisher(Image, '/sim/left/labels', CAMERA_QOS)
            self._depth_pub = self.create_publisher(Image, '/sim/left/depth', CAMERA_QOS)
        self._odom_pub = self.create_publisher(Odometry, '/odom', 10)
        self._clock_pub = self.create_publisher(ClockMsg, '/clock', 10)
        self._collisions_pub = self.create_publisher(UInt32, '/sim/collisions', COLLISIONS_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(Twist, '/cmd_vel', self._on_cmd_vel, COMMAND_QOS)

        self._left_info = camera_info_from_intrinsics(
            camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy, frame_id=LEFT_FRAME)
        self._right_info = camera_info_from_intrinsics(
            camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy,
            baseline_m=camera.baseline_m, frame_id=RIGHT_FRAME)
        self._published_collisions = -1
        self._frames = 0
        self._render_s = 0.0
        self._diag_wall_s = self._steady_s()
        self._diag_sim_s = self.sim.time_s
        self._publish_collisions()
        # Pacing runs on the steady clock: with use_sim_time set on this node, a ROS-time timer
        # would wait for the /clock this node itself publishes.
        self.create_timer(1.0 / cfg.update_rate_hz, self._on_update, clock=self._steady)
        self.create_timer(1.0, self._publish_diagnostics, clock=self._steady)
        self.get_logger().info(
            f'world seed {cfg.seed} ({len(world.obstacles)} obstacles, start {world.start.x:.1f},'
            f'{world.start.y:.1f}, goal {world.goal[0]:.1f},{world.goal[1]:.1f}); '
            f'{cfg.width}x{cfg.height} stereo at {cfg.camera_rate_hz:g} Hz, real-time factor {cfg.real_time_factor:g}')

    def _steady_s(self) -> float:
        return self._steady.now().nanoseconds * 1e-9

    def _sim_stamp(self) -> Time:
        return _stamp(self._epoch_ns + round(self.sim.time_s * 1e9))

    def _on_cmd_vel(self, msg: Twist) -> None:
        if not self.driver.on_command(msg.linear.x, msg.angular.z):
            self.get_logger().warning(
                f'/cmd_vel not finite (linear.x={msg.linear.x}, angular.z={msg.angular.z}): stopping',
                throttle_duration_sec=10.0)

    def _on_update(self) -> None:
        try:
            self._update()
        except Exception:
            # Ctrl-C / SIGTERM shut the context down while this callback rendered: publishing
            # then fails, and that is the expected end of the node, not an error to report.
            if self.context.ok():
                raise

    def _update(self) -> None:
        if self.driver.advance(self._steady_s()):
            self._publish_frame()
        stamp = self._sim_stamp()
        self._clock_pub.publish(ClockMsg(clock=stamp))
        self._publish_odom(stamp)
        self._publish_collisions()

    def _publish_frame(self) -> None:
        started = time.perf_counter()
        frame = self.sim.render(with_gt=self.config.publish_gt)
        self._render_s += time.perf_counter() - started
        stamp = self._sim_stamp()  # one stamp for both images: they show the same instant
        self._left_pub.publish(numpy_to_image(frame.left, 'rgb8', stamp, LEFT_FRAME))
        self._right_pub.publish(numpy_to_image(frame.right, 'rgb8', stamp, RIGHT_FRAME))
        self._left_info.header.stamp = stamp
        self._right_info.header.stamp = stamp
        self._left_info_pub.publish(self._left_info)
        self._right_info_pub.publish(self._right_info)
        if self.config.publish_gt:
            self._labels_pub.publish(numpy_to_image(frame.labels, 'mono8', stamp, LEFT_FRAME))
            self._depth_pub.publish(numpy_to_image(frame.depth, '32FC1', stamp, LEFT_FRAME))
        self._frames += 1

    def _publish_odom(self, stamp: Time) -> None:
        # The odom frame is the world frame of the generated world (ground truth, no drift).
        state = self.sim.state
        ride = self.sim.ride  # the truck rides on the terrain: full 3D pose
        msg = Odometry()
        msg.header.stamp = stamp
        msg.header.frame_id = 'odom'
        msg.child_frame_id = 'base_link'
        msg.pose.pose.position.x = state.x
        msg.pose.pose.position.y = state.y
        msg.pose.pose.position.z = ride.z
        q = msg.pose.pose.orientation
        q.w, q.x, q.y, q.z = quat_from_rpy(ride.roll, ride.pitch, state.yaw)
        msg.twist.twist.linear.x = state.v
        msg.twist.twist.linear.y = self.sim.lateral_speed_mps
        msg.twist.twist.angular.z = state.w
        self._odom_pub.publish(msg)

    def _publish_collisions(self) -> None:
        count = self.sim.collisions
        if count != self._published_collisions:
            self._collisions_pub.publish(UInt32(data=count))
            self._published_collisions = count

    def _publish_diagnostics(self) -> None:
        wall_s, sim_s = self._steady_s(), self.sim.time_s
        elapsed = max(wall_s - self._diag_wall_s, 1e-9)
        rtf = (sim_s - self._diag_sim_s) / elapsed
        render_ms = self._render_s / self._frames * 1e3 if self._frames else float('nan')
        status = DiagnosticStatus(name='dave/sim', hardware_id='dave_sim')
        slow = rtf < 0.9 * self.config.real_time_factor
        status.level = DiagnosticStatus.WARN if slow else DiagnosticStatus.OK
        status.message = 'slower than requested real-time factor' if slow else 'ok'
        status.values = [
            KeyValue(key='camera_rate_hz', value=f'{self._frames / elapsed:.2f}'),
            KeyValue(key='real_time_factor', value=f'{rtf:.3f}'),
            KeyValue(key='render_ms_mean', value=f'{render_ms:.2f}'),
            KeyValue(key='frames_skipped', value=str(self.driver.frames_skipped)),
            KeyValue(key='cmd_timeouts', value=str(self.driver.timeouts)),
            KeyValue(key='collisions', value=str(self.sim.collisions)),
            KeyValue(key='distance_m', value=f'{self.sim.distance_m:.2f}'),
            KeyValue(key='sim_time_s', value=f'{sim_s:.3f}'),
        ]
        diag = DiagnosticArray(status=[status])
        diag.header.stamp = self._sim_stamp()
        self._diag_pub.publish(diag)
        self._diag_wall_s, self._diag_sim_s = wall_s, sim_s
        self._frames, self._render_s = 0, 0.0

    def destroy_node(self) -> None:
        sim = getattr(self, 'sim', None)
        name = self.get_name()
        super().destroy_node()
        if sim is not None:
            sim.close()
            # Logged after the node is gone: on Ctrl-C the context is already shut down, and the
            # node's own logger would fail to reach /rosout.
            rclpy.logging.get_logger(name).info(
                f'stopped: {sim.time_s:.1f} s simulated, {sim.distance_m:.1f} m driven, '
                f'{sim.collisions} collisions')


def main(args: list[str] | None = None) -> int:
    # The program entry point (not library code) picks the GL backend before MuJoCo loads:
    # without a display, GLFW cannot work, so render headless through EGL unless told otherwise.
    if 'MUJOCO_GL' not in os.environ and not os.environ.get('DISPLAY'):
        os.environ['MUJOCO_GL'] = 'egl'
    return run_node(SimNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
