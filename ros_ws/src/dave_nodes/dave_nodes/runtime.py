"""Shared `main()` plumbing for dave nodes: init, spin, one-line errors, clean exit codes."""
from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

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
