"""Validating SDF files with libsdformat (Debian: libsdformat12-12 + sdformat-sdf), no Gazebo needed.

`validate_sdf` runs the library's C entry point `cmdCheck(const char *path)` (what `ign sdf -k`
runs) through ctypes in a child Python process: its report goes to the child's stdout/stderr,
which are captured and returned in the error, and a crash in the C++ library cannot take the
caller down. It also checks that every relative file URI in the document (heightmap, textures)
exists next to the SDF, which libsdformat does not.
"""
from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

# Newest first; Debian 12 ships libsdformat12 (SDF <= 1.9).
LIBRARY_NAMES = ('libsdformat14.so.14', 'libsdformat13.so.13', 'libsdformat12.so.12')
_TIMEOUT_S = 60.0
# Run by the child: exit status 0 when cmdCheck returns 0.
_CHILD = (
    'import ctypes, sys\n'
    'check = ctypes.CDLL(sys.argv[1]).cmdCheck\n'
    'check.argtypes = [ctypes.c_char_p]\n'
    'check.restype = ctypes.c_int\n'
    'sys.exit(0 if check(sys.argv[2].encode()) == 0 else 1)\n'
)


class SdfValidationError(ValueError):
    """An SDF file failed validation; the message names the file and quotes libsdformat."""


def sdformat_library() -> str | None:
    """File name of the first loadable libsdformat with cmdCheck, or None."""
    for name in LIBRARY_NAMES:
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        if hasattr(library, 'cmdCheck'):
            return name
    return None


def sdformat_available() -> bool:
    """True when libsdformat (with its cmdCheck entry point) can be loaded."""
    return sdformat_library() is not None


def validate_sdf(path: str | os.PathLike[str], search_paths: Sequence[str | os.PathLike[str]] = ()) -> None:
    """Raise SdfValidationError unless libsdformat accepts the file and its relative URIs exist.

    `search_paths` go to SDF_PATH (for model:// includes) in the child's environment only.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise SdfValidationError(f'{path}: no such SDF file')
    library = sdformat_library()
    if library is None:
        raise SdfValidationError(f'{path}: cannot validate, libsdformat is not installed '
                                 f'(none of {", ".join(LIBRARY_NAMES)}; Debian: libsdformat12-12 sdformat-sdf)')
    env = dict(os.environ)
    if search_paths:
        previous = [env['SDF_PATH']] if env.get('SDF_PATH') else []
        env['SDF_PATH'] = os.pathsep.join([str(p) for p in search_paths] + previous)
    # -S: no site packages needed by the child, and it starts in ~10 ms.
    result = subprocess.run([sys.executable, '-S', '-c', _CHILD, library, str(path)], env=env,
                            capture_output=True, text=True, timeout=_TIMEOUT_S)
    if result.returncode != 0:
        report = ' | '.join(line.strip() for line in (result.stderr + result.stdout).splitlines()
                            if line.strip() and line.strip() != 'Valid.')
        raise SdfValidationError(f'{path}: libsdformat rejected it: {report or f"exit status {result.returncode}"}')
    _check_relative_uris(path)


_IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.dds')


def _check_relative_uris(path: Path) -> None:
    root = ET.parse(path).getroot()
    for element in root.iter():
        if not element.text or not element.text.strip():
            continue
        uri = element.text.strip()
        # <uri> always names a file; texture tags (<diffuse>, <normal>...) only when they hold an
        # image name rather than a colour or a vector.
        if element.tag != 'uri' and not (element.tag in ('diffuse', 'normal', 'albedo_map', 'normal_map')
                                         and uri.lower().endswith(_IMAGE_SUFFIXES)):
            continue
        if '://' in uri and not uri.startswith('file://'):
            continue  # model://, https:// ...: resolved by Gazebo's search paths
        file = Path(uri.removeprefix('file://'))
        if not file.is_absolute():
            file = path.parent / file
        if not file.is_file():
            raise SdfValidationError(f'{path}: <{element.tag}> {uri} names a missing file ({file})')
