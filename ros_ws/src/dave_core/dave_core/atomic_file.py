"""Atomic file replacement: readers see the old file or the complete new one, never a partial one.

Write to a unique temporary name in the target's directory (same file system, so the rename
is atomic), flush it to disk, then `os.replace`. Unlike tempfile.mkstemp (mode 0600) the
temporary file gets the normal umask-derived permissions, so shipped models stay readable.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


def temporary_sibling(path: Path) -> Path:
    """A fresh hidden name beside `path` (nothing is created)."""
    return path.with_name(f'.{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')


def fsync_file(path: Path) -> None:
    """Flush a written file's data to disk (before a rename makes it visible)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` to produce the file, then move it onto `path` in one step.

    If `write` raises, `path` is untouched and the temporary file is removed.
    """
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        write(tmp)
        if not tmp.is_file():
            raise FileNotFoundError(f'{tmp}: the writer did not create the file')
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace `path` with `data` atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, 'xb') as f:
            f.write(data)
    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Replace `path` with UTF-8 `text` atomically."""
    return atomic_write_bytes(path, text.encode('utf-8'))
