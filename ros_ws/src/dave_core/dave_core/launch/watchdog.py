"""Kills the process groups of a launch if dave launch dies without stopping them.

LaunchRunner runs this file as its own small process (by path, so no package import)
and writes to its stdin `+PGID` when a process group starts and `-PGID` once it is gone.
End of input with groups left means the runner died (for example `kill -9`): each
remaining group gets SIGKILL. The kernel's parent-death signal only reaches the direct
children of the runner; this also reaches what those children started.
"""
from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterable


def watch(lines: Iterable[str]) -> set[int]:
    """Follow `+PGID`/`-PGID` lines; return the groups still registered at the end."""
    groups: set[int] = set()
    for line in lines:
        text = line.strip()
        if len(text) > 1 and text[0] in '+-' and text[1:].isdigit():
            (groups.add if text[0] == '+' else groups.discard)(int(text[1:]))
    return groups


def main() -> int:
    # Its own session already keeps terminal Ctrl-C away; ignore stray SIGINTs too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for pgid in watch(sys.stdin):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass  # already gone
    return 0


if __name__ == '__main__':
    sys.exit(main())
