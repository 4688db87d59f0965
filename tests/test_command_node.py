"""The command node in a real rclpy graph: proposals and teleop in, governed /cmd_vel out, modes, e-stop latches."""
import time

import pytest
import rclpy
from geometry_msgs.msg import Twist, TwistStamped
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from std_msgs.msg import Bool, String

from dave_nodes.command_node import CommandNode

pytestmark = pytest.mark.ros
RELIABLE = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)


@pytest.fixture
def graph():
    ctx = Context()
    rclpy.init(context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    node = CommandNode(context=ctx)
    probe = rclpy.create_node('probe', context=ctx)
    executor.add_node(node)
    executor.add_node(probe)
    try:
        yield executor, node, probe
    finally:
        executor.shutdown()
        node.destroy_node()
        probe.destroy_node()
        ctx.try_shutdown()


def _spin(executor, seconds, tick=None):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if tick:
            tick()
        executor.spin_once(timeout_sec=0.02)


def test_proposals_drive_and_estop_latches(graph):
    executor, node, probe = graph
    received: list[Twist] = []
    probe.create_subscription(Twist, '/cmd_vel', received.append, RELIABLE)
    proposals = probe.create_publisher(TwistStamped, '/steering/command', RELIABLE)
    estop = probe.create_publisher(Bool, '/dave/estop', RELIABLE)  # volatile, like `ros2 topic pub`

    def propose(image_age_s=0.02):
        msg = TwistStamped()
        stamp_ns = node.get_clock().now().nanoseconds - int(image_age_s * 1e9)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.twist.linear.x, msg.twist.angular.z = 1.0, 0.5
        proposals.publish(msg)

    _spin(executor, 1.5, propose)
    assert max(m.linear.x for m in received) == pytest.approx(1.0)
    assert max(m.angular.z for m in received) == pytest.approx(0.5)

    estop.publish(Bool(data=True))
    _spin(executor, 0.3, propose)
    received.clear()
    _spin(executor, 0.5, propose)
    assert received and all(m.linear.x == 0.0 and m.angular.z == 0.0 for m in received)

    estop.publish(Bool(data=False))
    _spin(executor, 0.3, propose)
    received.clear()
    _spin(executor, 0.5, propose)
    assert received[-1].linear.x > 0.0


def test_stale_images_and_silence_stop_the_vehicle(graph):
    executor, node, probe = graph
    received: list[Twist] = []
    probe.create_subscription(Twist, '/cmd_vel', received.append, RELIABLE)
    proposals = probe.create_publisher(TwistStamped, '/steering/command', RELIABLE)

    def stale_proposal():
        msg = TwistStamped()
        stamp_ns = node.get_clock().now().nanoseconds - 2_000_000_000  # image 2 s old
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.twist.linear.x = 1.0
        proposals.publish(msg)

    _spin(executor, 1.0, stale_proposal)
    assert len(received) > 10 and all(m.linear.x == 0.0 for m in received)
    received.clear()
    _spin(executor, 0.6)  # nothing proposed at all: the watchdog keeps publishing zero
    assert len(received) >= 8 and all(m.linear.x == 0.0 for m in received)


@pytest.mark.parametrize('rate', [float('inf'), 1e-12, 0.0, float('nan')])
def test_a_watchdog_rate_out_of_range_is_named(rate):
    from dave_nodes.command_node import CommandNodeConfig
    with pytest.raises(ValueError, match=r'watchdog_rate_hz must be in \[0\.1, 1000\] Hz'):
        CommandNodeConfig(watchdog_rate_hz=rate)


LATCHED = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)


def _twist_stamped(node, v, w, age_s=0.02):
    msg = TwistStamped()
    stamp_ns = node.get_clock().now().nanoseconds - int(age_s * 1e9)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.twist.linear.x, msg.twist.angular.z = v, w
    return msg


def test_a_mode_latched_before_the_node_starts_is_obeyed_and_teleop_drives_in_manual(context):
    probe = rclpy.create_node('probe', context=context)
    mode = probe.create_publisher(String, '/dave/mode', LATCHED)
    mode.publish(String(data='manual'))  # before the command node exists
    node = CommandNode(context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(probe)
    try:
        received: list[Twist] = []
        probe.create_subscription(Twist, '/cmd_vel', received.append, RELIABLE)
        teleop = probe.create_publisher(TwistStamped, '/teleop/cmd_vel', RELIABLE)
        proposals = probe.create_publisher(TwistStamped, '/steering/command', RELIABLE)

        def tick():
            teleop.publish(_twist_stamped(node, 0.4, -0.3))
            proposals.publish(_twist_stamped(node, 1.0, 1.0))

        _spin(executor, 1.0, tick)
        assert node.governor.mode == 'manual'
        assert received[-1].linear.x == pytest.approx(0.4) and received[-1].angular.z == pytest.approx(-0.3)
        received.clear()
        _spin(executor, 0.8, lambda: proposals.publish(_twist_stamped(node, 1.0, 1.0)))  # teleop silent
        assert received[-1].linear.x == 0.0 and received[-1].angular.z == 0.0
    finally:
        executor.shutdown()
        node.destroy_node()
        probe.destroy_node()


def test_shared_mode_takeover_is_an_intervention_and_a_bad_mode_stops(graph):
    executor, node, probe = graph
    received: list[Twist] = []
    probe.create_subscription(Twist, '/cmd_vel', received.append, RELIABLE)
    teleop = probe.create_publisher(TwistStamped, '/teleop/cmd_vel', RELIABLE)
    proposals = probe.create_publisher(TwistStamped, '/steering/command', RELIABLE)
    mode = probe.create_publisher(String, '/dave/mode', LATCHED)
    human = [0.0]

    def tick():
        teleop.publish(_twist_stamped(node, human[0], 0.0))
        proposals.publish(_twist_stamped(node, 1.0, 0.0))

    mode.publish(String(data='shared'))
    _spin(executor, 1.2, tick)
    assert received[-1].linear.x == pytest.approx(1.0)  # hands off: the autopilot drives
    human[0] = 0.3
    _spin(executor, 0.5, tick)
    assert received[-1].linear.x == pytest.approx(0.3)
    # A subscriber that joins during the takeover still learns it (latched).
    interventions: list[bool] = []
    probe.create_subscription(Bool, '/dave/intervention', lambda m: interventions.append(m.data), LATCHED)
    _spin(executor, 0.3, tick)
    assert interventions and interventions[-1] is True
    human[0] = 0.0
    _spin(executor, 1.6, tick)  # zero for longer than takeover_release_s: the autopilot resumes
    assert interventions[-1] is False and received[-1].linear.x == pytest.approx(1.0)

    mode.publish(String(data='atuo'))
    _spin(executor, 0.5, tick)
    assert node.governor.mode == 'estop' and received[-1].linear.x == 0.0


def test_an_unknown_initial_mode_is_named():
    from dave_nodes.command_node import CommandNodeConfig
    with pytest.raises(ValueError, match=r"unknown mode 'drive'"):
        CommandNodeConfig(initial_mode='drive')
