"""Teleop core without ROS: keyboard decoding and state, joystick events and mapping, config checks."""
import re

import pytest

from dave_core.command import STOP, Command
from dave_core.teleop import (JS_EVENT_AXIS, JS_EVENT_BUTTON, Gamepad, GamepadMapping, JoystickEvent,
                              Keyboard, KeyDecoder, Quit, SetEstop, SetMode, TeleopConfig,
                              apply_deadzone, encode_joystick_event, parse_joystick_events, status_text)

# --- keyboard bytes -> keys ------------------------------------------------------------------


def test_letters_arrows_and_ctrl_c_decode():
    decoder = KeyDecoder()
    assert decoder.feed(b'wS \x1b[A\x1b[B\x1b[C\x1b[D\x03') == [
        'w', 's', ' ', 'up', 'down', 'right', 'left', 'ctrl-c']
    assert decoder.feed(b'\x1bOA\x1bOD') == ['up', 'left']  # application cursor mode


@pytest.mark.parametrize('cut', [1, 2])
def test_an_arrow_split_across_reads_is_one_key(cut):
    decoder = KeyDecoder()
    seq = b'\x1b[D'
    assert decoder.feed(b'w' + seq[:cut]) == ['w']
    assert decoder.feed(seq[cut:] + b'd') == ['left', 'd']


def test_an_arrow_split_byte_by_byte_is_one_key():
    decoder = KeyDecoder()
    keys = [k for byte in b'\x1b[A\x1bOB' for k in decoder.feed(bytes([byte]))]
    assert keys == ['up', 'down']


def test_unbound_escape_sequences_never_read_as_letters():
    # Ctrl-Up is ESC [ 1 ; 5 A: its 'A' must not become 'a' (turn left); F5 is ESC [ 1 5 ~.
    decoder = KeyDecoder()
    assert decoder.feed(b'\x1b[1;5A\x1b[15~w') == ['escape', 'escape', 'w']
    assert decoder.feed(b'\x1bx') == ['escape', 'x']  # Alt-x: a lone ESC, then the key


def test_a_lone_escape_waits_then_flushes():
    decoder = KeyDecoder()
    assert decoder.feed(b'\x1b') == []
    assert decoder.flush() == ['escape']
    assert decoder.feed(b'w') == ['w']


# --- keyboard state machine ------------------------------------------------------------------


def _press(keyboard, *keys):
    requests = []
    for key in keys:
        requests += keyboard.press(key)
    return requests


def test_keys_are_sticky_and_bounded():
    config = TeleopConfig()
    keyboard = Keyboard(config)
    assert keyboard.command == STOP
    _press(keyboard, 'w', 'up')
    assert keyboard.command == Command(0.2, 0.0)
    _press(keyboard, *['w'] * 20)
    assert keyboard.command.linear_mps == config.max_speed_mps
    _press(keyboard, *['a'] * 20)
    assert keyboard.command.angular_rps == config.max_yaw_rate_rps  # positive = left (REP-103)
    _press(keyboard, *['right'] * 40)
    assert keyboard.command.angular_rps == -config.max_yaw_rate_rps
    _press(keyboard, *['s'] * 40)
    assert keyboard.command.linear_mps == -config.max_reverse_mps  # reverse, bounded


def test_steps_sum_exactly_back_to_zero():
    keyboard = Keyboard()
    _press(keyboard, *['w'] * 7, *['s'] * 7, *['a'] * 3, *['d'] * 3)
    assert keyboard.command == Command(0.0, 0.0)
    _press(keyboard, *['w'] * 3)
    assert keyboard.command.linear_mps == 0.3


@pytest.mark.parametrize('key', [' ', 'x'])
def test_space_and_x_zero_the_command(key):
    keyboard = Keyboard()
    _press(keyboard, 'w', 'w', 'a')
    assert _press(keyboard, key) == []
    assert keyboard.command == STOP


def test_mode_estop_and_quit_requests():
    keyboard = Keyboard()
    assert _press(keyboard, '1', '2', '3') == [SetMode('manual'), SetMode('shared'), SetMode('auto')]
    _press(keyboard, 'w', 'a')
    assert _press(keyboard, 'e') == [SetEstop(True)]
    assert keyboard.command == STOP  # the e-stop also zeroes the held command
    assert _press(keyboard, 'r') == [SetEstop(False)]
    assert keyboard.command == STOP  # release does not bring the old command back
    _press(keyboard, 'w')
    assert _press(keyboard, 'q') == [Quit()]
    assert keyboard.command == STOP
    assert _press(keyboard, 'ctrl-c') == [Quit()]


def test_unbound_keys_do_nothing():
    keyboard = Keyboard()
    _press(keyboard, 'w')
    assert _press(keyboard, 'z', 'escape', '\r', '9') == []
    assert keyboard.command == Command(0.1, 0.0)


def test_status_text_shows_command_mode_and_estop():
    text = status_text(Command(0.3, -0.25), 'shared', True)
    assert '+0.30 m/s' in text and '-0.25 rad/s' in text and 'shared' in text and 'E-STOP' in text
    assert 'mode ?' in status_text(STOP, '', False)


# --- joystick events -------------------------------------------------------------------------


def _axis(number, value, init=False):
    return JoystickEvent(0, value, JS_EVENT_AXIS, number, init)


def _button(number, pressed, init=False):
    return JoystickEvent(0, int(pressed), JS_EVENT_BUTTON, number, init)


def test_driver_bytes_parse_including_init_flag_and_partial_records():
    # struct js_event {__u32 time; __s16 value; __u8 type; __u8 number;}, little-endian.
    data = bytes([0x10, 0x27, 0, 0, 0x01, 0x80, 0x81, 0x04])  # time 10000, value -32767, init button 4
    data += bytes([0x11, 0x27, 0, 0, 0xff, 0x7f, 0x02, 0x03])  # value 32767, axis 3
    events, rest = parse_joystick_events(data + b'\x01\x02\x03')
    assert events == [JoystickEvent(10000, -32767, JS_EVENT_BUTTON, 4, True),
                      JoystickEvent(10001, 32767, JS_EVENT_AXIS, 3, False)]
    assert rest == b'\x01\x02\x03'
    events, rest = parse_joystick_events(rest + data[3:8])
    assert len(events) == 1 and rest == b''
    assert parse_joystick_events(b''.join(encode_joystick_event(e) for e in events))[0] == events


def _pad(**mapping):
    pad = Gamepad(TeleopConfig(), GamepadMapping(**mapping))
    pad.connect()
    return pad


def test_sticks_need_the_deadman_and_follow_rep103_signs():
    pad = _pad()
    pad.feed(_axis(1, -32767))  # left stick fully up
    pad.feed(_axis(3, -32767))  # right stick fully left
    assert pad.command == STOP  # deadman (LB) not held
    pad.feed(_button(4, True))
    assert pad.command == Command(0.8, 1.5)  # forward, turning left
    pad.feed(_axis(1, 32767))  # down: reverse, bounded by max_reverse_mps
    pad.feed(_axis(3, 32767))  # right: negative yaw
    assert pad.command == Command(-0.3, -1.5)
    pad.feed(_button(4, False))
    assert pad.command == STOP


def test_deadzone_zeroes_small_deflections_and_rescales_without_a_jump():
    pad = _pad()
    pad.feed(_button(4, True))
    pad.feed(_axis(1, -3000))  # 9 % of travel: inside the 0.1 deadzone
    pad.feed(_axis(3, 2000))
    assert pad.command == Command(0.0, 0.0)
    assert str(pad.command.linear_mps) == '0.0'  # never -0.0
    pad.feed(_axis(1, -int(0.55 * 32767)))  # halfway between deadzone and full
    assert pad.command.linear_mps == pytest.approx(0.4, abs=1e-3)
    assert apply_deadzone(0.1000001, 0.1) == pytest.approx(0.0, abs=1e-5)
    assert apply_deadzone(-1.0, 0.1) == -1.0
    pad.feed(_axis(1, -32768))  # the driver can report one past the end
    assert pad.command.linear_mps == 0.8


def test_a_deadman_held_at_connection_does_not_drive():
    pad = _pad()
    pad.feed(_button(4, True, init=True))  # the state the driver reports on open
    pad.feed(_axis(1, -32767, init=True))
    assert pad.command == STOP
    pad.feed(_button(4, False))
    pad.feed(_button(4, True))
    assert pad.command.linear_mps == 0.8  # init axis values do count once the deadman is pressed


def test_buttons_make_requests_on_press_only_never_from_init_events():
    pad = _pad()
    assert pad.feed(_button(0, True, init=True)) == []
    assert pad.feed(_button(2, True)) == [SetMode('manual')]
    assert pad.feed(_button(2, False)) == []
    assert pad.feed(_button(3, True)) == [SetMode('shared')]
    assert pad.feed(_button(0, True)) == [SetMode('auto')]
    assert pad.feed(_button(1, True)) == [SetEstop(True)]
    assert pad.feed(_button(7, True)) == [SetEstop(False)]
    assert pad.feed(_button(9, True)) == []


def test_disconnection_zeroes_until_reconnected_and_pressed_again():
    pad = _pad()
    pad.feed(_button(4, True))
    pad.feed(_axis(1, -32767))
    assert pad.command.linear_mps > 0.0
    pad.disconnect()
    assert pad.command == STOP and not pad.connected
    pad.feed(_button(4, True))  # stale bytes after the error must not count
    assert pad.command == STOP
    pad.connect()
    pad.feed(_button(4, True, init=True))
    assert pad.command == STOP


def test_teleop_twist_joy_single_stick_layout_is_a_mapping():
    pad = _pad(yaw_axis=0)
    pad.feed(_button(4, True))
    pad.feed(_axis(0, 32767))  # left stick right
    assert pad.command.angular_rps == -1.5


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize('kwargs, message', [
    ({'max_speed_mps': 0.0}, 'max_speed_mps must be a positive finite number'),
    ({'max_yaw_rate_rps': float('nan')}, 'max_yaw_rate_rps must be a positive finite number'),
    ({'speed_step_mps': -0.1}, 'speed_step_mps must be a positive'),
    ({'max_reverse_mps': -1.0}, 'max_reverse_mps must be >= 0'),
    ({'rate_hz': 0.5}, r'rate_hz must be in \[1, 200\] Hz'),
    ({'rate_hz': float('inf')}, r'rate_hz must be in \[1, 200\] Hz'),
    ({'speed_step_mps': 1.0}, 'speed_step_mps .* must not exceed max_speed_mps'),
    ({'yaw_step_rps': 2.0}, 'yaw_step_rps .* must not exceed max_yaw_rate_rps'),
])
def test_bad_teleop_config_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TeleopConfig(**kwargs)


def test_no_reverse_is_allowed():
    keyboard = Keyboard(TeleopConfig(max_reverse_mps=0.0))
    keyboard.press('s')
    assert keyboard.command.linear_mps == 0.0


@pytest.mark.parametrize('kwargs, message', [
    ({'yaw_axis': 1}, 'speed_axis and yaw_axis must differ'),
    ({'estop_button': 4}, 'deadman_button and estop_button must differ'),
    ({'auto_button': 256}, r'auto_button must be in 0\.\.255'),
    ({'deadzone': 1.0}, r'deadzone must be in \[0, 0\.9\]'),
])
def test_bad_gamepad_mapping_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GamepadMapping(**kwargs)


# --- command line ----------------------------------------------------------------------------


def _cli_args(*argv):
    from dave_cli.cli import build_parser
    return build_parser().parse_args(['teleop', *argv])


def test_cli_options_become_node_parameters():
    from dave_cli.commands.teleop import node_command
    command = node_command(_cli_args('--device', 'gamepad', '--joystick', '/dev/input/js3',
                                     '--max-speed', '1', '--rate', '30'))
    params = command[command.index('--ros-args') + 1:]
    assert params[::2] == ['-p'] * (len(params) // 2)
    assert {'device:=gamepad', 'joystick:=/dev/input/js3', 'max_speed_mps:=1.0', 'rate_hz:=30.0',
            'max_yaw_rate_rps:=1.5', 'status_line:=false'} == set(params[1::2])  # no mode: left as is
    assert 'initial_mode:=shared' in node_command(_cli_args('--mode', 'shared'))


@pytest.mark.parametrize('argv, message', [
    (['--rate', '0'], r'rate_hz must be in \[1, 200\] Hz'),
    (['--max-speed', '-1'], 'max_speed_mps must be a positive finite number'),
    (['--device', 'gamepad', '--joystick', '/nonexistent/js0'], 'gamepad /nonexistent/js0: no such device'),
])
def test_cli_refuses_bad_options_with_one_line(argv, message, capsys):
    from dave_cli.commands.teleop import run
    assert run(_cli_args(*argv)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err


def test_cli_keyboard_needs_a_terminal(monkeypatch, capsys):
    import io

    from dave_cli.commands.teleop import run
    monkeypatch.setattr('sys.stdin', io.StringIO(''))
    assert run(_cli_args()) == 2
    assert 'keyboard teleop needs a terminal' in capsys.readouterr().err
