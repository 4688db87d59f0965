"""Record node: the driving topics into rotating rosbag2 (MCAP) segments, as `dave record` runs it.

Subscribes to each topic with raw=True (DDS hands over the serialized CDR bytes; nothing is
deserialized) and passes them to dave_core.live_recording.LiveRecorder with the receive time on
the node clock (sim time under use_sim_time) as the bag time. QoS per topic, segment layout and
the crash guarantee are documented there.

Stops on SIGINT, SIGTERM or after `duration_s`, closing and publishing the current segment; a
write error (full disk) stops it with one error line naming the file, exit code 1.

    python -m dave_nodes.record_node --ros-args -p out:=/data/run1 -p split_s:=30.0
"""
from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

from dave_core import recording as rec
from dave_core.live_recording import LiveRecorder, RecordError, RecordSettings, RecordSummary, subscription_qos
from dave_nodes.params import declare_from_dataclass
from dave_nodes.runtime import NodeStartupError, run_node_with_exit

TICK_S = 0.1  # how often segment rotation and the duration are checked while no message arrives


@dataclass(frozen=True)
class RecordNodeConfig:
    out: str = field(default='', metadata={
        'description': 'directory to record into (required; new or empty: a recording is never overwritten)'})
    topics: list[str] = field(default_factory=lambda: list(rec.RECORD_TOPICS), metadata={
        'description': 'topics to record, names of the recording format (default: driving + teleop/autonomy)'})
    duration_s: float = field(default=0.0, metadata={
        'description': 'stop after this much node-clock time [s]; 0 records until stopped'})
    split_s: float = field(default=60.0, metadata={
        'description': 'segment length [s]: each segment is a complete bag; a crash loses at most one'})
    compress: bool = field(default=True, metadata={'description': 'zstd-compress the MCAP chunks'})

    def __post_init__(self) -> None:
        if not self.out:
            raise ValueError("parameter 'out' is required: the directory to record into")
        self.settings()

    def settings(self) -> RecordSettings:
        try:
            return RecordSettings(tuple(self.topics), self.split_s, self.duration_s, self.compress)
        except RecordError as exc:
            raise ValueError(str(exc)) from None


def qos_profile(topic: str) -> QoSProfile:
    """The rclpy profile of dave_core.live_recording.subscription_qos(topic)."""
    q = subscription_qos(topic)
    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST, depth=q.depth,
        reliability=QoSReliabilityPolicy.RELIABLE if q.reliable else QoSReliabilityPolicy.BEST_EFFORT,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL if q.transient_local else QoSDurabilityPolicy.VOLATILE)


def message_class(msgtype: str) -> type:
    """The rclpy message class of 'pkg/msg/Name' (needed to create even a raw subscription)."""
    package, _, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


class RecordNode(Node):
    def __init__(self, stop: threading.Event | None = None, **node_kwargs) -> None:
        super().__init__('record', **node_kwargs)
        self.config = declare_from_dataclass(self, RecordNodeConfig)
        self.stop = stop or threading.Event()
        self.stop_reason: str | None = None
        self.use_sim_time = bool(self.get_parameter('use_sim_time').value)
        try:
            self.recorder = LiveRecorder(self.config.out, self.config.settings(),
                                         extra={'use_sim_time': self.use_sim_time})
            self.recorder.start(self._now_ns())
        except RecordError as exc:
            raise NodeStartupError(str(exc)) from None
        self._subscribed = False
        # Steady clock: under use_sim_time a ROS-time timer would not fire until /clock arrives.
        self.create_timer(TICK_S, self._on_tick, clock=Clock(clock_type=ClockType.STEADY_TIME))
        settings = self.recorder.settings
        until = f'for {settings.duration_s:g} s' if settings.duration_s else 'until stopped (Ctrl-C)'
        n = len(settings.topics)
        self.get_logger().info(f'recording {n} topic{"s" if n != 1 else ""} to {self.recorder.out} '
                               f'in {settings.split_s:g} s segments, {until}')
        if self._now_ns() > 0:
            self._subscribe()

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _subscribe(self) -> None:
        # Under use_sim_time subscribing waits for the first /clock, so no message gets bag time 0;
        # latched topics (mode) are still delivered to the late subscription.
        for topic in self.recorder.settings.topics:
            msg_class = message_class(rec.TOPICS[topic].msgtype)
            self.create_subscription(msg_class, topic, lambda data, topic=topic: self._on_message(topic, data),
                                     qos_profile(topic), raw=True)
        self._subscribed = True

    def _on_message(self, topic: str, data: bytes) -> None:
        if self.stop_reason is not None:
            return
        try:
            self.recorder.write(topic, data, self._now_ns())
        except RecordError as exc:
            self._request_stop('error', str(exc))

    def _on_tick(self) -> None:
        if self.stop.is_set():
            self._request_stop('signal')
        if self.stop_reason is not None:
            return
        now_ns = self._now_ns()
        if not self._subscribed:
            if now_ns <= 0:
                return
            self._subscribe()
        try:
            if self.recorder.tick(now_ns):
                self._request_stop('duration')
        except RecordError as exc:
            self._request_stop('error', str(exc))

    def _request_stop(self, reason: str, error: str | None = None) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            if error is not None:
                self.get_logger().error(error)

    @property
    def done(self) -> bool:
        return self.stop_reason is not None or self.stop.is_set()

    def finish(self) -> RecordSummary:
        """Close the recording (current segment published, manifest final) and log one line."""
        summary = self.recorder.close(self._now_ns())
        if summary.error and self.stop_reason != 'error':  # a failure found while closing
            self.get_logger().error(summary.error)
        if summary.messages == 0 and summary.status == 'complete':
            self.get_logger().warning('no message received on any recorded topic (is the stack running, on '
                                      'the same ROS_DOMAIN_ID?); nothing was written')
        per_topic = ', '.join(f'{t} {n}' for t, n in sorted(summary.counts.items()))
        self.get_logger().info(f'recorded {summary.line()}' + (f' ({per_topic})' if per_topic else ''))
        return summary


def main(args: list[str] | None = None) -> int:
    # A signal only asks the spin loop to stop; the segment is closed with ROS still up.
    return run_node_with_exit(RecordNode, lambda node: 0 if node.finish().status == 'complete' else 1,
                              args, tick_s=TICK_S)


if __name__ == '__main__':
    raise SystemExit(main())
