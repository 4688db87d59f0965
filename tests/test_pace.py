"""A predicted speed -> the command: cruise cap, minimum speed, turning in place (no ROS)."""
import math
from pathlib import Path

import pytest

from dave_core.autopilot import Pace, SteeringPilot
from dave_core.command import CommandGovernor, CommandLimits
from dave_sim.reactive_expert import ReactiveConfig

MODELS = Path(__file__).resolve().parents[1] / 'models'


@pytest.fixture
def pilot():
    return SteeringPilot.from_file(MODELS / 'steering.onnx', cruise_speed_mps=0.8)


def test_without_a_predicted_speed_the_pilot_cruises(pilot):
    command = pilot.command_for(0.5, None)
    assert (command.linear_mps, command.angular_rps) == (0.8, pytest.approx(0.4))


@pytest.mark.parametrize('speed, expected', [(0.5, 0.5), (2.0, 0.8), (0.15, 0.25), (0.25, 0.25)])
def test_predicted_speed_is_kept_between_min_speed_and_cruise(pilot, speed, expected):
    command = pilot.command_for(-1.0, speed)
    assert command.linear_mps == pytest.approx(expected)
    assert command.angular_rps == pytest.approx(-expected)  # the curvature is kept at any speed


def test_a_speed_near_zero_turns_in_place_and_keeps_its_direction_until_it_drives_on(pilot):
    first = pilot.command_for(-1.2, 0.05)
    assert (first.linear_mps, first.angular_rps) == (0.0, -1.0)  # the side the network turns to
    assert pilot.command_for(0.3, 0.0).angular_rps == -1.0  # kept: no dithering in a pocket
    assert pilot.command_for(0.3, 0.6).linear_mps == pytest.approx(0.6)  # drives on
    assert pilot.command_for(0.0, 0.0).angular_rps == 1.0  # a new turn; "straight" turns left


def test_a_non_finite_speed_reaches_the_governor_which_stops(pilot):
    command = pilot.command_for(0.2, math.nan)
    governor = CommandGovernor(CommandLimits())
    governor.propose(0.0, command, 0.0)
    out = governor.update(0.0).command
    assert (out.linear_mps, out.angular_rps) == (0.0, 0.0)


def test_pace_defaults_are_the_experts_and_bad_values_are_named():
    expert = ReactiveConfig()
    assert Pace().min_speed_mps == expert.min_speed_mps
    assert Pace().turn_in_place_rps == expert.turn_in_place_rps
    assert 0 < Pace().turn_in_place_below_mps < expert.min_speed_mps  # the expert's labels: 0 or >= min
    with pytest.raises(ValueError, match='turn_in_place_below_mps'):
        Pace(turn_in_place_below_mps=0.3)
    with pytest.raises(ValueError, match='pace.min_speed_mps must be >= 0'):
        Pace(min_speed_mps=-1.0)
