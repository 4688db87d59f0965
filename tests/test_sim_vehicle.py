"""Truck dynamics (pure functions) and the collision-episode counter."""
import math

import numpy as np
import pytest

from dave_sim.collisions import CollisionEpisodes
from dave_sim.vehicle import (VehicleConfig, VehicleState, sanitize_command, step_drive, step_unicycle,
                              wrap_angle)

CFG = VehicleConfig()
DT = 0.01


def _run(command, seconds, state=None, cfg=CFG):
    state = np.zeros(5) if state is None else state
    for _ in range(int(round(seconds / DT))):
        state = step_unicycle(state, np.asarray(command, float), DT, cfg)
    return state


def test_speed_and_yaw_rate_settle_at_clamped_limits():
    state = _run([10.0, 10.0], 3.0)
    assert state[3] == pytest.approx(CFG.max_speed_mps, abs=1e-3)
    assert state[4] == pytest.approx(CFG.max_yaw_rate_rps, abs=1e-3)
    state = _run([-10.0, -10.0], 3.0)
    assert state[3] == pytest.approx(-CFG.max_reverse_mps, abs=1e-3)
    assert state[4] == pytest.approx(-CFG.max_yaw_rate_rps, abs=1e-3)


def test_acceleration_limits_hold_every_step():
    state = np.zeros(5)
    accels, decels, yaw_accels = [], [], []
    for command in ([2.0, 2.0],) * 100 + ([0.0, -2.0],) * 100:
        new = step_unicycle(state, np.array(command), DT, CFG)
        dv = (new[3] - state[3]) / DT
        (accels if command[0] > 0 else decels).append(dv)
        yaw_accels.append(abs(new[4] - state[4]) / DT)
        state = new
    assert max(accels) <= CFG.max_accel_mps2 + 1e-9
    assert min(decels) >= -CFG.max_decel_mps2 - 1e-9
    assert max(accels) == pytest.approx(CFG.max_accel_mps2)  # the limit is actually reached
    assert max(yaw_accels) <= CFG.max_yaw_accel_rps2 + 1e-9


def test_first_order_lag_reaches_63_percent_after_one_time_constant():
    slow = VehicleConfig(max_accel_mps2=100.0, max_decel_mps2=100.0)  # lag only, no accel clamp
    state = _run([1.0, 0.0], slow.speed_time_constant_s, cfg=slow)
    assert state[3] == pytest.approx(1 - math.exp(-1), abs=1e-6)


def test_straight_line_and_circle_geometry():
    state = _run([1.0, 0.0], 5.0, state=np.array([0.0, 0.0, math.pi / 2, 1.0, 0.0]))
    assert state[0] == pytest.approx(0.0, abs=1e-9)
    assert state[1] == pytest.approx(5.0, rel=1e-6)
    # Steady turning at v = 1, w = 1 runs a circle of radius 1 about (0, 1).
    state = np.array([0.0, 0.0, 0.0, 1.0, 1.0])
    for _ in range(600):
        state = step_unicycle(state, np.array([1.0, 1.0]), 2 * math.pi / 600, CFG)
    assert math.hypot(state[0], state[1] - 1.0) == pytest.approx(1.0, abs=1e-6)
    assert math.hypot(state[0], state[1]) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_non_finite_command_means_stop(bad):
    assert sanitize_command(bad, 0.5) == (0.0, 0.0, False)
    assert sanitize_command(0.5, bad) == (0.0, 0.0, False)
    assert sanitize_command(0.5, -0.25) == (0.5, -0.25, True)
    moving = np.array([1.0, 2.0, 0.3, 1.5, 0.5])
    state = moving
    for _ in range(300):
        state = step_unicycle(state, np.array([bad, 1.0]), DT, CFG)
    assert np.all(np.isfinite(state))
    assert state[3] == pytest.approx(0.0, abs=1e-6) and state[4] == pytest.approx(0.0, abs=1e-6)


def test_inputs_are_not_mutated_and_yaw_is_wrapped():
    state = np.array([0.0, 0.0, 3.1, 0.0, 2.0])
    command = np.array([0.0, 2.0])
    before = state.copy(), command.copy()
    new = step_unicycle(state, command, 0.1, CFG)
    assert np.array_equal(state, before[0]) and np.array_equal(command, before[1])
    assert -math.pi <= new[2] < math.pi
    assert new[2] == pytest.approx(wrap_angle(3.1 + 0.2), abs=1e-9)
    assert np.array_equal(step_drive(np.array([0.3, 0.1]), np.array([0.3, 0.1]), DT, CFG), [0.3, 0.1])


def test_vehicle_config_validation_names_the_field():
    with pytest.raises(ValueError, match="'max_speed_mps'"):
        VehicleConfig(max_speed_mps=0.0)
    with pytest.raises(ValueError, match="'ground_clearance_m'"):
        VehicleConfig(ground_clearance_m=-0.1)
    assert VehicleConfig().footprint_radius_m == pytest.approx(math.hypot(0.5, 0.35) / 2)
    with pytest.raises(ValueError, match='dt'):
        step_unicycle(np.zeros(5), np.zeros(2), math.nan, CFG)


def test_state_array_round_trip():
    s = VehicleState(1.0, 2.0, 0.5, 0.7, -0.2)
    assert VehicleState.from_array(s.as_array()) == s


def test_collision_episode_counts_continuous_contact_once():
    episodes = CollisionEpisodes(release_s=0.25)
    t = 0.0
    contact_pattern = [True] * 50 + [False, True] * 10 + [True] * 20  # flickering grind = one episode
    starts = [episodes.update(t := t + 0.005, c) for c in contact_pattern]
    assert episodes.count == 1 and sum(starts) == 1 and episodes.in_episode
    for _ in range(40):  # 0.2 s apart: still the same episode
        episodes.update(t := t + 0.005, False)
    assert episodes.in_episode
    episodes.update(t := t + 0.1, False)
    assert not episodes.in_episode
    assert episodes.update(t + 0.005, True)  # touching again is a new episode
    assert episodes.count == 2
    episodes.reset()
    assert episodes.count == 0 and not episodes.in_episode
