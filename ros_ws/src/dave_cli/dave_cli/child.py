"""Running a node as a child process of a `dave` command, with the signals a user sends."""
from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping, Sequence


def run_child(command: Sequence[str], env: Mapping[str, str], *, forward_sigint: bool = False) -> int:
    """Run `command` until it exits and return its exit code.

    A child keeps rclpy (and MuJoCo) out of the CLI. Ctrl-C in a terminal reaches the child through
    the process group, so by default a SIGINT here only waits for the child's clean exit;
    `forward_sigint` also passes it on, for a child that treats a repeated SIGINT as the same stop
    request (`kill -INT` of the CLI alone then stops it too). SIGTERM is always forwarded, so `kill`
    stops the node cleanly. Should this process leave anyway, the child is killed, never orphaned.
    """
    child = subprocess.Popen(list(command), env=dict(env))
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                if forward_sigint:
                    child.send_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if child.poll() is None:
            child.kill()
            child.wait()
