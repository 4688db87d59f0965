"""Traversability node: left image -> traversability ConvNet (ONNX) -> /traversability/labels.

The published mono8 image (0 traversable, 1 obstacle, 2 unknown/sky; ARCHITECTURE.md) has the
camera's resolution and the input image's header, so consumers can pair it with the image and
its camera_info. A bad input (wrong encoding, a size the model was not trained for) costs one
error line and that frame, never the node.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from dave_core.onnx_runner import MAX_INTRA_OP_THREADS, MODEL_LOAD_ERRORS, OnnxModelError
from dave_core.segmentation import TraversabilitySegmenter
from dave_nodes.conversions import ImageConversionError, image_to_numpy, numpy_to_image
from dave_nodes.params import declare_from_dataclass
from dave_nodes.runtime import NodeStartupError, run_node

# Labels are a stream like the camera, but a consumer (costmap, recorder) that asks for reliable
# delivery must get them; a reliable writer also serves best-effort readers. Depth 1: only the
# newest labels matter.
LABELS_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)


@dataclass(frozen=True)
class TraversabilityNodeConfig:
    model_dir: str = field(default='', metadata={
        'description': 'directory holding MODEL_NAME.onnx and its MODEL_NAME.json sidecar'})
    model_name: str = field(default='traversability', metadata={
        'description': 'model file stem in model_dir'})
    image_topic: str = field(default='/stereo/left/image_raw', metadata={
        'description': 'the left camera image to label (rgb8 or bgr8)'})
    onnx_threads: int = field(default=1, metadata={'description': 'onnxruntime intra-op threads (1..64)'})

    def __post_init__(self) -> None:
        if not self.model_dir:
            raise ValueError('parameter model_dir is empty: point it at the directory of '
                             'traversability.onnx')
        if not self.image_topic:
            raise ValueError('parameter image_topic is empty')
        if not 1 <= self.onnx_threads <= MAX_INTRA_OP_THREADS:
            raise ValueError(f'onnx_threads must be in 1..{MAX_INTRA_OP_THREADS}, got {self.onnx_threads}')


class TraversabilityNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__('traversability', **node_kwargs)
        self.config = cfg = declare_from_dataclass(self, TraversabilityNodeConfig)
        model_path = Path(cfg.model_dir).expanduser() / f'{cfg.model_name}.onnx'
        try:
            self.segmenter = TraversabilitySegmenter.load(model_path, intra_op_threads=cfg.onnx_threads)
        except (*MODEL_LOAD_ERRORS, OSError, ValueError) as exc:
            raise NodeStartupError(f'traversability model {model_path}: {exc}') from None
        self.get_logger().info(f'loaded {model_path}')
        self._last_error = ''
        self._pub = self.create_publisher(Image, '/traversability/labels', LABELS_QOS)
        self.create_subscription(Image, cfg.image_topic, self._on_image, qos_profile_sensor_data)

    def _on_image(self, msg: Image) -> None:
        try:
            labels = self.segmenter.segment(image_to_numpy(msg), msg.encoding)
            self._last_error = ''
        except (ImageConversionError, ValueError, OnnxModelError) as exc:
            what = 'inference failed' if isinstance(exc, OnnxModelError) else 'left image rejected'
            error = f'{what}, no labels for this frame: {exc}'
            if error != self._last_error:  # once per kind of problem, not 15 lines a second
                self.get_logger().error(error)
                self._last_error = error
            return
        self._pub.publish(numpy_to_image(labels, 'mono8', msg.header.stamp, msg.header.frame_id))


def main(args: list[str] | None = None) -> int:
    return run_node(TraversabilityNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
