"""Steering from pixels to proposal: the autopilot core (no ROS) and the node on real DDS."""
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import TwistStamped
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from dave_core.autopilot import SteeringPilot
from dave_nodes.conversions import numpy_to_image
from dave_nodes.runtime import NodeStartupError
from dave_nodes.steering_node import SteeringNode

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / 'models'
RNG = np.random.default_rng(0)


def _pair(width=320, height=240):
    return (RNG.integers(0, 256, (height, width, 3), dtype=np.uint8),
            RNG.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _start_view(seed=3):
    """The stereo pair a generated world's start pose shows (the simulator's camera, rendered)."""
    from dave_sim.simulator import Simulator
    from dave_sim.world import generate_world

    with Simulator(generate_world(seed)) as sim:
        frame = sim.render()
    return frame.left, frame.right


def test_pilot_drives_the_models_curvature_at_its_speed_up_to_cruise_speed():
    pilot = SteeringPilot.from_file(MODELS / 'steering.onnx', cruise_speed_mps=0.5)
    assert pilot.predictor.model.output_names == ['curvature_per_m', 'speed_mps']  # the shipped model's
    left, right = _start_view()  # open ground ahead: it drives
    output = pilot.predictor.predict(left, right)
    command = pilot.propose(left, right)
    assert output.speed_mps >= pilot.pace.turn_in_place_below_mps
    assert command.linear_mps == pytest.approx(min(0.5, max(pilot.pace.min_speed_mps, output.speed_mps)))
    assert command.angular_rps == pytest.approx(command.linear_mps * output.curvature_per_m, rel=1e-5)
    left, right = _pair()  # noise: whatever it proposes is a speed it was trained to give, or a turn
    command = pilot.propose(left, right)
    assert 0 <= command.linear_mps <= 0.5 and math.isfinite(command.angular_rps)


def test_bgr_input_is_converted_not_misread():
    pilot = SteeringPilot.from_file(MODELS / 'steering.onnx')
    left, right = _pair()
    as_rgb = pilot.propose(left, right, 'rgb8', 'rgb8')
    as_bgr = pilot.propose(np.ascontiguousarray(left[..., ::-1]), np.ascontiguousarray(right[..., ::-1]),
                           'bgr8', 'bgr8')
    assert as_bgr.angular_rps == pytest.approx(as_rgb.angular_rps, abs=1e-6)


def test_bad_inputs_name_the_culprit():
    pilot = SteeringPilot.from_file(MODELS / 'steering.onnx')
    left, right = _pair()
    with pytest.raises(ValueError, match="left image encoding 'mono8'"):
        pilot.propose(left[..., 0], right, 'mono8', 'rgb8')
    unsized = SteeringPilot(pilot.predictor, expected_size=None)
    with pytest.raises(ValueError, match='sizes differ'):
        unsized.propose(left, _pair(160, 120)[1])
    sized = SteeringPilot(pilot.predictor, expected_size=(320, 240))
    with pytest.raises(ValueError, match='right image is 640x480, the model was trained on 320x240'):
        sized.propose(left, _pair(640, 480)[1])


def test_missing_or_corrupt_model_is_one_error_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match='nothing.onnx'):
        SteeringPilot.from_file(tmp_path / 'nothing.onnx')
    (tmp_path / 'steering.onnx').write_bytes(b'not a model')
    (tmp_path / 'steering.json').write_text((MODELS / 'steering.json').read_text())
    with pytest.raises(ValueError, match='steering.onnx'):
        SteeringPilot.from_file(tmp_path / 'steering.onnx')


@pytest.fixture
def graph():
    ctx = Context()
    rclpy.init(context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    try:
        yield ctx, executor
    finally:
        executor.shutdown()
        ctx.try_shutdown()


@pytest.mark.ros
def test_node_proposes_for_pairs_and_stops_on_a_bad_encoding(graph):
    ctx, executor = graph
    node = SteeringNode(context=ctx, parameter_overrides=[Parameter('model_dir', value=str(MODELS))])
    probe = rclpy.create_node('probe', context=ctx)
    for n in (node, probe):
        executor.add_node(n)
    proposals: list[TwistStamped] = []
    probe.create_subscription(TwistStamped, '/steering/command', proposals.append,
                              QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE))
    left_pub = probe.create_publisher(Image, '/stereo/left/image_raw', qos_profile_sensor_data)
    right_pub = probe.create_publisher(Image, '/stereo/right/image_raw', qos_profile_sensor_data)

    def publish(encoding, count):
        for i in range(count):
            stamp = node.get_clock().now().to_msg()
            left, right = _pair()
            if encoding == 'mono8':
                left, right = left[..., 0].copy(), right[..., 0].copy()
            left_pub.publish(numpy_to_image(left, encoding, stamp))
            right_pub.publish(numpy_to_image(right, encoding, stamp))
            end = time.monotonic() + 0.1
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.01)

    try:
        publish('rgb8', 10)
        good = list(proposals)
        assert len(good) >= 5
        assert all(p.twist.linear.x > 0 or p.twist.angular.z != 0 for p in good)  # drive or turn in place
        proposals.clear()
        publish('mono8', 10)
        assert len(proposals) >= 5
        assert all(p.twist.linear.x == 0.0 and p.twist.angular.z == 0.0 for p in proposals)
        # onnxruntime failing at run time (the boundary: out of memory, say) also proposes stop,
        # once logged, and the node lives on to drive the next good frame.
        model = node.pilot.predictor.model
        session = model.session

        class FailingSession:
            def run(self, *args):
                raise RuntimeError('Failed to allocate memory')

        model.session = FailingSession()
        proposals.clear()
        publish('rgb8', 10)
        assert len(proposals) >= 5
        assert all(p.twist.linear.x == 0.0 and p.twist.angular.z == 0.0 for p in proposals)
        model.session = session
        proposals.clear()
        publish('rgb8', 10)
        assert len(proposals) >= 5 and all(p.twist.linear.x > 0 or p.twist.angular.z != 0 for p in proposals)
    finally:
        node.destroy_node()
        probe.destroy_node()


@pytest.mark.ros
def test_node_refuses_to_start_without_its_model(graph, tmp_path):
    ctx, _ = graph
    with pytest.raises(NodeStartupError, match=str(tmp_path / 'steering.onnx')):
        SteeringNode(context=ctx, parameter_overrides=[Parameter('model_dir', value=str(tmp_path))])


@pytest.mark.parametrize('overrides, culprit', [
    ({'onnx_threads': 100_000}, r'onnx_threads must be in 1\.\.64'),  # hung onnxruntime's start-up
    ({'onnx_threads': 2 ** 40}, r'onnx_threads must be in 1\.\.64'),  # overflowed its int
    ({'max_stereo_skew_s': math.inf}, r'max_stereo_skew_s must be in \[0, 1\] s'),  # crashed the node
    ({'cruise_speed_mps': 0.0}, 'cruise_speed_mps must be a finite number > 0'),  # "ok", never moved
    ({'cruise_speed_mps': 0.2}, r'pace\.min_speed_mps \(0\.25\) exceeds cruise_speed_mps \(0\.2\)'),
])
def test_steering_parameters_out_of_range_are_named(overrides, culprit):
    from dave_nodes.steering_node import SteeringNodeConfig
    with pytest.raises(ValueError, match=culprit):
        SteeringNodeConfig(model_dir='models', **overrides)


def test_a_node_stopped_while_loading_exits_quietly(capsys):
    from dave_nodes.runtime import run_node

    def interrupted_while_loading():
        raise KeyboardInterrupt

    assert run_node(interrupted_while_loading, args=[]) == 130
    assert capsys.readouterr().err == ''
