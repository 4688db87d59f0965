"""LaunchRunner and `dave launch`: labelled output, orderly stop, required processes, no orphans.

The processes are tests/fixtures/launch_child.py, which prints the signals it receives.
"""
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dave_core.launch import (LaunchDescription, LaunchError, LaunchRunner, OutputLine,
                              ProcessDescription, RunnerConfig, exit_status, load_launch_file)
from dave_core.launch.watchdog import watch

FILES = Path(__file__).parent / 'launch_files'
CHILD = Path(__file__).parent / 'fixtures' / 'launch_child.py'
# `dave launch` exactly as the CLI runs it, without relying on its registration in cli.py.
CLI = ('import argparse, sys\n'
       'from dave_cli.commands import launch\n'
       'parser = argparse.ArgumentParser()\n'
       'launch.add_arguments(parser)\n'
       'sys.exit(launch.run(parser.parse_args(sys.argv[1:])))\n')


def _load(name, **arguments):
    return load_launch_file(FILES / name, {'python': sys.executable, **arguments})


def _texts(lines, label):
    return [line.text for line in lines if line.process == label]


def _wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError('condition not met in time')
        time.sleep(0.02)


def _alive(pid):
    """True unless the process is gone or a zombie (a reparented zombie is dead)."""
    try:
        state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ('Z', 'X')


def _survivors(pids, timeout=5.0):
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if _alive(pid)]


def _descendants(root):
    """Every live process below `root`, from /proc."""
    parents = {}
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / 'stat').read_text().rsplit(')', 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def _kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_watchdog_keeps_the_groups_that_were_never_released():
    assert watch(['+10\n', '+12\n', '-10\n', 'noise\n', '+\n', '+14']) == {12, 14}
    assert exit_status(3) == 3 and exit_status(-signal.SIGKILL) == 137


def test_output_is_prefixed_routed_and_children_get_the_ros_environment(tmp_path):
    lines = []
    runner = LaunchRunner(_load('runner_output.launch.yaml'),
                          RunnerConfig(log_dir=tmp_path, domain_id=41), sink=lines.append)
    with runner:
        code = runner.wait(timeout=15)
    assert code == 0
    talker = [line for line in lines if line.process == 'talker-1']
    assert OutputLine('talker-1', 'stdout', 'hello out') in talker
    assert OutputLine('talker-1', 'stderr', 'hello err') in talker
    assert OutputLine('talker-1', 'stdout', 'partial') in talker  # last line, no newline
    assert str(talker[0]) == f'[talker-1] {talker[0].text}'
    assert {'ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST', 'ROS_DOMAIN_ID=41',
            'PYTHONUNBUFFERED=1', 'DAVE_EXTRA=from-launch-file'} <= set(_texts(lines, 'talker-1'))
    # Default output is `log`: stderr on screen, stdout only in launch.log.
    assert [(line.stream, line.text) for line in lines if line.process == 'logger-2'] == [
        ('stderr', 'loud-stderr')]
    log = (tmp_path / 'launch.log').read_text()
    assert '[logger-2] quiet-stdout' in log and '[talker-1]' not in log
    # A `node` run through the console_scripts entry point `dave` of dave_core.
    assert _texts(lines, 'dave-3')[0].startswith('usage: dave')
    assert {exit.label: exit.returncode for exit in runner.exits} == {
        'talker-1': 0, 'logger-2': 0, 'dave-3': 0}


def test_stop_escalates_from_sigint_to_sigterm_to_sigkill_after_grace_periods(caplog):
    caplog.set_level(logging.INFO, logger='dave_core.launch')
    events = []
    runner = LaunchRunner(_load('runner_stop.launch.yaml'),
                          RunnerConfig(sigterm_timeout=0.5, sigkill_timeout=0.5),
                          sink=lambda line: events.append((time.monotonic(), line)))
    runner.start()
    try:
        # Each child prints its pid once its signal handlers are installed.
        _wait_until(lambda: sum(line.text.startswith('pid ') for _, line in events) == 3)
        started = time.monotonic()
        code = runner.stop(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        runner.kill()
        runner.wait(10)
    assert code == 0
    lines = [line for _, line in events]
    assert _texts(lines, 'polite-1')[-1] == 'stopping on SIGINT'
    assert _texts(lines, 'stubborn-2')[-2:] == ['ignored SIGINT', 'stopping on SIGTERM']
    assert _texts(lines, 'deaf-3')[-2:] == ['ignored SIGINT', 'ignored SIGTERM']
    sigterm_after = next(t for t, line in events if line.text == 'stopping on SIGTERM') - started
    assert sigterm_after >= 0.45, sigterm_after  # the SIGINT grace period was honoured
    assert 0.95 <= elapsed < 5.0, elapsed
    assert {exit.label: exit.returncode for exit in runner.exits} == {
        'polite-1': 0, 'stubborn-2': 0, 'deaf-3': -signal.SIGKILL}
    assert "[deaf-3]: failed to terminate 0.5 s after SIGTERM, escalating to SIGKILL" in caplog.text
    assert _survivors(list(runner.pids.values())) == []


def test_per_process_timeouts_from_the_launch_file_override_the_runner_defaults():
    lines = []
    runner = LaunchRunner(_load('runner_timeouts.launch.yaml'),
                          RunnerConfig(sigterm_timeout=30.0, sigkill_timeout=30.0),
                          sink=lines.append)
    runner.start()
    try:
        _wait_until(lambda: any(line.text.startswith('pid ') for line in lines))
        started = time.monotonic()
        code = runner.stop(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        runner.kill()
        runner.wait(10)
    assert code == 0 and elapsed < 3.0, elapsed
    assert [exit.returncode for exit in runner.exits] == [-signal.SIGKILL]


@pytest.mark.parametrize('code', [3, 0])
def test_required_process_exit_stops_the_launch_with_its_exit_code(caplog, code):
    caplog.set_level(logging.INFO, logger='dave_core.launch')
    lines = []
    runner = LaunchRunner(_load('runner_required.launch.yaml', code=str(code)),
                          RunnerConfig(sigterm_timeout=2.0), sink=lines.append)
    runner.start()
    try:
        result = runner.wait(timeout=10)
    finally:
        runner.kill()
        runner.wait(10)
    assert result == code
    assert _texts(lines, 'worker-1')[-1] == 'stopping on SIGINT'
    assert f'required process [critical-2] exited with code {code}' in caplog.text
    if code:
        assert f'[critical-2]: process has died [pid {runner.pids["critical-2"]}, exit code 3' \
            in caplog.text


def test_a_process_that_cannot_start_aborts_the_launch_and_stops_the_others():
    good = ProcessDescription('good-1', (sys.executable, str(CHILD)), origin='test:1: executable')
    bad = ProcessDescription('bad-2', ('/nonexistent/program',), origin='test:2: executable')
    runner = LaunchRunner(LaunchDescription(Path('test'), (), (good, bad)),
                          sink=lambda line: None)
    with pytest.raises(LaunchError, match='test:2: executable: cannot start /nonexistent/program: '
                                          'No such file or directory'):
        runner.start()
    assert runner.wait(timeout=0) is not None
    assert [exit.label for exit in runner.exits] == ['good-1']
    assert _survivors(list(runner.pids.values())) == []


class _Cli:
    """`dave launch FILE python:=... [ARGS]` in a subprocess, output collected by a thread."""

    def __init__(self, tmp_path, name, *extra):
        self.proc = subprocess.Popen(
            [sys.executable, '-c', CLI, str(FILES / name), f'python:={sys.executable}', *extra,
             '--log-dir', str(tmp_path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip('\n'))

    def wait_for_lines(self, *prefixes):
        _wait_until(lambda: all(any(line.startswith(prefix) for line in self.lines)
                                for prefix in prefixes))

    def number_after(self, prefix):
        return int(next(line for line in self.lines if line.startswith(prefix)).split()[-1])

    def close(self, leftovers=()):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.reader.join(10)
        _kill_pids(leftovers)


def test_ctrl_c_on_dave_launch_stops_everything_and_exits_0(tmp_path):
    cli = _Cli(tmp_path, 'runner_stop.launch.yaml', '--grace', '0.3', '--kill-after', '0.3')
    processes = []
    try:
        cli.wait_for_lines('[polite-1] pid', '[stubborn-2] pid', '[deaf-3] pid')
        processes = _descendants(cli.proc.pid)
        cli.proc.send_signal(signal.SIGINT)
        assert cli.proc.wait(timeout=10) == 0
        cli.reader.join(10)
        assert '[INFO] [launch]: received SIGINT, stopping 3 process(es)' in cli.lines
        assert '[polite-1] stopping on SIGINT' in cli.lines
        assert '[stubborn-2] stopping on SIGTERM' in cli.lines
        assert '[ERROR] [deaf-3]: failed to terminate 0.3 s after SIGTERM, escalating to SIGKILL' \
            in cli.lines
        assert len(processes) == 4  # three children and the watchdog
        assert _survivors(processes) == []
    finally:
        cli.close(processes)


def test_dave_launch_exits_with_the_code_of_a_failed_required_process(tmp_path):
    cli = _Cli(tmp_path, 'runner_required.launch.yaml', 'code:=3')
    try:
        assert cli.proc.wait(timeout=15) == 3
    finally:
        cli.close()


def test_kill_9_of_dave_launch_leaves_no_process_behind(tmp_path):
    cli = _Cli(tmp_path, 'runner_orphans.launch.yaml')
    processes = []
    try:
        cli.wait_for_lines('[parent-1] pid', '[parent-1] grandchild', '[deaf-2] pid')
        processes = _descendants(cli.proc.pid)
        expected = {cli.number_after('[parent-1] pid'), cli.number_after('[parent-1] grandchild'),
                    cli.number_after('[deaf-2] pid')}
        assert expected <= set(processes)
        cli.proc.kill()
        cli.proc.wait(10)
        assert _survivors(processes) == []
    finally:
        cli.close(processes)
