"""How a command-line tool ends: Ctrl-C and file-system errors as exit codes, not tracebacks.

A full disk, a read-only --out or a directory where a file was expected is the user's
environment, not a bug: one line naming the file and the reason, exit 2. Ctrl-C exits 130
(128 + SIGINT, as shells report it) without a traceback; the writers clean up after themselves.
"""
from __future__ import annotations

import sys
from typing import Callable

INTERRUPTED = 130
FAILED = 2


def os_error_line(exc: OSError) -> str:
    """'PATH: reason' (both paths for a rename), or the error text when no file is named."""
    reason = exc.strerror or str(exc)
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    if not paths:
        return reason
    return f"{' -> '.join(str(p) for p in paths)}: {reason}"


def run_tool(main: Callable[[], int | None], prog: str) -> int:
    """Run `main`; return its exit code, or INTERRUPTED / FAILED with one line on stderr."""
    try:
        return int(main() or 0)
    except KeyboardInterrupt:
        return INTERRUPTED
    except OSError as exc:
        print(f'{prog}: error: {os_error_line(exc)}', file=sys.stderr)
        return FAILED
