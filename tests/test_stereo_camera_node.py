"""Stereo camera driver on a side-by-side video file, with real rclpy subscribers in one process."""
import subprocess
import sys
import time

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from dave_core.stereo_capture import CaptureError
from dave_core.stereo_sync import StereoSynchronizer
from dave_nodes.conversions import image_to_numpy, stereo_baseline_from_camera_info
from dave_nodes.params import ParameterError
from dave_nodes.stereo_camera_node import StereoCameraNode
from test_stereo_capture import write_side_by_side_video

pytestmark = pytest.mark.ros

EYE_W, EYE_H = 160, 120


def _params(source, **overrides) -> list[Parameter]:
    values = {'source': str(source), 'width': EYE_W, 'height': EYE_H, 'fx': 150.0, 'fy': 150.0,
              'cx': 79.5, 'cy': 59.5, 'baseline_m': 0.1, 'fps': 60.0} | overrides
    return [Parameter(name, value=value) for name, value in values.items()]


class StereoListener:
    """Subscribes like a consumer of the driver does and pairs images on identical stamps."""

    def __init__(self, context: Context):
        self.node = rclpy.create_node('stereo_listener', context=context)
        self.sync = StereoSynchronizer(max_skew_ns=0, queue_size=10)
        self.pairs = []
        self.infos: dict[str, CameraInfo] = {}
        qos = qos_profile_sensor_data
        self.node.create_subscription(Image, '/stereo/left/image_raw', self._left, qos)
        self.node.create_subscription(Image, '/stereo/right/image_raw', self._right, qos)
        for side in ('left', 'right'):
            def keep_info(msg: CameraInfo, side: str = side) -> None:
                self.infos[side] = msg
            self.node.create_subscription(CameraInfo, f'/stereo/{side}/camera_info', keep_info, qos)

    @staticmethod
    def _stamp_ns(msg: Image) -> int:
        return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec

    def _left(self, msg: Image) -> None:
        self._keep(self.sync.push_left(self._stamp_ns(msg), msg))

    def _right(self, msg: Image) -> None:
        self._keep(self.sync.push_right(self._stamp_ns(msg), msg))

    def _keep(self, pair) -> None:
        if pair is not None:
            self.pairs.append(pair)


def _spin_until(executor, condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.05)
    return condition()


def test_publishes_pairs_with_identical_stamps_sizes_and_camera_info(context, tmp_path):
    video = write_side_by_side_video(tmp_path / 'sbs.avi', frames=12, eye_width=EYE_W,
                                     eye_height=EYE_H)
    listener = StereoListener(context)
    camera = StereoCameraNode(context=context, parameter_overrides=_params(video, loop=True))
    executor = SingleThreadedExecutor(context=context)
    try:
        executor.add_node(listener.node)
        executor.add_node(camera)
        started_ns = time.time_ns()
        assert _spin_until(executor, lambda: len(listener.pairs) >= 15 and len(listener.infos) == 2,
                           timeout_s=15.0), f'only {len(listener.pairs)} pairs received'
    finally:
        executor.shutdown()
        camera.destroy_node()
        listener.node.destroy_node()

    pairs = listener.pairs
    stamps = [p.stamp_ns for p in pairs]
    assert stamps == sorted(set(stamps))
    # Stamps are capture times from the node's (system) clock, taken during this test.
    assert started_ns - 1_000_000_000 < stamps[0] and stamps[-1] < time.time_ns()
    for pair in pairs:
        assert pair.skew_ns == 0
        for msg, frame_id in ((pair.left, 'stereo_left_optical_frame'),
                              (pair.right, 'stereo_right_optical_frame')):
            assert (msg.encoding, msg.width, msg.height, msg.header.frame_id) == \
                ('rgb8', EYE_W, EYE_H, frame_id)
        left, right = image_to_numpy(pair.left), image_to_numpy(pair.right)
        assert left.shape == right.shape == (EYE_H, EYE_W, 3)
        assert left[..., 0].mean() > 200 and right[..., 2].mean() > 200  # not swapped, RGB
        # Both halves come from the same video frame (green encodes the frame index).
        assert abs(left[..., 1].mean() - right[..., 1].mean()) < 4
    # Looping: frame indices wrap around instead of the stream ending after 12 frames.
    greens = [image_to_numpy(p.left)[..., 1].mean() for p in pairs]
    assert max(greens) > 80 and any(b < a - 50 for a, b in zip(greens, greens[1:]))

    left_info, right_info = listener.infos['left'], listener.infos['right']
    assert (right_info.width, right_info.height) == (EYE_W, EYE_H)
    assert list(right_info.k) == [150.0, 0.0, 79.5, 0.0, 150.0, 59.5, 0.0, 0.0, 1.0]
    assert right_info.p[3] == pytest.approx(-150.0 * 0.1)
    assert left_info.p[3] == 0.0
    assert stereo_baseline_from_camera_info(right_info) == pytest.approx(0.1)
    assert right_info.header.frame_id == 'stereo_right_optical_frame'


def test_video_without_loop_publishes_every_frame_then_completes(context, tmp_path):
    video = write_side_by_side_video(tmp_path / 'sbs.avi', frames=5, eye_width=EYE_W,
                                     eye_height=EYE_H)
    camera = StereoCameraNode(context=context, parameter_overrides=_params(video, fps=100.0))
    executor = SingleThreadedExecutor(context=context)
    try:
        executor.add_node(camera)
        executor.spin_until_future_complete(camera.done, timeout_sec=10.0)
        assert camera.done.done() and camera.done.result() is True
        assert camera.frames_published == 5 and camera.error is None
    finally:
        executor.shutdown()
        camera.destroy_node()


def test_frames_of_the_wrong_size_end_the_node_with_the_error(context, tmp_path):
    video = write_side_by_side_video(tmp_path / 'sbs.avi', frames=3, eye_width=EYE_W,
                                     eye_height=EYE_H)
    camera = StereoCameraNode(context=context,
                              parameter_overrides=_params(video, width=2 * EYE_W))
    executor = SingleThreadedExecutor(context=context)
    try:
        executor.add_node(camera)
        executor.spin_until_future_complete(camera.done, timeout_sec=10.0)
        assert camera.done.done() and camera.done.result() is False
        assert camera.frames_published == 0
        assert camera.error == (f"stereo source '{video}' gives {2 * EYE_W}x{EYE_H} frames; "
                                f'width/height parameters expect side-by-side '
                                f'{4 * EYE_W}x{EYE_H}')
    finally:
        executor.shutdown()
        camera.destroy_node()


def test_bad_source_and_bad_parameter_raise_naming_them(context, tmp_path):
    missing = tmp_path / 'missing.avi'
    with pytest.raises(CaptureError, match=f"stereo source '{missing}': no such video file"):
        StereoCameraNode(context=context, parameter_overrides=_params(missing))
    video = write_side_by_side_video(tmp_path / 'sbs.avi', frames=1, eye_width=EYE_W,
                                     eye_height=EYE_H)
    with pytest.raises(ParameterError, match='parameter fx must be > 0'):
        StereoCameraNode(context=context, parameter_overrides=_params(video, fx=-1.0))
    with pytest.raises(ParameterError,
                       match=r'parameters cx, cy = \(500.0, 59.5\) must lie inside'):
        StereoCameraNode(context=context, parameter_overrides=_params(video, cx=500.0))
    # ROS ignores a value for a parameter a node does not have: a typo would leave the default.
    typo = _params(video) + [Parameter('fxx', value=300.0)]
    with pytest.raises(ParameterError, match=r"node 'stereo_camera' has no parameter 'fxx' \(a typo"):
        StereoCameraNode(context=context, parameter_overrides=typo)


def _run_main(*ros_args: str) -> subprocess.CompletedProcess:
    # conftest has put this run's localhost-only DDS settings into os.environ for children.
    return subprocess.run(
        [sys.executable, '-m', 'dave_nodes.stereo_camera_node', '--ros-args', *ros_args],
        capture_output=True, text=True, timeout=60)


def _lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def test_process_with_unopenable_source_prints_one_error_line_and_exits_1(tmp_path):
    missing = tmp_path / 'no_such_video.avi'
    result = _run_main('-p', f'source:={missing}')
    assert result.returncode == 1
    lines = _lines(result)
    assert len(lines) == 1, lines
    assert str(missing) in lines[0] and 'FATAL' in lines[0]


def test_process_plays_a_file_quietly_and_exits_0(tmp_path):
    video = write_side_by_side_video(tmp_path / 'sbs.avi', frames=4, eye_width=EYE_W,
                                     eye_height=EYE_H)
    args = [f'{p.name}:={p.value}' for p in _params(video, fps=100.0)]
    result = _run_main(*[item for arg in args for item in ('-p', arg)])
    assert result.returncode == 0, result.stderr
    lines = _lines(result)
    assert len(lines) == 2, lines  # one line at start, one at the end of the file
    assert 'ended after 4 frames' in lines[-1]
