"""Steering node: synchronized stereo pair -> steering ConvNet (ONNX) -> /steering/command.

The proposal's header stamp is the stamp of the image pair it was computed from, so the command
node can stop the vehicle when the pictures behind a command are stale and measure stack latency.
Any bad input (wrong encoding, size the model was not trained for) yields a zero proposal and one
error line, never an exception that silences the stack.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from dave_core.autopilot import Pace, SteeringPilot
from dave_core.command import Command
from dave_core.onnx_runner import MAX_INTRA_OP_THREADS, OnnxModelError
from dave_core.stereo_sync import StereoSynchronizer
from dave_nodes.conversions import ImageConversionError, image_to_numpy
from dave_nodes.params import declare_from_dataclass
from dave_nodes.runtime import NodeStartupError, run_node

PROPOSAL_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)


@dataclass(frozen=True)
class SteeringNodeConfig:
    model_dir: str = field(default='', metadata={
        'description': 'directory holding MODEL_NAME.onnx and its MODEL_NAME.json sidecar'})
    model_name: str = field(default='steering', metadata={'description': 'model file stem in model_dir'})
    cruise_speed_mps: float = field(default=0.8, metadata={
        'description': 'forward speed when the model does not predict one, else its upper bound [m/s]'})
    pace: Pace = Pace()  # how a model's predicted speed is used (pace.* parameters)
    max_stereo_skew_s: float = field(default=0.005, metadata={
        'description': 'largest left/right stamp difference still paired [s] (0..1)'})
    onnx_threads: int = field(default=1, metadata={'description': 'onnxruntime intra-op threads (1..64)'})

    def __post_init__(self) -> None:
        if not self.model_dir:
            raise ValueError('parameter model_dir is empty: point it at the directory of steering.onnx')
        if not 0 < self.cruise_speed_mps < float('inf'):  # 0: "ok" everywhere, and the vehicle never moves
            raise ValueError(f'cruise_speed_mps must be a finite number > 0, got {self.cruise_speed_mps}')
        if self.pace.min_speed_mps > self.cruise_speed_mps:
            raise ValueError(f'pace.min_speed_mps ({self.pace.min_speed_mps}) exceeds cruise_speed_mps '
                             f'({self.cruise_speed_mps}), which caps every predicted speed')
        if not 0 <= self.max_stereo_skew_s <= 1.0:  # a second apart is not a stereo pair
            raise ValueError(f'max_stereo_skew_s must be in [0, 1] s, got {self.max_stereo_skew_s}')
        if not 1 <= self.onnx_threads <= MAX_INTRA_OP_THREADS:
            raise ValueError(f'onnx_threads must be in 1..{MAX_INTRA_OP_THREADS}, got {self.onnx_threads}')


class SteeringNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__('steering', **node_kwargs)
        self.config = cfg = declare_from_dataclass(self, SteeringNodeConfig)
        model_path = Path(cfg.model_dir).expanduser() / f'{cfg.model_name}.onnx'
        try:
            self.pilot = SteeringPilot.from_file(model_path, cruise_speed_mps=cfg.cruise_speed_mps,
                                                 onnx_threads=cfg.onnx_threads, pace=cfg.pace)
        except (OSError, ValueError) as exc:
            raise NodeStartupError(f'steering model {model_path}: {exc}') from None
        self.get_logger().info(f'loaded {model_path}')
        self.sync = StereoSynchronizer(max_skew_ns=int(cfg.max_stereo_skew_s * 1e9), queue_size=4)
        self._last_error = ''
        self._pub = self.create_publisher(TwistStamped, '/steering/command', PROPOSAL_QOS)
        self.create_subscription(Image, '/stereo/left/image_raw', self._on_left, qos_profile_sensor_data)
        self.create_subscription(Image, '/stereo/right/image_raw', self._on_right, qos_profile_sensor_data)

    def _on_left(self, msg: Image) -> None:
        pair = self.sync.push_left(_stamp_ns(msg), msg)
        if pair is not None:
            self._drive(pair.left, pair.right)

    def _on_right(self, msg: Image) -> None:
        pair = self.sync.push_right(_stamp_ns(msg), msg)
        if pair is not None:
            self._drive(pair.left, pair.right)

    def _drive(self, left_msg: Image, right_msg: Image) -> None:
        try:
            left = image_to_numpy(left_msg)
            right = image_to_numpy(right_msg)
            command = self.pilot.propose(left, right, left_msg.encoding, right_msg.encoding)
            self._last_error = ''
        except (ImageConversionError, ValueError, OnnxModelError) as exc:
            # Stop: a proposal we cannot compute must not keep the truck going. An inference
            # failure (onnxruntime out of memory, say) is reported the same way instead of
            # killing the node, so the next good frame drives again.
            command = Command()
            what = 'inference failed' if isinstance(exc, OnnxModelError) else 'stereo input rejected'
            error = f'{what}, proposing stop: {exc}'
            if error != self._last_error:
                self.get_logger().error(error)
                self._last_error = error
        out = TwistStamped()
        out.header.stamp = left_msg.header.stamp
        out.header.frame_id = 'base_link'
        out.twist.linear.x = float(command.linear_mps)
        out.twist.angular.z = float(command.angular_rps)
        self._pub.publish(out)


def _stamp_ns(msg: Image) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def main(args: list[str] | None = None) -> int:
    return run_node(SteeringNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
