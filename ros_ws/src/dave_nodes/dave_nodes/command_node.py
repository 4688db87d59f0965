"""Command node: the one place that publishes /cmd_vel.

Takes the steering network's proposal (/steering/command) and the human's (/teleop/cmd_vel),
picks one by the mode (/dave/mode: manual, auto, shared, estop), applies the command governor
(speed, yaw-rate and acceleration limits; stop on stale images, silence, invalid values and
e-stop) and publishes /cmd_vel. Publishes immediately when a command arrives (lowest latency)
and from a watchdog timer otherwise, so the vehicle keeps receiving zero while anything is wrong.
/dave/intervention (latched) is true while a person drives: mode manual, or a takeover in shared mode.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from std_msgs.msg import Bool, Float64, String

from dave_core.command import MODES, Command, CommandGovernor, CommandLimits, GovernorOutput, parse_mode
from dave_nodes.params import declare_from_dataclass
from dave_nodes.runtime import run_node

# Commands: reliable, depth 1 — only the newest command matters and it must not be dropped.
COMMAND_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
# E-stop: reliable and volatile, so it matches any publisher (a transient-local subscription
# would ignore the volatile publishers of `ros2 topic pub` and most tools); the latch lives here.
ESTOP_QOS = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
# Mode and intervention are states: latched, so a node started later learns the current value.
# A mode publisher must be transient-local too (`ros2 topic pub --qos-durability transient_local`).
LATCHED_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                         durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)


@dataclass(frozen=True)
class CommandNodeConfig:
    watchdog_rate_hz: float = field(
        default=20.0, metadata={
            'description': 'rate of the watchdog that publishes when no proposal arrives [Hz] (0.1..1000)'})
    stamped: bool = field(
        default=False, metadata={'description': 'publish /cmd_vel as geometry_msgs/TwistStamped instead of Twist'})
    initial_mode: str = field(
        default='auto', metadata={'description': f'mode until /dave/mode says otherwise ({", ".join(MODES)})'})
    limits: CommandLimits = CommandLimits()

    def __post_init__(self) -> None:
        parse_mode(self.initial_mode)
        # inf made a 0 s timer (a core spent on ~5,000 /cmd_vel a second); 1e-12 overflowed rclpy's.
        if not 0.1 <= self.watchdog_rate_hz <= 1000.0:
            raise ValueError(f'watchdog_rate_hz must be in [0.1, 1000] Hz, got {self.watchdog_rate_hz!r}')


class CommandNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__('command', **node_kwargs)
        self.config = declare_from_dataclass(self, CommandNodeConfig)
        self.governor = CommandGovernor(self.config.limits, self.config.initial_mode)
        self._last_reason, self._last_source = '', ''
        self._intervention = self.governor.in_charge(self._now_s())[1]
        self._interventions = int(self._intervention)
        self._last_publish_s = 0.0
        self._latencies_ms: list[float] = []
        msg_type = TwistStamped if self.config.stamped else Twist
        self._cmd_pub = self.create_publisher(msg_type, '/cmd_vel', COMMAND_QOS)
        # Per-command stack latency (image stamp -> /cmd_vel publish), for demo/eval/bench.
        self._latency_pub = self.create_publisher(Float64, '/dave/stack_latency_ms', 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._intervention_pub = self.create_publisher(Bool, '/dave/intervention', LATCHED_QOS)
        self._intervention_pub.publish(Bool(data=self._intervention))
        self.create_subscription(TwistStamped, '/steering/command', self._on_proposal, COMMAND_QOS)
        self.create_subscription(TwistStamped, '/teleop/cmd_vel', self._on_teleop, COMMAND_QOS)
        self.create_subscription(String, '/dave/mode', self._on_mode, LATCHED_QOS)
        self.create_subscription(Bool, '/dave/estop', self._on_estop, ESTOP_QOS)
        self._watchdog_period_s = 1.0 / self.config.watchdog_rate_hz
        self.create_timer(self._watchdog_period_s, self._on_watchdog)
        self.create_timer(1.0, self._publish_diagnostics)

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_proposal(self, msg: TwistStamped) -> None:
        now_s = self._now_s()
        stamp_s = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.governor.propose(now_s, Command(msg.twist.linear.x, msg.twist.angular.z), stamp_s)
        self._publish(self.governor.update(now_s), now_s)

    def _on_teleop(self, msg: TwistStamped) -> None:
        now_s = self._now_s()
        self.governor.teleop(now_s, Command(msg.twist.linear.x, msg.twist.angular.z))
        self._publish(self.governor.update(now_s), now_s)

    def _on_mode(self, msg: String) -> None:
        try:
            mode = parse_mode(msg.data)
        except ValueError as exc:
            # A typo must not leave the vehicle in whatever mode it was: stop until a valid mode.
            self.get_logger().error(f'/dave/mode: {exc}; stopping until a valid mode arrives')
            mode = 'estop'
        if mode != self.governor.mode:
            self.get_logger().info(f'mode: {mode}')
        self.governor.set_mode(mode)
        now_s = self._now_s()
        self._publish(self.governor.update(now_s), now_s)

    def _on_estop(self, msg: Bool) -> None:
        if msg.data != self.governor.estop:
            self.get_logger().warning('e-stop engaged' if msg.data else 'e-stop released')
        self.governor.set_estop(msg.data)
        now_s = self._now_s()
        self._publish(self.governor.update(now_s), now_s)

    def _on_watchdog(self) -> None:
        now_s = self._now_s()
        # Proposals drive publishing while they flow; the watchdog only fills the gaps.
        if now_s - self._last_publish_s >= 0.9 * self._watchdog_period_s:
            self._publish(self.governor.update(now_s), now_s)

    def _publish(self, out: GovernorOutput, now_s: float) -> None:
        if self.config.stamped:
            msg = TwistStamped()
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.header.frame_id = 'base_link'
            twist = msg.twist
        else:
            msg = twist = Twist()
        twist.linear.x = float(out.command.linear_mps)
        twist.angular.z = float(out.command.angular_rps)
        self._cmd_pub.publish(msg)
        self._last_publish_s = now_s
        if out.image_stamp_s is not None:
            latency_ms = (self._now_s() - out.image_stamp_s) * 1e3
            self._latencies_ms.append(latency_ms)
            self._latency_pub.publish(Float64(data=latency_ms))
        if out.intervention != self._intervention:
            self._intervention = out.intervention
            self._interventions += out.intervention
            self._intervention_pub.publish(Bool(data=out.intervention))
            self.get_logger().info('a person drives' if out.intervention else 'the autopilot drives')
        if (out.reason, out.source) != (self._last_reason, self._last_source):
            # Log transitions only: a stopped vehicle must not flood the console.
            if out.reason in ('ok', 'no_command', 'no_teleop', 'mode_estop'):
                self.get_logger().info(f'command state: {out.reason} ({out.source})')
            else:
                self.get_logger().warning(f'stopping: {out.reason}')
            self._last_reason, self._last_source = out.reason, out.source

    def _publish_diagnostics(self) -> None:
        lat = sorted(self._latencies_ms)
        self._latencies_ms.clear()
        status = DiagnosticStatus(name='dave/command', hardware_id='dave')
        ok = self._last_reason == 'ok'
        status.level = DiagnosticStatus.OK if ok else DiagnosticStatus.WARN
        status.message = self._last_reason or 'starting'
        status.values = [
            KeyValue(key='state', value=self._last_reason),
            KeyValue(key='mode', value=self.governor.mode),
            KeyValue(key='source', value=self._last_source),
            KeyValue(key='interventions', value=str(self._interventions)),
            KeyValue(key='proposals_per_s', value=str(len(lat))),
            KeyValue(key='latency_ms_p50', value=f'{lat[len(lat) // 2]:.2f}' if lat else 'nan'),
            KeyValue(key='latency_ms_max', value=f'{lat[-1]:.2f}' if lat else 'nan'),
        ]
        diag = DiagnosticArray(status=[status])
        diag.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(diag)


def main(args: list[str] | None = None) -> int:
    return run_node(CommandNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
