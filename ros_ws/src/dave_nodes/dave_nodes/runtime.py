"""Shared `main()` plumbing for dave nodes: init, spin, one-line errors, clean exit codes."""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from dave_nodes.params import ParameterError


class NodeStartupError(RuntimeError):
    """A node cannot start (missing model, bad source...); the message names the culprit."""


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """Create the node, spin it until Ctrl-C / shutdown; return a process exit code.

    Start-up errors are printed as one line on stderr (the ROS logger may not exist yet),
    and the exit code is 2 so `dave launch` reports the node as failed.
    """
    with rclpy.init(args=args):
        try:
            node = make_node()
        except (ParameterError, NodeStartupError) as exc:
            print(f'error: {exc}', file=sys.stderr, flush=True)
            return 2
        except KeyboardInterrupt:  # stopped while loading (the launch is shutting down): no traceback
            return 130
        try:
            rclpy.spin(node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except Exception:
            # A signal can shut the context down between two spin steps; the executor then
            # fails on its wait set instead of raising ExternalShutdownException.
            if node.context.ok():
                raise
        finally:
            node.destroy_node()
    return 0


def run_node_with_exit(make_node: Callable[[threading.Event], Node], finish: Callable[[Node], int],
                       args: list[str] | None = None, tick_s: float = 0.1) -> int:
    """`main()` of a node that must act on its way out with ROS still up, e.g. publish a last zero
    command (teleop) or close its recording (record); returns `finish(node)`, the exit code.

    rclpy's own handlers would shut the context down at the first signal, before the node could
    publish or write; here SIGINT and SIGTERM only set the event `make_node` receives, and the
    node's `done` property ends the spin. Signals after that are ignored: `dave record` forwards
    its own SIGINT, which can land after a terminal's Ctrl-C already stopped the node.
    """
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    with rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO):
        try:
            node = make_node(stop)
        except (ParameterError, NodeStartupError) as exc:
            print(f'error: {exc}', file=sys.stderr, flush=True)
            return 2
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            while not node.done:
                executor.spin_once(timeout_sec=tick_s)
        except ExternalShutdownException:
            pass
        finally:
            try:
                code = finish(node)
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, signal.SIG_IGN)
                executor.shutdown()
                node.destroy_node()
    return code
