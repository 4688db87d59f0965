"""Reading a ROS 2 YAML launch file into action objects: syntax only, nothing evaluated.

The accepted layout is ROS 2's YAML frontend (launch_yaml + launch_ros), for example:

    launch:
    - arg: {name: seed, default: '0', description: world seed}
    - node:
        pkg: dave_nodes
        exec: steering_node
        name: steering
        param:
        - {name: seed, value: $(var seed)}
        - {from: $(find-pkg-share dave_nodes)/config/steering.yaml}
        remap:
        - {from: image, to: /stereo/left/image_raw}

Every attribute is checked here, in branches switched off by `if`/`unless` too, so a
typo fails before any process starts. Errors read `FILE:LINE: ACTION: message`.
"""
from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import yaml

from dave_core.launch.errors import LaunchError, yaml_error_summary
from dave_core.launch.substitutions import Substitution, Template, parse_template


@dataclass(frozen=True)
class Where:
    """Position of an action in a launch file, the prefix of every error about it."""

    file: Path
    line: int
    action: str

    def __str__(self) -> str:
        return f'{self.file}:{self.line}: {self.action}'

    def error(self, message: str) -> LaunchError:
        return LaunchError(f'{self}: {message}')


@dataclass(frozen=True)
class Condition:
    """An `if` (negate=False) or `unless` (negate=True) expression."""

    expression: Template
    negate: bool


@dataclass(frozen=True)
class TextTemplate:
    """A string value of the file that may hold substitutions."""

    template: Template


Flag = Union[bool, TextTemplate]
Seconds = Union[float, TextTemplate]
RawParamItem = Union[bool, int, float, TextTemplate]
RawParamValue = Union[RawParamItem, tuple[RawParamItem, ...]]
Pairs = tuple[tuple[Template, Template], ...]


@dataclass(frozen=True)
class ArgAction:
    where: Where
    condition: Condition | None
    name: str
    default: Template | None
    description: str
    choices: tuple[str, ...] | None


@dataclass(frozen=True)
class LetAction:
    where: Where
    condition: Condition | None
    name: Template
    value: Template


@dataclass(frozen=True)
class IncludeAction:
    where: Where
    condition: Condition | None
    file: Template
    arguments: Pairs


@dataclass(frozen=True)
class GroupAction:
    where: Where
    condition: Condition | None
    scoped: Flag
    forwarding: Flag
    keep: Pairs
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class PushNamespaceAction:
    where: Where
    condition: Condition | None
    namespace: Template


@dataclass(frozen=True)
class ProcessOptions:
    """Attributes shared by `node` and `executable` (launch's ExecuteProcess)."""

    label: Template | None = None
    cwd: Template | None = None
    env: Pairs = ()
    output: Template | None = None
    on_exit_shutdown: bool = False
    launch_prefix: Template | None = None
    sigterm_timeout: Seconds | None = None
    sigkill_timeout: Seconds | None = None
    respawn: Flag | None = None


@dataclass(frozen=True)
class ExecutableAction:
    where: Where
    condition: Condition | None
    cmd: tuple[Template, ...]
    options: ProcessOptions


@dataclass(frozen=True)
class ParamValueEntry:
    where: Where
    name: tuple[Template, ...]  # nested `param` entries join with '.'
    value: RawParamValue
    type_name: str | None


@dataclass(frozen=True)
class ParamFileEntry:
    where: Where
    path: Template


@dataclass(frozen=True)
class NodeAction:
    where: Where
    condition: Condition | None
    package: Template | None
    executable: Template
    node_name: Template | None
    namespace: Template | None
    args: tuple[Template, ...]
    ros_args: tuple[Template, ...]
    params: tuple[ParamValueEntry | ParamFileEntry, ...]
    remaps: Pairs
    options: ProcessOptions


Action = Union[ArgAction, LetAction, IncludeAction, GroupAction, PushNamespaceAction,
               ExecutableAction, NodeAction]


def load_actions(path: Path) -> tuple[Action, ...]:
    """Parse the launch file at `path` into actions; LaunchError on any mistake."""
    if not path.is_file():
        raise LaunchError(f'launch file {path} does not exist')
    if not path.name.endswith(('.yaml', '.yml')):
        raise LaunchError(f'{path}: only YAML launch files (*.launch.yaml) are supported '
                          'by dave launch, not Python or XML ones')
    try:
        tree = yaml.load(path.read_text(encoding='utf-8'), Loader=_LineLoader)  # safe: a SafeLoader
    except yaml.YAMLError as error:
        raise LaunchError(f'{path}: malformed YAML ({yaml_error_summary(error)})') from None
    except LaunchError as error:
        raise LaunchError(f'{path}:{error}') from None
    if not isinstance(tree, dict) or list(tree) != ['launch'] or not isinstance(
            tree['launch'], list):
        raise LaunchError(f"{path}: expected one top-level key 'launch' holding a list of "
                          "actions")
    return _actions(tree['launch'], path, _line(tree))


# --- YAML with line numbers ----------------------------------------------------------

class _LineDict(dict):
    """A mapping that remembers the line it started on."""

    line = 0


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings carry their line and reject duplicate keys."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    mapping = _LineDict()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            # Reported by load_actions with the file name in front.
            raise LaunchError(f'{key_node.start_mark.line + 1}: duplicate key {key!r}')
        mapping[key] = loader.construct_object(value_node, deep=True)
    mapping.line = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line(data: object, fallback: int = 1) -> int:
    return getattr(data, 'line', fallback) or fallback


# --- actions -------------------------------------------------------------------------

_CONDITION_KEYS = ('if', 'unless')
_PROCESS_KEYS = ('cwd', 'env', 'output', 'on_exit', 'launch-prefix', 'sigterm_timeout',
                 'sigkill_timeout', 'respawn', 'shell', 'emulate_tty')
_UNSUPPORTED_PROCESS_KEYS = ('respawn_delay', 'respawn_max_retries')
# ROS 2 actions that exist but are outside dave launch's subset.
_KNOWN_UNSUPPORTED_ACTIONS = (
    'set_env', 'unset_env', 'set_parameter', 'set_parameters_from_file', 'set_remap',
    'set_use_sim_time', 'set_ros_log_dir', 'timer', 'ros_timer', 'log', 'shutdown',
    'composable_node_container', 'load_composable_node', 'lifecycle_node', 'node_container')


def _actions(items: list, file: Path, parent_line: int) -> tuple[Action, ...]:
    actions = []
    for item in items:
        line = _line(item, parent_line)
        if not isinstance(item, dict) or len(item) != 1:
            raise LaunchError(f'{file}:{line}: each action must be a mapping with exactly one '
                              'key, the action type (e.g. `- node: {...}`)')
        (kind, body), = item.items()
        parser = _PARSERS.get(kind)
        if parser is None:
            supported = ', '.join(sorted(_PARSERS))
            verdict = ('is not supported by dave launch' if kind in _KNOWN_UNSUPPORTED_ACTIONS
                       else 'is unknown')
            raise LaunchError(f'{file}:{line}: action {kind!r} {verdict} '
                              f'(supported: {supported})')
        actions.append(parser(_Entity(body, kind, file, line)))
    return tuple(actions)


class _Entity:
    """Typed, checked access to the attributes of one action or sub-entry."""

    def __init__(self, data: object, kind: str, file: Path, line: int) -> None:
        self.where = Where(file, _line(data, line), kind)
        if not isinstance(data, dict):
            raise self.where.error(f'expected a mapping of attributes, got {_describe(data)}')
        self.data = data
        self.file = file

    def check_keys(self, allowed: tuple[str, ...], unsupported: tuple[str, ...] = ()) -> None:
        for key in self.data:
            if key in unsupported:
                raise self.where.error(f'attribute {key!r} is not supported by dave launch')
            if key not in allowed:
                raise self.where.error(f"unknown attribute {key!r} "
                                       f"(allowed: {', '.join(sorted(allowed))})")

    def plain(self, key: str, *, required: bool = False) -> str | None:
        """A string attribute taken literally (names and descriptions)."""
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.where.error(f'missing attribute {key!r}')
            return None
        if not isinstance(value, str):
            raise self.where.error(_not_a_string(key, value))
        return value

    def text(self, key: str, *, required: bool = False) -> Template | None:
        """A string attribute that may hold substitutions."""
        value = self.plain(key, required=required)
        return None if value is None else self.template(value, key)

    def template(self, value: str, key: str) -> Template:
        try:
            return parse_template(value)
        except LaunchError as error:
            raise self.where.error(f'attribute {key!r}: {error}') from None

    def flag(self, key: str) -> Flag | None:
        value = self.data.get(key)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return TextTemplate(self.template(value, key))
        raise self.where.error(f'attribute {key!r} must be true or false, got {_describe(value)}')

    def seconds(self, key: str) -> Seconds | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, float) and value >= 0.0:
            return value
        if isinstance(value, str):
            return TextTemplate(self.template(value, key))
        # ROS 2 rejects YAML integers here, so `5` would break `ros2 launch`: ask for 5.0.
        hint = f' (write {value}.0)' if isinstance(value, int) and not isinstance(
            value, bool) else ''
        raise self.where.error(f'attribute {key!r} must be a non-negative float{hint}, '
                               f'got {_describe(value)}')

    def entries(self, key: str) -> list[_Entity]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not value:
            raise self.where.error(f'attribute {key!r} must be a non-empty list of mappings')
        return [_Entity(item, f'{self.where.action} {key}', self.file, self.where.line)
                for item in value]

    def pairs(self, key: str, first: str, second: str) -> Pairs:
        pairs = []
        for entry in self.entries(key):
            entry.check_keys((first, second))
            pairs.append((entry.text(first, required=True), entry.text(second, required=True)))
        return tuple(pairs)

    def condition(self) -> Condition | None:
        if_value, unless_value = self.text('if'), self.text('unless')
        if if_value is not None and unless_value is not None:
            raise self.where.error("'if' and 'unless' cannot be used together")
        if if_value is not None:
            return Condition(if_value, negate=False)
        if unless_value is not None:
            return Condition(unless_value, negate=True)
        return None


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return 'a mapping'
    if isinstance(value, list):
        return 'a list'
    if value is None:
        return 'nothing'
    return f'{type(value).__name__} {value!r}'


def _not_a_string(key: str, value: object) -> str:
    hint = f" (quote it: '{value}')" if isinstance(value, (bool, int, float)) else ''
    return f'attribute {key!r} must be a string, got {_describe(value)}{hint}'


def _parse_arg(entity: _Entity) -> ArgAction:
    entity.check_keys(('name', 'default', 'description', 'choice') + _CONDITION_KEYS)
    name = entity.plain('name', required=True)
    choices = None
    if 'choice' in entity.data:
        choices = []
        for entry in entity.entries('choice'):
            entry.check_keys(('value',))
            choices.append(entry.plain('value', required=True))
        choices = tuple(choices)
    return ArgAction(entity.where, entity.condition(), name, entity.text('default'),
                     entity.plain('description') or '', choices)


def _parse_let(entity: _Entity) -> LetAction:
    entity.check_keys(('name', 'value') + _CONDITION_KEYS)
    return LetAction(entity.where, entity.condition(), entity.text('name', required=True),
                     entity.text('value', required=True))


def _parse_include(entity: _Entity) -> IncludeAction:
    entity.check_keys(('file', 'arg') + _CONDITION_KEYS)
    return IncludeAction(entity.where, entity.condition(), entity.text('file', required=True),
                         entity.pairs('arg', 'name', 'value'))


def _parse_group(entity: _Entity) -> GroupAction:
    entity.check_keys(('children', 'scoped', 'forwarding', 'keep') + _CONDITION_KEYS)
    children = entity.data.get('children')
    if not isinstance(children, list):
        raise entity.where.error("expected a 'children' list of actions")
    scoped = entity.flag('scoped')
    forwarding = entity.flag('forwarding')
    return GroupAction(entity.where, entity.condition(),
                       True if scoped is None else scoped,
                       True if forwarding is None else forwarding,
                       entity.pairs('keep', 'name', 'value'),
                       _actions(children, entity.file, entity.where.line))


def _parse_push_namespace(entity: _Entity) -> PushNamespaceAction:
    entity.check_keys(('namespace',) + _CONDITION_KEYS)
    return PushNamespaceAction(entity.where, entity.condition(),
                               entity.text('namespace', required=True))


def _process_options(entity: _Entity, label_key: str) -> ProcessOptions:
    on_exit = entity.plain('on_exit')
    if on_exit not in (None, 'shutdown'):
        raise entity.where.error(f"attribute 'on_exit' must be 'shutdown', got {on_exit!r}")
    for key in ('shell', 'emulate_tty'):
        if entity.flag(key) not in (None, False):
            raise entity.where.error(f"attribute {key!r} is not supported by dave launch "
                                     "(only false)")
    prefix = entity.text('launch-prefix')
    return ProcessOptions(
        label=entity.text(label_key), cwd=entity.text('cwd'),
        env=entity.pairs('env', 'name', 'value'), output=entity.text('output'),
        on_exit_shutdown=on_exit == 'shutdown', launch_prefix=prefix,
        sigterm_timeout=entity.seconds('sigterm_timeout'),
        sigkill_timeout=entity.seconds('sigkill_timeout'), respawn=entity.flag('respawn'))


def _parse_executable(entity: _Entity) -> ExecutableAction:
    entity.check_keys(('cmd', 'name') + _PROCESS_KEYS + _CONDITION_KEYS,
                      _UNSUPPORTED_PROCESS_KEYS)
    cmd = _split_command(entity, 'cmd')
    if not cmd:
        raise entity.where.error("attribute 'cmd' is empty")
    return ExecutableAction(entity.where, entity.condition(), cmd,
                            _process_options(entity, 'name'))


def _parse_node(entity: _Entity) -> NodeAction:
    entity.check_keys(('pkg', 'exec', 'name', 'namespace', 'exec_name', 'args', 'ros_args',
                       'param', 'remap') + _PROCESS_KEYS + _CONDITION_KEYS,
                      _UNSUPPORTED_PROCESS_KEYS)
    params: list[ParamValueEntry | ParamFileEntry] = []
    for entry in entity.entries('param'):
        params.extend(_parse_param(entry, ()))
    return NodeAction(
        entity.where, entity.condition(), entity.text('pkg'),
        entity.text('exec', required=True), entity.text('name'), entity.text('namespace'),
        _split_command(entity, 'args'), _split_command(entity, 'ros_args'), tuple(params),
        entity.pairs('remap', 'from', 'to'), _process_options(entity, 'exec_name'))


def _parse_param(entry: _Entity, prefix: tuple[Template, ...]
                 ) -> list[ParamValueEntry | ParamFileEntry]:
    if 'from' in entry.data:
        if prefix:
            raise entry.where.error("nested parameters cannot use 'from'")
        entry.check_keys(('from',), ('allow_substs',))
        return [ParamFileEntry(entry.where, entry.text('from', required=True))]
    entry.check_keys(('name', 'value', 'type', 'param'))
    name = prefix + (entry.text('name', required=True),)
    if 'param' in entry.data:
        if 'value' in entry.data or 'type' in entry.data:
            raise entry.where.error("a parameter has either 'value' (and 'type') or nested "
                                    "'param' entries, not both")
        nested: list[ParamValueEntry | ParamFileEntry] = []
        for child in entry.entries('param'):
            nested.extend(_parse_param(child, name))
        return nested
    if 'value' not in entry.data:
        raise entry.where.error("a parameter needs 'value' (or nested 'param' entries)")
    return [ParamValueEntry(entry.where, name, _raw_param_value(entry),
                            entry.plain('type'))]


def _raw_param_value(entry: _Entity) -> RawParamValue:
    value = entry.data['value']

    def item(raw: object) -> RawParamItem:
        if isinstance(raw, (bool, int, float)):
            return raw
        if isinstance(raw, str):
            return TextTemplate(entry.template(raw, 'value'))
        raise entry.where.error(f"param {entry.data.get('name')!r}: value must be a bool, int, "
                                f"float, string or a list of them, got {_describe(raw)}")

    if isinstance(value, list):
        return tuple(item(raw) for raw in value)
    return item(value)


def _split_command(entity: _Entity, key: str) -> tuple[Template, ...]:
    """Split a command line into arguments like ROS 2's launch frontend.

    Literal text is split with shell rules; a substitution's result is never split and
    joins the text it touches: `$(var dir)/bin/x --flag` is two arguments.
    """
    value = entity.text(key)
    if value is None:
        return ()
    arguments: list[Template] = []
    current: list[str | Substitution] = []

    def close() -> None:
        if current:
            arguments.append(tuple(current))
            current.clear()

    for part in value:
        if isinstance(part, Substitution):
            current.append(part)
            continue
        try:
            tokens = shlex.split(part)
        except ValueError as error:
            # As in ROS 2, literal text is split piece by piece between substitutions.
            raise entity.where.error(f'attribute {key!r}: {error} (quotes cannot enclose a '
                                     'substitution in a command line)') from None
        if not tokens:
            close()
            continue
        if part[0].isspace():
            close()
        current.append(tokens[0])
        if len(tokens) > 1:
            close()
            arguments.extend((token,) for token in tokens[1:-1])
            current.append(tokens[-1])
        if part[-1].isspace():
            close()
    close()
    return tuple(arguments)


_PARSERS: dict[str, Callable[[_Entity], Action]] = {
    'arg': _parse_arg,
    'let': _parse_let,
    'include': _parse_include,
    'group': _parse_group,
    'push-ros-namespace': _parse_push_namespace,
    'push_ros_namespace': _parse_push_namespace,
    'node': _parse_node,
    'executable': _parse_executable,
}
