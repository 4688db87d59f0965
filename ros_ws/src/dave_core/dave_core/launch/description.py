"""A launch file resolved into the plain list of processes to run.

`load_launch_file` parses a ROS 2 YAML launch file (see dave_core.launch.frontend for the
accepted subset), applies `name:=value` launch arguments, performs every substitution
and condition, resolves node executables, and returns a LaunchDescription: dataclasses
holding exact command lines, ready for LaunchRunner or for printing.

Semantics follow ros2 launch: `arg` keeps a value given earlier (command line or an
including file) and otherwise uses its default; `let` sets a configuration; a `group` is
scoped by default (its `let`s and pushed namespaces vanish at its end); an `include` is
not scoped (its arguments stay set afterwards); relative paths in `include` and
`param from` are relative to the working directory, so write `$(dirname)/...`.
A node's command is `EXEC [args] [--ros-args ros_args] --ros-args [-r __node:=NAME]
[-r __ns:=/NS] [-p name:=value | --params-file FILE]... [-r from:=to]...`.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dave_core.launch import frontend as fe
from dave_core.launch.errors import LaunchError
from dave_core.launch.packages import find_node_command, find_package_share
from dave_core.launch.parameters import (ParameterFile, ParameterRule, RawValue, TextValue,
                                         check_parameter_file, typed_value)
from dave_core.launch.substitutions import (SubstitutionContext, Template, condition_holds,
                                            has_substitutions, parse_bool)

OUTPUT_MODES = ('screen', 'log', 'both')
_MAX_INCLUDE_DEPTH = 32
_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
_NAMESPACE_TOKEN_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


@dataclass(frozen=True)
class LaunchArgument:
    """A declared launch argument and the value it resolved to."""

    name: str
    default: str | None
    description: str
    choices: tuple[str, ...] | None
    value: str


@dataclass(frozen=True)
class NodeInfo:
    """The ROS side of a `node` process, for display and checks."""

    package: str | None
    executable: str
    name: str | None
    namespace: str | None
    parameters: tuple[ParameterRule | ParameterFile, ...] = ()
    remappings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ProcessDescription:
    """One process to run: exact argv plus how to supervise it."""

    label: str  # `exec-N` as ros2 launch labels processes; prefixes every output line
    cmd: tuple[str, ...]
    origin: str  # FILE:LINE: action, for messages
    cwd: Path | None = None
    env: tuple[tuple[str, str], ...] = ()  # added to the runner's environment
    output: str = 'log'  # screen | log | both (ros2 launch's default is log)
    required: bool = False  # on_exit: shutdown
    sigterm_timeout: float | None = None  # None: the runner's default
    sigkill_timeout: float | None = None
    node: NodeInfo | None = None

    def command_line(self) -> str:
        return shlex.join(self.cmd)

    def describe(self) -> str:
        """One line: `label: command`, marked when the process is required."""
        mark = '  # on_exit: shutdown' if self.required else ''
        return f'{self.label}: {self.command_line()}{mark}'


@dataclass(frozen=True)
class LaunchDescription:
    """Everything a launch file resolved to."""

    file: Path
    arguments: tuple[LaunchArgument, ...]
    processes: tuple[ProcessDescription, ...]

    def describe(self) -> list[str]:
        return [process.describe() for process in self.processes]


def parse_launch_arguments(tokens: Iterable[str]) -> dict[str, str]:
    """`['seed:=3', 'world:=a.yaml']` -> {'seed': '3', 'world': 'a.yaml'}."""
    arguments: dict[str, str] = {}
    for token in tokens:
        name, separator, value = token.partition(':=')
        if not separator or not name:
            raise LaunchError(f'launch argument {token!r} must be written name:=value')
        arguments[name] = value
    return arguments


def load_launch_file(path: str | os.PathLike[str], arguments: Mapping[str, str] | None = None,
                     *, environ: Mapping[str, str] | None = None) -> LaunchDescription:
    """Resolve the launch file at `path` with launch `arguments` (name -> value).

    `environ` is what `$(env ...)`, AMENT_PREFIX_PATH and PATH lookups see (default:
    os.environ, read only). Raises LaunchError with one line naming the culprit,
    including for arguments that no `arg` of the file (or its includes) declares.
    """
    file = Path(os.path.abspath(path))
    for name, value in (arguments or {}).items():
        if not isinstance(value, str):
            raise LaunchError(f'launch argument {name!r} must be a string, got '
                              f'{type(value).__name__} {value!r}')
    resolver = _Resolver(dict(arguments or {}), os.environ if environ is None else environ)
    resolver.run_file(file, depth=0)
    undeclared = sorted(set(arguments or {}) - resolver.declared_names)
    if undeclared:
        declared = ', '.join(sorted(resolver.declared_names)) or 'none'
        raise LaunchError(f'{file}: launch argument {undeclared[0]!r} is not declared by any '
                          f'arg (declared: {declared})')
    return LaunchDescription(file, tuple(resolver.arguments.values()),
                             tuple(resolver.processes))


def declared_arguments(path: str | os.PathLike[str]) -> list[fe.ArgAction]:
    """The `arg` actions of one file, in groups too, without evaluating anything.

    Includes are not followed: their file names may depend on argument values.
    """
    found: list[fe.ArgAction] = []

    def walk(actions: Iterable[fe.Action]) -> None:
        for action in actions:
            if isinstance(action, fe.ArgAction):
                found.append(action)
            elif isinstance(action, fe.GroupAction):
                walk(action.actions)

    walk(fe.load_actions(Path(os.path.abspath(path))))
    return found


@dataclass
class _Resolver:
    """Executes actions in order against mutable launch state, collecting processes."""

    configurations: dict[str, str]
    environ: Mapping[str, str]
    arguments: dict[str, LaunchArgument] = field(default_factory=dict)
    declared_names: set[str] = field(default_factory=set)
    processes: list[ProcessDescription] = field(default_factory=list)

    def run_file(self, file: Path, depth: int) -> None:
        if depth > _MAX_INCLUDE_DEPTH:
            raise LaunchError(f'{file}: includes nest deeper than {_MAX_INCLUDE_DEPTH} levels '
                              '(an include cycle?)')
        self.run_actions(fe.load_actions(file), file, depth)

    def run_actions(self, actions: Iterable[fe.Action], file: Path, depth: int) -> None:
        for action in actions:
            if not self._enabled(action, file):
                self._note_declarations(action)
                continue
            if isinstance(action, fe.ArgAction):
                self._arg(action, file)
            elif isinstance(action, fe.LetAction):
                self.configurations[self._eval(action.name, action.where, file)] = \
                    self._eval(action.value, action.where, file)
            elif isinstance(action, fe.PushNamespaceAction):
                self._push_namespace(action, file)
            elif isinstance(action, fe.GroupAction):
                self._group(action, file, depth)
            elif isinstance(action, fe.IncludeAction):
                self._include(action, file, depth)
            elif isinstance(action, fe.NodeAction):
                self.processes.append(self._node(action, file))
            else:
                self.processes.append(self._executable(action, file))

    # --- evaluation helpers ----------------------------------------------------------

    def _context(self, file: Path) -> SubstitutionContext:
        return SubstitutionContext(self.configurations, self.environ, file,
                                   lambda package: find_package_share(package, self.environ))

    def _eval(self, template: Template, where: fe.Where, file: Path) -> str:
        try:
            return self._context(file).evaluate(template)
        except LaunchError as error:
            raise where.error(str(error)) from None

    def _eval_optional(self, template: Template | None, where: fe.Where,
                       file: Path) -> str | None:
        return None if template is None else self._eval(template, where, file)

    def _flag(self, value: fe.Flag, key: str, where: fe.Where, file: Path) -> bool:
        if isinstance(value, bool):
            return value
        text = self._eval(value.template, where, file)
        result = parse_bool(text)
        if result is None:
            raise where.error(f'attribute {key!r} must be true or false, got {text!r}')
        return result

    def _seconds(self, value: fe.Seconds | None, key: str, where: fe.Where,
                 file: Path) -> float | None:
        if value is None or isinstance(value, float):
            return value
        text = self._eval(value.template, where, file)
        try:
            seconds = float(text)
        except ValueError:
            seconds = -1.0
        if not seconds >= 0.0:
            raise where.error(f'attribute {key!r} must be a non-negative number, got {text!r}')
        return seconds

    def _enabled(self, action: fe.Action, file: Path) -> bool:
        condition = action.condition
        if condition is None:
            return True
        text = self._eval(condition.expression, action.where, file)
        try:
            holds = condition_holds(text)
        except LaunchError as error:
            key = 'unless' if condition.negate else 'if'
            raise action.where.error(f'attribute {key!r}: {error}') from None
        return holds != condition.negate

    def _note_declarations(self, action: fe.Action) -> None:
        """Arguments declared in a switched-off branch still count as declared."""
        if isinstance(action, fe.ArgAction):
            self.declared_names.add(action.name)
        elif isinstance(action, fe.GroupAction):
            for child in action.actions:
                self._note_declarations(child)

    # --- actions ---------------------------------------------------------------------

    def _arg(self, action: fe.ArgAction, file: Path) -> None:
        self.declared_names.add(action.name)
        default = self._eval_optional(action.default, action.where, file)
        if action.name not in self.configurations:
            if default is None:
                about = f' ({action.description})' if action.description else ''
                raise action.where.error(f'required launch argument {action.name!r}{about} '
                                         f'was not given; pass {action.name}:=VALUE')
            self.configurations[action.name] = default
        value = self.configurations[action.name]
        if action.choices is not None and value not in action.choices:
            raise action.where.error(f'launch argument {action.name!r} is {value!r}, '
                                     f"not one of: {', '.join(action.choices)}")
        self.arguments.setdefault(action.name, LaunchArgument(
            action.name, default, action.description, action.choices, value))

    def _push_namespace(self, action: fe.PushNamespaceAction, file: Path) -> None:
        pushed = self._eval(action.namespace, action.where, file)
        namespace = _absolute(_prefix_namespace(self.configurations.get('ros_namespace'),
                                                pushed))
        _check_namespace(namespace, action.where)
        self.configurations['ros_namespace'] = namespace

    def _group(self, action: fe.GroupAction, file: Path, depth: int) -> None:
        scoped = self._flag(action.scoped, 'scoped', action.where, file)
        forwarding = self._flag(action.forwarding, 'forwarding', action.where, file)
        keep = {self._eval(name, action.where, file): self._eval(value, action.where, file)
                for name, value in action.keep}
        if not scoped:
            self.configurations.update(keep)
            self.run_actions(action.actions, file, depth)
            return
        saved = self.configurations
        self.configurations = dict(saved) if forwarding else {}
        self.configurations.update(keep)
        try:
            self.run_actions(action.actions, file, depth)
        finally:
            self.configurations = saved

    def _include(self, action: fe.IncludeAction, file: Path, depth: int) -> None:
        target = Path(os.path.abspath(self._eval(action.file, action.where, file)))
        for name, value in action.arguments:
            self.configurations[self._eval(name, action.where, file)] = \
                self._eval(value, action.where, file)
        if not target.is_file():
            raise action.where.error(f'included file {target} does not exist')
        self.run_file(target, depth + 1)

    def _process_fields(self, options: fe.ProcessOptions, where: fe.Where,
                        file: Path) -> dict:
        if options.respawn is not None and self._flag(options.respawn, 'respawn', where, file):
            raise where.error("attribute 'respawn' is not supported by dave launch")
        output = self._eval_optional(options.output, where, file) or 'log'
        if output not in OUTPUT_MODES:
            raise where.error(f"attribute 'output' must be one of {', '.join(OUTPUT_MODES)}, "
                              f'got {output!r}')
        cwd = self._eval_optional(options.cwd, where, file)
        if cwd is not None and not Path(cwd).is_dir():
            raise where.error(f"attribute 'cwd': directory {cwd} does not exist")
        return dict(
            origin=str(where), cwd=None if cwd is None else Path(cwd),
            env=tuple((self._eval(name, where, file), self._eval(value, where, file))
                      for name, value in options.env),
            output=output, required=options.on_exit_shutdown,
            sigterm_timeout=self._seconds(options.sigterm_timeout, 'sigterm_timeout', where,
                                          file),
            sigkill_timeout=self._seconds(options.sigkill_timeout, 'sigkill_timeout', where,
                                          file))

    def _prefix(self, options: fe.ProcessOptions, where: fe.Where, file: Path) -> list[str]:
        text = self._eval_optional(options.launch_prefix, where, file)
        try:
            prefix = shlex.split(text) if text else []
        except ValueError as error:
            raise where.error(f"attribute 'launch-prefix': {error}") from None
        if prefix:
            self._check_program(prefix[0], None, where)
        return prefix

    def _label(self, explicit: str | None, fallback: str) -> str:
        # ros2 launch numbers every process of a launch, in start order: talker-1, listener-2.
        return f'{explicit or os.path.basename(fallback)}-{len(self.processes) + 1}'

    def _executable(self, action: fe.ExecutableAction, file: Path) -> ProcessDescription:
        where = action.where
        fields = self._process_fields(action.options, where, file)
        cmd = [self._eval(argument, where, file) for argument in action.cmd]
        self._check_program(cmd[0], fields['cwd'], where)
        label = self._label(self._eval_optional(action.options.label, where, file), cmd[0])
        return ProcessDescription(label, tuple(self._prefix(action.options, where, file) + cmd),
                                  **fields)

    def _check_program(self, program: str, cwd: Path | None, where: fe.Where) -> None:
        if os.sep in program:
            path = Path(program) if cwd is None else cwd / program
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise where.error(f'program {program} does not exist or is not executable')
        elif shutil.which(program, path=self.environ.get('PATH', os.defpath)) is None:
            raise where.error(f'program {program!r} not found on PATH')

    def _node(self, action: fe.NodeAction, file: Path) -> ProcessDescription:
        where = action.where
        fields = self._process_fields(action.options, where, file)
        package = self._eval_optional(action.package, where, file)
        executable = self._eval(action.executable, where, file)
        if package is not None:
            try:
                program = list(find_node_command(package, executable, self.environ))
            except LaunchError as error:
                raise where.error(str(error)) from None
        else:
            self._check_program(executable, fields['cwd'], where)
            program = [executable]
        name = self._eval_optional(action.node_name, where, file)
        if name is not None and not _NAME_RE.match(name):
            raise where.error(f'node name {name!r} is invalid (letters, digits and _ only, '
                              'not starting with a digit)')
        namespace = _absolute(_prefix_namespace(
            self.configurations.get('ros_namespace'),
            self._eval_optional(action.namespace, where, file)))
        if namespace is not None:
            _check_namespace(namespace, where)
        parameters = tuple(self._parameter(entry, file) for entry in action.params)
        remappings = tuple((self._eval(source, where, file), self._eval(target, where, file))
                           for source, target in action.remaps)

        cmd = self._prefix(action.options, where, file) + program
        cmd += [self._eval(argument, where, file) for argument in action.args]
        if action.ros_args:
            cmd += ['--ros-args'] + [self._eval(argument, where, file)
                                     for argument in action.ros_args]
        cmd.append('--ros-args')
        if name is not None:
            cmd += ['-r', f'__node:={name}']
        if namespace is not None:
            cmd += ['-r', f'__ns:={namespace}']
        for parameter in parameters:
            if isinstance(parameter, ParameterFile):
                cmd += ['--params-file', str(parameter.path)]
            else:
                cmd += ['-p', parameter.argument()]
        for source, target in remappings:
            cmd += ['-r', f'{source}:={target}']

        label = self._label(self._eval_optional(action.options.label, where, file), executable)
        node = NodeInfo(package, executable, name, namespace, parameters, remappings)
        return ProcessDescription(label, tuple(cmd), node=node, **fields)

    def _parameter(self, entry: fe.ParamValueEntry | fe.ParamFileEntry,
                   file: Path) -> ParameterRule | ParameterFile:
        if isinstance(entry, fe.ParamFileEntry):
            path = Path(os.path.abspath(self._eval(entry.path, entry.where, file)))
            try:
                check_parameter_file(path)
            except LaunchError as error:
                raise entry.where.error(str(error)) from None
            return ParameterFile(path)
        name = '.'.join(self._eval(part, entry.where, file) for part in entry.name)
        try:
            return ParameterRule(name, typed_value(name, self._raw(entry.value, entry.where,
                                                                   file), entry.type_name))
        except LaunchError as error:
            raise entry.where.error(str(error)) from None

    def _raw(self, value: fe.RawParamValue, where: fe.Where, file: Path) -> RawValue:
        if isinstance(value, tuple):
            return [self._raw(item, where, file) for item in value]
        if isinstance(value, fe.TextTemplate):
            return TextValue(self._eval(value.template, where, file),
                             has_substitutions(value.template))
        return value


def _prefix_namespace(base: str | None, namespace: str | None) -> str | None:
    """launch_ros's rule: a relative namespace goes below the pushed one."""
    if namespace is None:
        return base
    if not base or namespace.startswith('/'):
        return namespace
    return ('' if base == '/' else base) + '/' + namespace


def _absolute(namespace: str | None) -> str | None:
    if namespace is None:
        return None
    return namespace if namespace.startswith('/') else '/' + namespace


def _check_namespace(namespace: str, where: fe.Where) -> None:
    if namespace == '/':
        return
    tokens = namespace[1:].split('/')
    if not all(_NAMESPACE_TOKEN_RE.match(token) for token in tokens):
        raise where.error(f'namespace {namespace!r} is invalid (/-separated names of letters, '
                          'digits and _, none starting with a digit, no trailing /)')
