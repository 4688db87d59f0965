"""Launch files resolved to processes: actions, substitutions, parameters, packages, errors."""
import argparse
import os
import sys
from pathlib import Path

import pytest

import dave_core
from dave_cli.commands import launch as launch_command
from dave_core.launch import (LaunchError, ParameterFile, ParameterRule, declared_arguments,
                              find_node_command, find_package_share, load_launch_file,
                              parse_launch_arguments)
from dave_core.launch.parameters import TextValue, format_value, typed_value
from dave_core.launch.substitutions import Substitution, parse_template

FILES = Path(__file__).parent / 'launch_files'
MAIN = FILES / 'parser_main.launch.yaml'
DAVE_CORE_SOURCE = Path(dave_core.__file__).resolve().parents[1]


def _by_label(description):
    return {process.label: process for process in description.processes}


def test_node_command_line_is_what_ros2_launch_builds():
    processes = _by_label(load_launch_file(MAIN, {'robot': 'car'}))
    steer = processes['steer-1']
    assert steer.cmd[:2] == (sys.executable, '-c')
    assert 'from dave_cli.cli import main' in steer.cmd[2]
    assert list(steer.cmd[3:]) == [
        '--help', '--ros-args', '-r', '__node:=steering', '-r', '__ns:=/car',
        '-p', 'seed:=7', '-p', 'gain:=0.5', '-p', 'enabled:=true', '-p', "label:='5'",
        '-p', 'topics:=[left, right]', '-p', 'limits.speed:=2', '-p', 'limits.steer:=[0.1, 1.0]',
        '--params-file', str(FILES / 'params.yaml'), '-r', 'image:=/stereo/left/image_raw']
    assert steer.required and steer.output == 'screen'
    assert steer.node.parameters[0] == ParameterRule('seed', 7)
    assert steer.node.parameters[3] == ParameterRule('label', '5')
    assert steer.node.parameters[-1] == ParameterFile(FILES / 'params.yaml')
    assert steer.describe().endswith('# on_exit: shutdown')


def test_groups_namespaces_includes_and_scoping():
    processes = _by_label(load_launch_file(MAIN, {'robot': 'car'}))
    assert list(processes) == ['steer-1', 'dave-2', 'dave-3', 'echoer-4', 'echo-5']
    camera = processes['dave-2']
    assert camera.node.namespace == '/sensors/left'  # pushed namespace + relative one
    assert camera.output == 'log' and not camera.required
    included = processes['dave-3']
    assert included.node.name == 'camera_30' and included.node.namespace is None
    assert included.cmd[3:] == ('--ros-args', '-r', '__node:=camera_30')
    # The include's `let` leaks (ROS 2 includes are not scoped); the group's `let` does not.
    assert processes['echoer-4'].cmd == ('echo', 'seed=7', 'in', 'car', 'leaked', 'missing')


def test_env_find_pkg_share_dirname_filename_and_timeouts():
    environ = dict(os.environ, DAVE_TEST_VALUE='from-env')
    processes = _by_label(load_launch_file(MAIN, {'robot': 'car'}, environ=environ))
    assert processes['echoer-4'].env == (('DAVE_FIXTURE', 'from-env'),)
    share = processes['echo-5'].cmd[1]
    assert Path(share) == DAVE_CORE_SOURCE and (Path(share) / 'package.xml').is_file()
    assert processes['echo-5'].cmd[2] == str(MAIN)
    assert (processes['echo-5'].sigterm_timeout, processes['echo-5'].sigkill_timeout) == (1.5, 0.5)
    without_env = {key: value for key, value in os.environ.items() if key != 'DAVE_TEST_VALUE'}
    processes = _by_label(load_launch_file(MAIN, {'robot': 'car'}, environ=without_env))
    assert processes['echoer-4'].env == (('DAVE_FIXTURE', 'fallback'),)


def test_launch_arguments_override_defaults_and_drive_conditions():
    processes = _by_label(load_launch_file(MAIN, {'robot': 'car', 'seed': '11',
                                                  'mode': 'manual'}))
    assert '-p' in processes['steer-1'].cmd and 'seed:=11' in processes['steer-1'].cmd
    assert processes['steer-1'].node.parameters[0] == ParameterRule('seed', 11)
    assert 'echo-5' not in processes  # if: $(and $(not record) $(equals mode auto))
    with pytest.raises(LaunchError, match="program 'no-such-recorder' not found on PATH"):
        load_launch_file(MAIN, {'robot': 'car', 'record': 'true'})  # its group is now on
    arguments = {a.name: a for a in load_launch_file(MAIN, {'robot': 'car'}).arguments}
    assert arguments['seed'].value == '7' and arguments['seed'].description == 'world seed'
    assert arguments['rate'].value == '30'


def test_parse_launch_arguments():
    assert parse_launch_arguments(['seed:=3', 'world:=a:=b', 'empty:=']) == {
        'seed': '3', 'world': 'a:=b', 'empty': ''}
    with pytest.raises(LaunchError, match=r"launch argument 'seed=3' must be written name:=value"):
        parse_launch_arguments(['seed=3'])
    with pytest.raises(LaunchError, match="launch argument 'robot' must be a string, got int 3"):
        load_launch_file(MAIN, {'robot': 3})


def test_substitution_grammar():
    assert parse_template('plain') == ('plain',)
    (sub,) = parse_template('$(var a $(env B \'x y\'))')
    assert isinstance(sub, Substitution) and sub.name == 'var'
    assert sub.arguments[0] == ('a',) and sub.arguments[1][0].arguments[1] == ('x y',)
    assert parse_template(r'\$(var a) and $(dirname)/x') == (
        '$(var a) and ', Substitution('dirname', ()), '/x')
    for text, message in [('$(nope x)', "unknown substitution '\\$\\(nope x\\)'"),
                          ('$(var)', 'wrong number of arguments, expected \\$\\(var NAME'),
                          ('$(var a', 'unterminated substitution'),
                          ('$(var  a)', 'empty argument of \\$\\(var'),
                          ("$(var 'a)", 'unterminated quote')]:
        with pytest.raises(LaunchError, match=message):
            parse_template(text)


@pytest.mark.parametrize('raw, type_name, expected', [
    (TextValue('5', substituted=True), None, 5),
    (TextValue('5', substituted=False), None, '5'),
    (TextValue('', substituted=True), None, ''),
    (TextValue('[1, 2.5]', substituted=True), None, (1.0, 2.5)),
    ([1, 2.5], None, (1.0, 2.5)),
    ([TextValue('on', substituted=False)], None, ('on',)),
    (TextValue('5', substituted=True), 'str', '5'),
    (TextValue('7', substituted=True), 'int', 7),
    (1, 'float', 1.0),
    (TextValue('1', substituted=True), 'bool', True),
    (TextValue('[1, 2]', substituted=True), 'list_of_float', (1.0, 2.0)),
])
def test_parameter_values_are_typed_like_launch_ros(raw, type_name, expected):
    value = typed_value('p', raw, type_name)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize('raw, type_name, message', [
    ([1, TextValue('a', substituted=False)], None, 'list items must share one type'),
    ([], None, 'an empty list has no ROS parameter type'),
    (TextValue('{a: 1}', substituted=True), None, 'reads as a mapping'),
    (TextValue('5', substituted=False), 'int', "'5' is a string, not int"),
    (True, 'int', 'True is not int'),
    (2 ** 63, None, 'does not fit a 64-bit ROS integer'),
    (1, 'double', "unknown type 'double'"),
])
def test_bad_parameter_values(raw, type_name, message):
    with pytest.raises(LaunchError, match=f"param 'p': .*{message}"):
        typed_value('p', raw, type_name)


def test_parameter_rule_text_round_trips_types():
    assert ParameterRule('a', True).argument() == 'a:=true'
    assert ParameterRule('a', 'true').argument() == "a:='true'"
    assert ParameterRule('a', 1.0).argument() == 'a:=1.0'
    assert ParameterRule('a', 'two words').argument() == 'a:=two words'
    assert format_value(('x', 'y z')) == '[x, y z]'
    assert format_value(float('inf')) == '.inf'


def test_ament_prefix_is_searched_before_python_distributions(tmp_path):
    (tmp_path / 'share/ament_index/resource_index/packages').mkdir(parents=True)
    for package in ('fake_pkg', 'dave_cli'):
        (tmp_path / 'share/ament_index/resource_index/packages' / package).touch()
        (tmp_path / 'lib' / package).mkdir(parents=True)
    node = tmp_path / 'lib/fake_pkg/fake_node'
    node.write_text('#!/bin/sh\n')
    node.chmod(0o755)
    (tmp_path / 'lib/dave_cli/dave').write_text('#!/bin/sh\n')
    (tmp_path / 'lib/dave_cli/dave').chmod(0o755)
    environ = {'AMENT_PREFIX_PATH': str(tmp_path)}
    assert find_package_share('fake_pkg', environ) == tmp_path / 'share/fake_pkg'
    assert find_node_command('fake_pkg', 'fake_node', environ) == (str(node),)
    assert find_node_command('dave_cli', 'dave', environ) == (
        str(tmp_path / 'lib/dave_cli/dave'),)
    with pytest.raises(LaunchError, match=r"'fake_pkg' has no executable 'x' \(it provides: "
                                          r"fake_node\)"):
        find_node_command('fake_pkg', 'x', environ)
    # Without ament the editable source directory and the console script are used.
    assert find_package_share('dave_core', {}) == DAVE_CORE_SOURCE
    assert find_node_command('dave_cli', 'dave', {})[:2] == (sys.executable, '-c')


def test_declared_arguments_are_listed_without_evaluating():
    names = [argument.name for argument in declared_arguments(MAIN)]
    assert names == ['seed', 'robot', 'mode', 'record']


def _write(tmp_path, text, name='bad.launch.yaml'):
    path = tmp_path / name
    path.write_text(text)
    return path


NODE = 'launch:\n- node: {pkg: dave_cli, exec: dave, name: n}\n'
BAD_INPUTS = [
    ('not_yaml', 'launch: [\n  - node: {pkg: x\n', {},
     ': malformed YAML (line 2, column 3: expected the node content'),
    ('wrong_root', 'nodes: []\n', {}, ": expected one top-level key 'launch'"),
    ('unknown_action', 'launch:\n- arg: {name: a, default: x}\n- nod: {pkg: p}\n', {},
     ":3: action 'nod' is unknown (supported: arg, executable, group, include, let, node,"),
    ('unsupported_action', 'launch:\n- set_env: {name: A, value: b}\n', {},
     ":2: action 'set_env' is not supported by dave launch"),
    ('unknown_attribute', 'launch:\n- node: {pkg: dave_cli, exec: dave, parms: []}\n', {},
     ":2: node: unknown attribute 'parms' (allowed: args, cwd, emulate_tty, env, exec,"),
    ('unknown_attribute_in_disabled_group',
     "launch:\n- group:\n    if: 'false'\n    children:\n    - let: {name: a, valu: b}\n", {},
     ":5: let: unknown attribute 'valu' (allowed: if, name, unless, value)"),
    ('unknown_pkg', 'launch:\n- node: {pkg: no_such_pkg, exec: x}\n', {},
     ":2: node: package 'no_such_pkg' not found"),
    ('unknown_exec', 'launch:\n- node: {pkg: dave_cli, exec: daev}\n', {},
     ":2: node: package 'dave_cli' has no executable 'daev' (it provides: dave)"),
    ('dict_param', 'launch:\n- node:\n    pkg: dave_cli\n    exec: dave\n    param:\n'
     '    - {name: gains, value: {p: 1}}\n', {},
     ":6: node param: param 'gains': value must be a bool, int, float, string or a list of "
     "them, got a mapping"),
    ('mixed_list', 'launch:\n- node:\n    pkg: dave_cli\n    exec: dave\n    param:\n'
     '    - {name: mix, value: [1, a]}\n', {},
     ":6: node param: param 'mix': list items must share one type (bool, int, float or str), "
     "got int, str"),
    ('missing_required_arg', 'launch:\n- arg: {name: robot, description: robot name}\n', {},
     ":2: arg: required launch argument 'robot' (robot name) was not given; pass robot:=VALUE"),
    ('undeclared_override', 'launch:\n- arg: {name: seed, default: "1"}\n', {'sede': '2'},
     ": launch argument 'sede' is not declared by any arg (declared: seed)"),
    ('bad_choice', "launch:\n- arg: {name: m, default: a, choice: [{value: a}]}\n", {'m': 'b'},
     ":2: arg: launch argument 'm' is 'b', not one of: a"),
    ('int_default', 'launch:\n- arg: {name: seed, default: 5}\n', {},
     ":2: arg: attribute 'default' must be a string, got int 5 (quote it: '5')"),
    ('respawn', "launch:\n- node: {pkg: dave_cli, exec: dave, respawn: 'true'}\n", {},
     ":2: node: attribute 'respawn' is not supported by dave launch"),
    ('bad_condition', "launch:\n- let: {name: a, value: b, if: maybe}\n", {},
     ":2: let: attribute 'if': condition value 'maybe' is neither true/1 nor false/0"),
    ('duplicate_key', 'launch:\n- node:\n    pkg: dave_cli\n    pkg: other\n', {},
     ":4: duplicate key 'pkg'"),
    ('unset_var', 'launch:\n- let: {name: a, value: $(var nope)}\n', {},
     ":2: let: $(var nope): launch configuration 'nope' is not set"),
    ('unset_env', 'launch:\n- let: {name: a, value: $(env DAVE_SURELY_UNSET_VAR)}\n', {},
     ":2: let: $(env DAVE_SURELY_UNSET_VAR): environment variable 'DAVE_SURELY_UNSET_VAR' "
     "is not set"),
    ('unknown_substitution', 'launch:\n- let: {name: a, value: $(eval 1+1)}\n', {},
     ":2: let: attribute 'value': unknown substitution '$(eval 1+1)'"),
    ('bad_node_name', 'launch:\n- node: {pkg: dave_cli, exec: dave, name: 2fast}\n', {},
     ":2: node: node name '2fast' is invalid"),
    ('bad_namespace', 'launch:\n- node: {pkg: dave_cli, exec: dave, namespace: a//b}\n', {},
     ":2: node: namespace '/a//b' is invalid"),
    ('bad_output', 'launch:\n- node: {pkg: dave_cli, exec: dave, output: loud}\n', {},
     ":2: node: attribute 'output' must be one of screen, log, both, got 'loud'"),
    ('int_timeout', 'launch:\n- executable: {cmd: echo, sigterm_timeout: 5}\n', {},
     ":2: executable: attribute 'sigterm_timeout' must be a non-negative float (write 5.0)"),
    ('missing_param_file', 'launch:\n- node:\n    pkg: dave_cli\n    exec: dave\n    param:\n'
     '    - {from: $(dirname)/none.yaml}\n', {}, ':6: node param: parameter file '),
    ('include_missing', 'launch:\n- include: {file: $(dirname)/none.launch.yaml}\n', {},
     ':2: include: included file '),
    ('include_cycle', 'launch:\n- include: {file: $(filename)}\n', {},
     'includes nest deeper than 32 levels'),
]


@pytest.mark.parametrize('case, text, arguments, message', BAD_INPUTS,
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_inputs_fail_with_one_line_naming_the_culprit(tmp_path, case, text, arguments,
                                                          message):
    path = _write(tmp_path, text)
    with pytest.raises(LaunchError) as caught:
        load_launch_file(path, arguments)
    error = str(caught.value)
    assert error.startswith(str(path)), error
    assert message in error, error
    assert '\n' not in error


def test_missing_and_non_yaml_files(tmp_path):
    with pytest.raises(LaunchError, match=f'launch file {tmp_path}/none.launch.yaml does not '
                                          'exist'):
        load_launch_file(tmp_path / 'none.launch.yaml')
    python_file = _write(tmp_path, 'x = 1\n', 'robot.launch.py')
    with pytest.raises(LaunchError, match='only YAML launch files'):
        load_launch_file(python_file)


def test_parameter_file_layout_is_checked(tmp_path):
    params = tmp_path / 'params.yaml'
    launch_file = _write(tmp_path, 'launch:\n- node:\n    pkg: dave_cli\n    exec: dave\n'
                                   '    param:\n    - {from: $(dirname)/params.yaml}\n')
    params.write_text('gain: 0.5\n')
    with pytest.raises(LaunchError, match=r"key 'gain' must hold 'ros__parameters'"):
        load_launch_file(launch_file)
    params.write_text('robot:\n  steering:\n    ros__parameters: {gain: 0.5}\n')
    (process,) = load_launch_file(launch_file).processes
    assert process.cmd[-2:] == ('--params-file', str(params))


def _run_cli(argv):
    parser = argparse.ArgumentParser()
    launch_command.add_arguments(parser)
    return launch_command.run(parser.parse_args(argv))


def test_cli_show_prints_one_line_per_process(capsys):
    assert _run_cli([str(MAIN), 'robot:=car', '--show']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == load_launch_file(MAIN, {'robot': 'car'}).describe()
    assert lines[3] == 'echoer-4: echo seed=7 in car leaked missing'


def test_cli_show_args_and_errors(capsys, tmp_path):
    assert _run_cli([str(MAIN), '--show-args']) == 0
    out = capsys.readouterr().out
    assert "'robot':\n        robot namespace\n        (required)" in out
    assert "Valid choices are: auto, manual\n        (default: 'auto')" in out
    assert _run_cli([str(MAIN), '--show']) == 2
    err = capsys.readouterr().err
    assert err.startswith('dave launch: error: ') and "'robot'" in err
    assert err.count('\n') == 1
