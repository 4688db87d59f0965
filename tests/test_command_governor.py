"""The command governor's safety rules, with time injected (no ROS)."""
import math

import pytest

from dave_core.command import Command, CommandGovernor, CommandLimits

LIMITS = CommandLimits(max_speed_mps=1.0, max_reverse_mps=0.2, max_yaw_rate_rps=1.0,
                       max_accel_mps2=2.0, max_yaw_accel_rps2=10.0,
                       image_timeout_s=0.3, command_timeout_s=0.2)


def drive(gov, t, cmd, image_age=0.05):
    gov.propose(t, cmd, image_stamp_s=t - image_age)
    return gov.update(t)


def test_no_proposal_means_stop():
    out = CommandGovernor(LIMITS).update(0.0)
    assert out.command == Command(0.0, 0.0) and out.reason == 'no_command'


def test_acceleration_is_limited_and_clamped_to_max_speed():
    gov = CommandGovernor(LIMITS)
    speeds = [drive(gov, 0.1 * i, Command(5.0, 0.0)).command.linear_mps for i in range(12)]
    # 2 m/s^2 * 0.1 s = 0.2 m/s per step, capped at 1.0 m/s.
    assert speeds[:6] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert max(speeds) == pytest.approx(1.0)


def test_slowing_down_is_immediate():
    gov = CommandGovernor(LIMITS)
    for i in range(10):
        drive(gov, 0.1 * i, Command(1.0, 0.0))
    assert drive(gov, 1.0, Command(0.1, 0.0)).command.linear_mps == pytest.approx(0.1)


def test_yaw_rate_and_reverse_clamped():
    gov = CommandGovernor(LIMITS)
    for i in range(10):
        out = drive(gov, 0.1 * i, Command(-3.0, -7.0))
    assert out.command.linear_mps == pytest.approx(-0.2)
    assert out.command.angular_rps == pytest.approx(-1.0)


def test_stale_image_stops_even_with_fresh_proposals():
    gov = CommandGovernor(LIMITS)
    drive(gov, 0.0, Command(1.0, 0.0))
    out = drive(gov, 0.1, Command(1.0, 0.0), image_age=0.5)
    assert out.command == Command() and out.reason == 'stale_image'


def test_silence_stops_after_command_timeout():
    gov = CommandGovernor(LIMITS)
    for i in range(5):
        drive(gov, 0.1 * i, Command(1.0, 0.0))
    assert gov.update(0.45).reason == 'ok'
    out = gov.update(0.65)
    assert out.command == Command() and out.reason == 'stale_command'


@pytest.mark.parametrize('bad', [Command(math.nan, 0.0), Command(0.5, math.inf)])
def test_non_finite_proposal_stops(bad):
    gov = CommandGovernor(LIMITS)
    out = drive(gov, 0.0, bad)
    assert out.command == Command() and out.reason == 'invalid'


def test_estop_latches_until_released():
    gov = CommandGovernor(LIMITS)
    for i in range(5):
        drive(gov, 0.1 * i, Command(1.0, 0.0))
    gov.set_estop(True)
    assert drive(gov, 0.5, Command(1.0, 0.0)).reason == 'estop'
    assert drive(gov, 0.6, Command(1.0, 0.0)).command == Command()
    gov.set_estop(False)
    out = drive(gov, 0.7, Command(1.0, 0.0))
    # Released: moves again, but ramps up from standstill.
    assert out.reason == 'ok' and 0.0 < out.command.linear_mps <= 0.2 + 1e-9


def test_direction_reversal_passes_through_zero():
    gov = CommandGovernor(LIMITS)
    for i in range(10):
        drive(gov, 0.1 * i, Command(0.0, 1.0))
    out = drive(gov, 1.0, Command(0.0, -1.0))
    assert out.command.angular_rps == pytest.approx(-1.0)  # 10 rad/s^2 * 0.1 s allows the full step


@pytest.mark.parametrize('field,value', [('max_speed_mps', 0.0), ('image_timeout_s', -1.0),
                                         ('max_reverse_mps', math.nan)])
def test_invalid_limits_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        CommandLimits(**{field: value})


# ---------------------------------------------------------------- modes and the human's command

def test_auto_ignores_the_human():
    gov = CommandGovernor(LIMITS, mode='auto')
    for i in range(10):
        gov.teleop(0.1 * i, Command(-0.2, 1.0))
        out = drive(gov, 0.1 * i, Command(1.0, 0.0))
    assert out.source == 'autopilot' and not out.intervention
    assert out.command == Command(1.0, 0.0)


def test_manual_obeys_the_human_without_images_and_stops_when_teleop_goes_silent():
    gov = CommandGovernor(LIMITS, mode='manual')
    assert gov.update(0.0).reason == 'no_teleop'
    for i in range(10):
        gov.teleop(0.1 * i, Command(0.5, -0.5))
        gov.propose(0.1 * i, Command(1.0, 1.0), image_stamp_s=-10.0)  # stale images do not matter
        out = gov.update(0.1 * i)
    assert (out.reason, out.source, out.intervention) == ('ok', 'human', True)  # a person in charge
    assert out.command == Command(0.5, -0.5) and out.image_stamp_s is None
    out = gov.update(0.9 + 0.25)  # teleop silent longer than command_timeout_s
    assert out.command == Command() and out.reason == 'stale_teleop'


def test_shared_hands_over_to_the_human_and_back_after_the_release_time():
    limits = CommandLimits(max_speed_mps=1.0, max_accel_mps2=100.0, max_yaw_accel_rps2=100.0,
                           command_timeout_s=0.5, image_timeout_s=0.5, takeover_release_s=1.0)
    gov = CommandGovernor(limits, mode='shared')
    t = 0.0
    outs = []
    for human in [Command()] * 5 + [Command(0.3, 0.8)] * 5 + [Command()] * 15:
        gov.teleop(t, human)
        outs.append(drive(gov, t, Command(1.0, 0.0)))
        t += 0.1
    sources = [o.source for o in outs]
    # hands off -> autopilot; the human steers at 0.5 s; zero from 1.0 s keeps the human in
    # charge (driving zero) for the release time, then the autopilot resumes.
    assert sources[:5] == ['autopilot'] * 5
    # (index 19 is the release boundary, 1.0 s after the last non-zero command: either side)
    assert sources[5:19] == ['human'] * 14 and all(o.intervention for o in outs[5:19])
    assert outs[7].command == Command(0.3, 0.8)
    assert outs[12].command == Command()  # the human let go: stop, not the autopilot's 1 m/s
    assert sources[20:] == ['autopilot'] * 5 and not outs[-1].intervention
    assert outs[-1].command == Command(1.0, 0.0)


def test_takeover_keeps_the_acceleration_limit():
    gov = CommandGovernor(LIMITS, mode='shared')
    for i in range(10):
        gov.teleop(0.1 * i, Command())
        drive(gov, 0.1 * i, Command(0.0, 0.0))
    gov.teleop(1.0, Command(1.0, 0.0))
    out = drive(gov, 1.0, Command(0.0, 0.0))
    assert out.source == 'human' and out.command.linear_mps == pytest.approx(0.2)  # 2 m/s^2 * 0.1 s


def test_a_nan_teleop_command_in_shared_mode_stops_the_vehicle():
    gov = CommandGovernor(LIMITS, mode='shared')
    for i in range(5):
        drive(gov, 0.1 * i, Command(1.0, 0.0))
    gov.teleop(0.5, Command(math.nan, 0.0))
    out = drive(gov, 0.5, Command(1.0, 0.0))
    assert out.command == Command() and out.reason == 'invalid_teleop'


def test_estop_mode_stops_and_a_valid_mode_resumes():
    gov = CommandGovernor(LIMITS)
    drive(gov, 0.0, Command(1.0, 0.0))
    gov.set_mode('estop')
    out = drive(gov, 0.1, Command(1.0, 0.0))
    assert out.command == Command() and (out.reason, out.source) == ('mode_estop', 'none')
    gov.set_mode(' AUTO ')
    assert drive(gov, 0.2, Command(1.0, 0.0)).reason == 'ok'


def test_an_unknown_mode_is_named_and_changes_nothing():
    gov = CommandGovernor(LIMITS, mode='manual')
    with pytest.raises(ValueError, match=r"unknown mode 'atuo' \(known: manual, auto, shared, estop\)"):
        gov.set_mode('atuo')
    assert gov.mode == 'manual'
    with pytest.raises(ValueError, match='unknown mode'):
        CommandGovernor(LIMITS, mode='drive')
