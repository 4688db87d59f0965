"""Where ROS packages live when ament may be absent: share directories and node executables.

A package is looked up first in the ament index of every prefix listed in
AMENT_PREFIX_PATH (a colcon workspace or a distro install, exactly as ros2 launch does),
then among the installed Python distributions (importlib.metadata). The second route is
how this project's ament_python packages exist in a plain pip virtual environment.
"""
from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from dave_core.launch.errors import LaunchError

_DOTTED_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$')


def ament_prefixes(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The prefixes of AMENT_PREFIX_PATH, in search order (empty if it is unset)."""
    value = (os.environ if environ is None else environ).get('AMENT_PREFIX_PATH', '')
    return [Path(entry) for entry in value.split(os.pathsep) if entry]


def _ament_prefix_of(package: str, environ: Mapping[str, str] | None) -> Path | None:
    for prefix in ament_prefixes(environ):
        if (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / package).is_file():
            return prefix
    return None


def _distribution(package: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return None


def _not_found(package: str, environ: Mapping[str, str] | None) -> LaunchError:
    prefixes = ament_prefixes(environ)
    where = (f"the ament index of {os.pathsep.join(map(str, prefixes))}" if prefixes
             else 'an ament index (AMENT_PREFIX_PATH is unset)')
    return LaunchError(f"package {package!r} not found: it is neither in {where} "
                       "nor an installed Python distribution")


def find_package_share(package: str, environ: Mapping[str, str] | None = None) -> Path:
    """Share directory of `package`, for `$(find-pkg-share package)`.

    1. ament: `<prefix>/share/<package>` of the first prefix in AMENT_PREFIX_PATH whose
       index lists the package (what ament_index_python returns to ros2 launch).
    2. an editable (`pip install -e`) distribution named `package`: its source directory,
       the one holding package.xml. An ament_python package installs its data files as
       `share/<package>/<path relative to the source directory>` (launch/, config/...),
       so a path below the source directory names the same file a colcon install would.
    3. a regular distribution that installed `share/<package>/package.xml` as a data
       file (what setup.py's data_files of an ament_python package do): that directory.
    """
    prefix = _ament_prefix_of(package, environ)
    if prefix is not None:
        return prefix / 'share' / package
    dist = _distribution(package)
    if dist is None:
        raise _not_found(package, environ)
    source = _editable_source(dist)
    if source is not None and (source / 'package.xml').is_file():
        return source
    marker = f'share/{package}/package.xml'
    for file in dist.files or ():
        if file.as_posix().endswith(marker):
            return Path(dist.locate_file(file)).resolve().parent
    raise LaunchError(f"package {package!r} is an installed Python distribution but has no "
                      "share directory (no package.xml in its source or installed files)")


def _editable_source(dist: metadata.Distribution) -> Path | None:
    """Source directory of an editable install, from PEP 610's direct_url.json."""
    text = dist.read_text('direct_url.json')
    if not text:
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return None
    url = urlparse(record.get('url', ''))
    if url.scheme != 'file' or not record.get('dir_info', {}).get('editable'):
        return None
    return Path(unquote(url.path))


def _ament_executables(package: str, environ: Mapping[str, str] | None) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for prefix in ament_prefixes(environ):
        directory = prefix / 'lib' / package
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                if path.is_file() and os.access(path, os.X_OK):
                    found.setdefault(path.name, path)
    return found


def _console_scripts(dist: metadata.Distribution | None) -> dict[str, metadata.EntryPoint]:
    if dist is None:
        return {}
    return {ep.name: ep for ep in dist.entry_points if ep.group == 'console_scripts'}


def find_node_command(package: str, executable: str,
                      environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The argv prefix that runs `executable` of `package` (a `node`'s pkg and exec).

    1. `<prefix>/lib/<package>/<executable>` of the first ament prefix that has it.
    2. the console_scripts entry point named `executable` of the Python distribution
       named `package`, run by this interpreter as `python -c <import and call>`, so it
       works without the generated script in bin/ and without bin/ on PATH.
    """
    ament = _ament_executables(package, environ)
    if executable in ament:
        return (str(ament[executable]),)
    dist = _distribution(package)
    scripts = _console_scripts(dist)
    if executable in scripts:
        return (sys.executable, '-c', _bootstrap(scripts[executable]))
    if dist is None and _ament_prefix_of(package, environ) is None:
        raise _not_found(package, environ)
    provided = ', '.join(sorted(set(ament) | set(scripts))) or 'no executables'
    raise LaunchError(f"package {package!r} has no executable {executable!r} "
                      f"(it provides: {provided})")


def _bootstrap(entry_point: metadata.EntryPoint) -> str:
    """Python source that calls a console_scripts entry point like its generated script."""
    module, attribute = entry_point.module, entry_point.attr
    if not attribute or not _DOTTED_NAME.match(module) or not _DOTTED_NAME.match(attribute):
        raise LaunchError(f"entry point {entry_point.name!r} = {entry_point.value!r} "
                          "is not of the form module:function")
    root = attribute.split('.')[0]
    # argv[0] is the script name so argparse shows `usage: dave ...`, not `usage: -c`.
    # JSON string syntax is valid Python and its double quotes read well after shlex.join.
    return (f'import sys; from {module} import {root}; '
            f'sys.argv[0] = {json.dumps(entry_point.name)}; sys.exit({attribute}())')
