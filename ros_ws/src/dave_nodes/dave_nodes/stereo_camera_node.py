"""Stereo camera driver: a side-by-side USB stereo camera (or a video file of one) -> ROS images.

Publishes /stereo/{left,right}/image_raw (rgb8, one identical stamp per pair: the node's clock
when the frame was grabbed) and /stereo/{left,right}/camera_info from parameters, all with the
sensor-data QoS. A source that cannot be opened ends the process with one error line and exit 1.

    stereo_camera_node --ros-args -p source:=/dev/video0 -p fx:=... -p baseline_m:=0.06
    stereo_camera_node --ros-args -p source:=drive.avi -p loop:=true
"""
from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.task import Future
from sensor_msgs.msg import CameraInfo, Image

from dave_core.stereo_capture import CaptureConfig, CaptureError, SideBySideCapture
from dave_nodes.conversions import camera_info_from_intrinsics, numpy_to_image
from dave_nodes.params import ParameterError, declare_from_dataclass

NODE_NAME = 'stereo_camera'
LEFT_IMAGE_TOPIC = '/stereo/left/image_raw'
RIGHT_IMAGE_TOPIC = '/stereo/right/image_raw'
LEFT_INFO_TOPIC = '/stereo/left/camera_info'
RIGHT_INFO_TOPIC = '/stereo/right/camera_info'


def _describe(text: str) -> dict[str, str]:
    return {'description': text}


@dataclass
class StereoCameraConfig:
    """Parameters of the stereo camera driver; intrinsics are those of each rectified eye."""

    # A device path, not an index, by default: `-p source:=0` would arrive as an integer.
    source: str = field(default='/dev/video0', metadata=_describe(
        "camera device path (/dev/video0), index as a string ('0') or side-by-side video file"))
    width: int = field(default=640, metadata=_describe('width of ONE eye in pixels (frame is 2x)'))
    height: int = field(default=480, metadata=_describe('image height in pixels'))
    fps: float = field(default=30.0, metadata=_describe(
        'frame rate requested from a camera; playback rate of a video file'))
    fourcc: str = field(default='MJPG', metadata=_describe(
        "camera pixel format, 4 characters; '' keeps the driver's default"))
    loop: bool = field(default=False, metadata=_describe('restart a video file at its end'))
    fx: float = field(default=500.0, metadata=_describe('focal length x in pixels (calibration)'))
    fy: float = field(default=500.0, metadata=_describe('focal length y in pixels (calibration)'))
    cx: float = field(default=319.5, metadata=_describe('principal point x in pixels'))
    cy: float = field(default=239.5, metadata=_describe('principal point y in pixels'))
    baseline_m: float = field(default=0.06, metadata=_describe(
        'distance between the optical centres in metres (right P[3] = -fx * baseline)'))
    left_frame_id: str = field(default='stereo_left_optical_frame', metadata=_describe(
        'frame_id of the left images and camera_info (REP-103 optical frame)'))
    right_frame_id: str = field(default='stereo_right_optical_frame', metadata=_describe(
        'frame_id of the right images and camera_info'))

    def __post_init__(self) -> None:
        for name in ('fx', 'fy', 'baseline_m'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'parameter {name} must be > 0, got {value!r}')
        if not 0.0 <= self.cx < self.width or not 0.0 <= self.cy < self.height:
            raise ValueError(f'parameters cx, cy = ({self.cx}, {self.cy}) must lie inside the '
                             f'{self.width}x{self.height} image')
        for name in ('left_frame_id', 'right_frame_id'):
            if not getattr(self, name):
                raise ValueError(f'parameter {name} must not be empty')
        # The capture checks source, width, height, fps and fourcc with the same names.
        self.capture_config()

    def capture_config(self) -> CaptureConfig:
        try:
            return CaptureConfig(source=self.source, eye_width=self.width, eye_height=self.height,
                                 fps=self.fps, fourcc=self.fourcc)
        except ValueError as exc:
            message = str(exc).replace('eye_width', 'width').replace('eye_height', 'height')
            raise ValueError(f'parameter {message}') from None


class StereoCameraNode(Node):
    """Grabs side-by-side frames on its own thread and publishes each pair with one stamp."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self.config = declare_from_dataclass(self, StereoCameraConfig)
        c = self.config
        self._left_info = camera_info_from_intrinsics(c.width, c.height, c.fx, c.fy, c.cx, c.cy,
                                                      frame_id=c.left_frame_id)
        self._right_info = camera_info_from_intrinsics(c.width, c.height, c.fx, c.fy, c.cx, c.cy,
                                                       baseline_m=c.baseline_m,
                                                       frame_id=c.right_frame_id)
        qos = qos_profile_sensor_data  # images: newest frame matters, a late one is useless
        self._left_pub = self.create_publisher(Image, LEFT_IMAGE_TOPIC, qos)
        self._right_pub = self.create_publisher(Image, RIGHT_IMAGE_TOPIC, qos)
        self._left_info_pub = self.create_publisher(CameraInfo, LEFT_INFO_TOPIC, qos)
        self._right_info_pub = self.create_publisher(CameraInfo, RIGHT_INFO_TOPIC, qos)
        self._capture = SideBySideCapture(c.capture_config())  # CaptureError if it cannot open

        # `done` completes when the source ends or fails; the capture thread signals it through
        # a guard condition because only the executor's thread may complete futures safely.
        self.done = Future()
        self.error: str | None = None
        self.frames_published = 0
        self._finish_guard = self.create_guard_condition(self._on_finished)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._capture_loop, name='stereo_capture',
                                        daemon=True)
        kind = 'video file' if self._capture.is_file else 'camera'
        self.get_logger().info(f'publishing {c.width}x{c.height} stereo from {kind} {c.source!r}')
        self._thread.start()

    def _capture_loop(self) -> None:
        period = 1.0 / self.config.fps
        deadline = time.monotonic()
        frames_since_rewind = 0
        try:
            while not self._stop.is_set():
                if self._capture.is_file:
                    # A camera paces itself inside grab(); a file is played at `fps`.
                    deadline += period
                    if self._stop.wait(max(0.0, deadline - time.monotonic())):
                        break
                    if deadline < time.monotonic() - period:
                        deadline = time.monotonic()  # fell behind: restart pacing, no burst
                grabbed = self._capture.grab()
                if not grabbed and self.config.loop and frames_since_rewind > 0:
                    self._capture.rewind()
                    frames_since_rewind = 0
                    grabbed = self._capture.grab()
                if not grabbed:
                    if frames_since_rewind == 0:
                        raise CaptureError(
                            f'stereo source {self.config.source!r} has no readable frames')
                    break
                stamp = self.get_clock().now().to_msg()
                left, right = self._capture.retrieve()
                self._publish(stamp, left, right)
                frames_since_rewind += 1
        except CaptureError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported through `done`, not a dead thread
            if not self.context.ok():
                return  # the process is shutting down; publishing failed because of it
            self.error = f'stereo capture of {self.config.source!r} failed: {exc!r}'
        if self.context.ok():
            self._finish_guard.trigger()

    def _publish(self, stamp: Time, left: np.ndarray, right: np.ndarray) -> None:
        c = self.config
        self._left_pub.publish(numpy_to_image(left, 'rgb8', stamp, c.left_frame_id))
        self._right_pub.publish(numpy_to_image(right, 'rgb8', stamp, c.right_frame_id))
        # publish() serialises at once, so the two info messages are reused for every frame.
        self._left_info.header.stamp = stamp
        self._right_info.header.stamp = stamp
        self._left_info_pub.publish(self._left_info)
        self._right_info_pub.publish(self._right_info)
        self.frames_published += 1

    def _on_finished(self) -> None:
        if not self.done.done():
            if self.error is None:
                self.get_logger().info(f'stereo source {self.config.source!r} ended after '
                                       f'{self.frames_published} frames')
            self.done.set_result(self.error is None)

    def destroy_node(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._capture.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the driver until the source ends (video file) or the process is interrupted."""
    logger = rclpy.logging.get_logger(NODE_NAME)
    try:
        with rclpy.init(args=args):
            try:
                node = StereoCameraNode()
            except (CaptureError, ParameterError) as exc:
                logger.fatal(str(exc))
                return 1
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            try:
                executor.spin_until_future_complete(node.done)
            finally:
                executor.shutdown()
                node.destroy_node()
            if node.error is not None:
                logger.fatal(node.error)
                return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
