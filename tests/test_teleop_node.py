"""The teleop node in a real rclpy graph, its devices at the hardware boundary: a pseudo-terminal as
the keyboard, a FIFO as the joystick device (/dev/input/jsN speaks the same 8-byte records)."""
import os
import signal
import subprocess
import sys
import termios
import time

import pytest
import rclpy
from geometry_msgs.msg import TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from std_msgs.msg import Bool, String

from dave_core.teleop import JS_EVENT_AXIS, JS_EVENT_BUTTON, JoystickEvent, encode_joystick_event
from dave_nodes.teleop_node import COMMAND_QOS, ESTOP_QOS, MODE_QOS, TeleopNode

pytestmark = pytest.mark.ros


class Probe:
    """Records /teleop/cmd_vel, /dave/mode and /dave/estop as another node sees them."""

    def __init__(self, context):
        self.node = rclpy.create_node('probe', context=context)
        self.cmds: list[TwistStamped] = []
        self.modes: list[str] = []
        self.estops: list[bool] = []
        self.node.create_subscription(TwistStamped, '/teleop/cmd_vel', self.cmds.append, COMMAND_QOS)
        self.node.create_subscription(String, '/dave/mode', lambda m: self.modes.append(m.data), MODE_QOS)
        self.node.create_subscription(Bool, '/dave/estop', lambda m: self.estops.append(m.data), ESTOP_QOS)

    def last(self):
        msg = self.cmds[-1]
        return msg.twist.linear.x, msg.twist.angular.z


def _spin_until(executor, condition, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.02)
        if condition():
            return True
    return False


def _spin(executor, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.02)


@pytest.fixture
def pty():
    master, slave = os.openpty()
    try:
        yield master, slave
    finally:
        os.close(master)
        os.close(slave)


@pytest.fixture
def graph(context):
    executor = SingleThreadedExecutor(context=context)
    probe = Probe(context)
    executor.add_node(probe.node)
    nodes = []

    def add(node):
        nodes.append(node)
        executor.add_node(node)
        return node

    try:
        yield executor, probe, add
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        probe.node.destroy_node()


def test_keyboard_on_a_terminal_drives_switches_modes_and_estops(context, graph, pty):
    executor, probe, add = graph
    master, slave = pty
    original = termios.tcgetattr(slave)
    teleop = add(TeleopNode(keyboard_fd=slave, context=context))
    assert not termios.tcgetattr(slave)[3] & (termios.ECHO | termios.ICANON)  # cbreak while running

    # Published at the rate the whole time, zero before any key.
    assert _spin_until(executor, lambda: len(probe.cmds) >= 3)
    assert probe.last() == (0.0, 0.0)
    msg = probe.cmds[-1]
    assert msg.header.frame_id == 'base_link'
    assert abs(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 - time.time()) < 1.0
    probe.cmds.clear()
    _spin(executor, 1.0)
    assert 12 <= len(probe.cmds) <= 26, len(probe.cmds)  # 20 Hz, with room for a busy machine

    os.write(master, b'ww\x1b[')  # the Left arrow split across two reads
    _spin(executor, 0.15)
    os.write(master, b'D')
    assert _spin_until(executor, lambda: probe.last() == (0.2, 0.25)), probe.last()
    assert probe.modes == []  # no initial_mode: the mode is left as it is

    os.write(master, b'2')
    assert _spin_until(executor, lambda: probe.modes == ['shared'])
    # Latched: a node that subscribes after the switch still learns the mode.
    late: list[str] = []
    late_node = add(rclpy.create_node('late', context=context))
    late_node.create_subscription(String, '/dave/mode', lambda m: late.append(m.data), MODE_QOS)
    assert _spin_until(executor, lambda: late == ['shared'])

    os.write(master, b'e')
    assert _spin_until(executor, lambda: probe.estops == [True])
    assert _spin_until(executor, lambda: probe.last() == (0.0, 0.0))
    os.write(master, b'r\x1b[A')
    assert _spin_until(executor, lambda: probe.estops == [True, False])
    assert _spin_until(executor, lambda: probe.last() == (0.1, 0.0))

    os.write(master, b'q')
    assert _spin_until(executor, lambda: teleop.done)
    teleop.stop()
    assert _spin_until(executor, lambda: probe.last() == (0.0, 0.0))
    assert termios.tcgetattr(slave) == original  # the terminal is restored


def test_initial_mode_is_published_at_start(context, graph, pty):
    executor, probe, add = graph
    add(TeleopNode(keyboard_fd=pty[1], context=context,
                   parameter_overrides=[Parameter('initial_mode', value='manual')]))
    assert _spin_until(executor, lambda: probe.modes == ['manual'])


def _events(*events):
    return b''.join(encode_joystick_event(e) for e in events)


def test_gamepad_device_needs_the_deadman_and_survives_disconnection(context, graph, tmp_path):
    executor, probe, add = graph
    device = tmp_path / 'js0'
    os.mkfifo(device)
    writer = os.open(device, os.O_RDWR)  # a writer exists before the node opens it, like a driver
    try:
        teleop = add(TeleopNode(context=context, parameter_overrides=[
            Parameter('device', value='gamepad'), Parameter('joystick', value=str(device))]))
        # On open the driver reports the current state: LB already held, left stick fully up.
        os.write(writer, _events(JoystickEvent(1, 1, JS_EVENT_BUTTON, 4, init=True),
                                 JoystickEvent(1, -32767, JS_EVENT_AXIS, 1, init=True)))
        _spin(executor, 0.3)
        assert probe.cmds and all(m.twist.linear.x == 0.0 for m in probe.cmds)

        record = _events(JoystickEvent(2, 1, JS_EVENT_BUTTON, 4),  # a real LB press
                         JoystickEvent(3, 16384, JS_EVENT_AXIS, 3))  # right stick half right
        os.write(writer, record[:5])  # records split across reads
        _spin(executor, 0.1)
        os.write(writer, record[5:])
        assert _spin_until(executor, lambda: probe.last()[0] == pytest.approx(0.8)), probe.last()
        assert probe.last()[1] < 0.0  # right = negative yaw

        os.write(writer, _events(JoystickEvent(4, 1, JS_EVENT_BUTTON, 3),  # Y: shared
                                 JoystickEvent(5, 1, JS_EVENT_BUTTON, 1)))  # B: e-stop
        assert _spin_until(executor, lambda: probe.modes == ['shared'] and probe.estops == [True])

        os.write(writer, _events(JoystickEvent(6, 0, JS_EVENT_BUTTON, 4)))  # deadman released
        assert _spin_until(executor, lambda: probe.last() == (0.0, 0.0))
        os.write(writer, _events(JoystickEvent(7, 1, JS_EVENT_BUTTON, 4)))
        assert _spin_until(executor, lambda: probe.last()[0] > 0.0)
    finally:
        os.close(writer)  # the pad is unplugged
        device.unlink()
    assert _spin_until(executor, lambda: probe.last() == (0.0, 0.0))
    probe.cmds.clear()
    _spin(executor, 0.5)
    assert len(probe.cmds) >= 7 and all(m.twist.linear.x == 0.0 for m in probe.cmds)  # still publishing
    assert not teleop.done


def _node_process(*params, stdin=subprocess.DEVNULL):
    command = [sys.executable, '-m', 'dave_nodes.teleop_node', '--ros-args']
    for param in params:
        command += ['-p', param]
    return subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_keyboard_without_a_terminal_is_one_error_line():
    proc = _node_process()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.strip().splitlines() == [
        'error: keyboard teleop needs a terminal (stdin is not a TTY); run `dave teleop` in a '
        'terminal, or use --device gamepad']


def test_a_missing_gamepad_is_one_error_line_naming_it(tmp_path):
    proc = _node_process('device:=gamepad', f'joystick:={tmp_path}/js7')
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f'{tmp_path}/js7' in lines[0] and 'No such file' in lines[0], err


@pytest.mark.parametrize('stop', ['sigterm', 'sigint', 'q'])
def test_the_process_publishes_zero_and_restores_the_terminal_on_exit(context, graph, pty, stop):
    executor, probe, _ = graph
    master, slave = pty
    original = termios.tcgetattr(slave)
    proc = _node_process(stdin=slave)
    try:
        started = _spin_until(executor, lambda: probe.cmds, timeout=20)
        assert started, proc.stderr.read() if proc.poll() is not None else 'no command in 20 s'
        os.write(master, b'www')
        assert _spin_until(executor, lambda: probe.last() == (0.3, 0.0))
        {'sigterm': lambda: proc.send_signal(signal.SIGTERM),
         'sigint': lambda: proc.send_signal(signal.SIGINT),
         'q': lambda: os.write(master, b'q')}[stop]()
        assert _spin_until(executor, lambda: proc.poll() is not None, timeout=10)
        assert proc.returncode == 0, proc.stderr.read()
        _spin(executor, 0.2)
        assert probe.last() == (0.0, 0.0)  # the last word is a zero command
        assert termios.tcgetattr(slave) == original
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _read_available(fd, timeout=0.0):
    import select
    chunks = b''
    while select.select([fd], [], [], timeout)[0]:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the last process holding the terminal exited
            break
        if not data:
            break
        chunks += data
        timeout = 0.0
    return chunks


def test_dave_teleop_in_a_terminal_shows_help_and_status_and_stops_on_ctrl_c(context, graph, pty):
    executor, probe, _ = graph
    master, slave = pty
    original = termios.tcgetattr(slave)
    # `dave teleop` as a user starts it: the pty is its controlling terminal, so Ctrl-C typed on it
    # is a SIGINT to the foreground process group (the CLI and its node), not a byte.
    start = ('import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); '
             'os.execv(sys.executable, [sys.executable, "-m", "dave_cli.cli"] + sys.argv[1:])')
    proc = subprocess.Popen([sys.executable, '-c', start, 'teleop', '--max-speed', '0.5'],
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    screen = b''
    try:
        assert _spin_until(executor, lambda: probe.cmds, timeout=20), _read_available(master)
        os.write(master, b'w' * 8)
        assert _spin_until(executor, lambda: probe.last() == (0.5, 0.0))  # --max-speed bounds it
        _spin(executor, 0.2)
        screen += _read_available(master, 0.2)
        os.write(master, b'\x03')
        assert _spin_until(executor, lambda: proc.poll() is not None, timeout=10)
        screen += _read_available(master, 0.2)
        assert proc.returncode == 0, screen.decode(errors='replace')
        _spin(executor, 0.2)
        assert probe.last() == (0.0, 0.0)
        assert termios.tcgetattr(slave) == original
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = screen.decode(errors='replace')
    assert 'w / Up' in text and 'q / Ctrl-C' in text  # the key help, once
    assert text.count('w / Up') == 1
    assert '\rspeed +0.50 m/s  yaw +0.00 rad/s' in text  # the self-overwriting status line
    assert '[INFO]' not in text and 'Traceback' not in text  # quiet
