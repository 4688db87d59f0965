"""ROS 2 node parameters from a launch file: typed values, `-p` rules, parameter files.

Typing follows launch_ros for the YAML frontend: YAML scalars keep their type, a plain
string stays a string, and a string holding substitutions is read with YAML rules after
substitution (so `value: $(var seed)` with seed:=5 is the integer 5). An optional `type`
(str, int, float, bool, list_of_str, list_of_int, list_of_float, list_of_bool, yaml)
forces the result, as in ROS 2.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import yaml

from dave_core.launch.errors import LaunchError, yaml_error_summary

Scalar = Union[bool, int, float, str]
ParameterValue = Union[Scalar, tuple[bool, ...], tuple[int, ...], tuple[float, ...],
                       tuple[str, ...]]

TYPE_NAMES = ('str', 'int', 'float', 'bool', 'list_of_str', 'list_of_int', 'list_of_float',
              'list_of_bool', 'yaml')
_INT64 = (-2 ** 63, 2 ** 63 - 1)
_SCALARS: dict[str, type] = {'str': str, 'int': int, 'float': float, 'bool': bool}


@dataclass(frozen=True)
class TextValue:
    """A string value of the launch file after substitution, and whether it had any."""

    text: str
    substituted: bool


RawItem = Union[bool, int, float, TextValue]
RawValue = Union[RawItem, list[RawItem]]


@dataclass(frozen=True)
class ParameterRule:
    """One `name: value` parameter, passed to the node as `-p name:=value`."""

    name: str
    value: ParameterValue

    def argument(self) -> str:
        return f'{self.name}:={format_value(self.value)}'


@dataclass(frozen=True)
class ParameterFile:
    """A parameter file, passed to the node as `--params-file PATH`."""

    path: Path


def format_value(value: ParameterValue) -> str:
    """YAML flow text of a value, as rcl parses `-p` rules (quoted strings stay strings)."""
    data = list(value) if isinstance(value, tuple) else value
    text = yaml.safe_dump(data, default_flow_style=True, width=1 << 30, allow_unicode=True)
    return text.removesuffix('...\n').rstrip('\n')


def typed_value(name: str, raw: RawValue, type_name: str | None) -> ParameterValue:
    """The ROS parameter value of launch-file value `raw`; LaunchError names `name`."""
    if type_name not in (None, 'yaml') and type_name not in TYPE_NAMES:
        raise LaunchError(f"param {name!r}: unknown type {type_name!r} "
                          f"(one of {', '.join(TYPE_NAMES)})")
    if type_name in (None, 'yaml'):
        value = _untyped(name, raw)
    elif type_name.startswith('list_of_'):
        value = _typed_list(name, raw, _SCALARS[type_name.removeprefix('list_of_')])
    else:
        value = _typed_scalar(name, raw, _SCALARS[type_name])
    _check_range(name, value)
    return value


def _untyped(name: str, raw: RawValue) -> ParameterValue:
    if isinstance(raw, list):
        return _uniform(name, [_untyped_item(name, item, in_list=True) for item in raw])
    value = _untyped_item(name, raw, in_list=False)
    if isinstance(value, list):
        return _uniform(name, value)
    return value


def _untyped_item(name: str, raw: RawItem, *, in_list: bool) -> Scalar | list:
    if not isinstance(raw, TextValue):
        return raw
    if not raw.substituted or raw.text == '':
        return raw.text
    try:
        loaded = yaml.safe_load(raw.text)
    except yaml.YAMLError as error:
        raise LaunchError(f"param {name!r}: {raw.text!r} is not valid YAML "
                          f"({yaml_error_summary(error)}); set type: str to keep it text")
    if isinstance(loaded, (bool, int, float, str)) or (isinstance(loaded, list) and not in_list):
        return loaded
    raise LaunchError(f"param {name!r}: {raw.text!r} reads as {_kind(loaded)}, not a bool, int, "
                      "float, string or list of them; set type: str to keep it text")


def _uniform(name: str, items: list) -> ParameterValue:
    """A list as ROS accepts it: non-empty, one item type (ints widen to floats)."""
    if not items:
        raise LaunchError(f'param {name!r}: an empty list has no ROS parameter type')
    kinds = {type(item) for item in items}
    if kinds == {int, float}:
        return tuple(float(item) for item in items)
    if len(kinds) == 1 and kinds <= {bool, int, float, str}:
        return tuple(items)
    names = ', '.join(sorted(kind.__name__ for kind in kinds))
    raise LaunchError(f"param {name!r}: list items must share one type (bool, int, float or "
                      f"str), got {names}")


def _typed_scalar(name: str, raw: RawValue, kind: type) -> Scalar:
    if isinstance(raw, list):
        raise LaunchError(f'param {name!r}: a list cannot have type {kind.__name__}')
    return _coerce(name, raw, kind)


def _typed_list(name: str, raw: RawValue, kind: type) -> ParameterValue:
    if isinstance(raw, list):
        return _uniform(name, [_coerce(name, item, kind) for item in raw])
    if isinstance(raw, TextValue) and raw.substituted:
        loaded = _untyped_item(name, raw, in_list=False)
        if isinstance(loaded, list):
            return _uniform(name, [_coerce(name, item, kind) for item in loaded])
    raise LaunchError(f'param {name!r}: expected a list of {kind.__name__}, got {_kind(raw)}')


def _coerce(name: str, raw: RawItem | Scalar, kind: type) -> Scalar:
    """Check a value against `kind`; only substituted text is converted (as in ROS 2)."""
    if isinstance(raw, TextValue):
        if kind is str:
            return raw.text
        if not raw.substituted:
            raise LaunchError(f"param {name!r}: {raw.text!r} is a string, not {kind.__name__} "
                              "(write it unquoted)")
        return _convert_text(name, raw.text, kind)
    if kind is float and type(raw) is int:
        raw = float(raw)
    if type(raw) is not kind:
        raise LaunchError(f'param {name!r}: {raw!r} is not {kind.__name__}')
    return raw


def _convert_text(name: str, text: str, kind: type) -> Scalar:
    if kind is bool:
        folded = {'1': 'true', '0': 'false'}.get(text, text)
        try:
            loaded = yaml.safe_load(folded)
        except yaml.YAMLError:
            loaded = None
        if isinstance(loaded, bool):
            return loaded
    else:
        try:
            return kind(text)
        except ValueError:
            pass
    raise LaunchError(f'param {name!r}: {text!r} is not {kind.__name__}')


def _check_range(name: str, value: ParameterValue) -> None:
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if type(item) is int and not _INT64[0] <= item <= _INT64[1]:
            raise LaunchError(f'param {name!r}: {item} does not fit a 64-bit ROS integer')


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return 'a mapping'
    if value is None:
        return 'nothing (null)'
    if isinstance(value, TextValue):
        return f'the string {value.text!r}'
    return f'a {type(value).__name__}'


def check_parameter_file(path: Path) -> None:
    """Raise LaunchError unless `path` is a ROS 2 parameter file.

    The layout is `NODE: ros__parameters: {...}` where NODE is a node name, `/**` (every
    node) or nested namespace keys; rcl would reject anything else when the node starts.
    """
    if not path.is_file():
        raise LaunchError(f'parameter file {path} does not exist')
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
    except yaml.YAMLError as error:
        raise LaunchError(f'parameter file {path}: malformed YAML ({yaml_error_summary(error)})')
    if not isinstance(data, dict) or not data:
        raise LaunchError(f"parameter file {path}: expected a mapping of node names "
                          "('/**' for every node) to 'ros__parameters'")
    _check_node_keys(path, data, '')


def _check_node_keys(path: Path, mapping: dict, trail: str) -> None:
    for key, value in mapping.items():
        where = f'{trail}{key}'
        if not isinstance(value, dict) or not value:
            raise LaunchError(f"parameter file {path}: key {where!r} must hold 'ros__parameters' "
                              "or nested node names")
        if 'ros__parameters' in value:
            if not isinstance(value['ros__parameters'], dict):
                raise LaunchError(f"parameter file {path}: {where}.ros__parameters must be a "
                                  "mapping of parameter names to values")
        else:
            _check_node_keys(path, value, f'{where}/')
