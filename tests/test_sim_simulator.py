"""Simulator physics (no rendering): driving, obstacles stop the truck, collision episodes, the expert,
and real-time pacing with an injected wall clock."""
import math

import numpy as np
import pytest

from dave_sim.expert import ExpertConfig, ExpertDriver, NoiseConfig
from dave_sim.realtime import PacingConfig, RealTimeDriver
from dave_sim.simulator import Simulator
from dave_sim.vehicle import VehicleConfig
from dave_sim.world import Obstacle, Pose2D, World, WorldConfig, generate_world


def _world_with(*obstacles: Obstacle, yaw: float = 0.0) -> World:
    return World(seed=0, config=WorldConfig(walls=True, n_obstacles=0), obstacles=obstacles,
                 start=Pose2D(0.0, 0.0, yaw), goal=(8.0, 0.0), ground_rgb=((0.3, 0.35, 0.2), (0.4, 0.35, 0.27)),
                 sky_rgb=(0.5, 0.7, 0.9), light_dir=(0.3, 0.2, -0.9))


def test_truck_follows_commands_in_the_world_frame():
    sim = Simulator(_world_with(yaw=math.pi / 2))
    sim.apply_controls(1.0, 0.0)
    sim.step(3.0)
    state = sim.state
    assert sim.time_s == pytest.approx(3.0)
    assert state.x == pytest.approx(0.0, abs=1e-3)  # facing +y, so it drives along +y
    assert 2.5 < state.y < 3.0  # ~3 m minus the acceleration phase
    assert state.v == pytest.approx(1.0, abs=0.01) and state.yaw == pytest.approx(math.pi / 2, abs=1e-3)
    assert sim.distance_m == pytest.approx(state.y, abs=1e-3)
    assert abs(sim.lateral_speed_mps) < 1e-3
    sim.apply_controls(0.0, 1.5)
    sim.step(2.0)
    assert sim.state.w == pytest.approx(1.5, abs=0.02)  # turns in place
    assert abs(sim.state.v) < 0.01
    assert sim.collisions == 0


def test_driving_into_an_obstacle_stops_and_counts_one_episode_each_time():
    vehicle = VehicleConfig()
    box = Obstacle('box', 2.0, 0.0, 0.3, 0.5, (0.5, 0.5, 0.5, 1.0))
    sim = Simulator(_world_with(box), vehicle=vehicle)
    sim.apply_controls(1.0, 0.0)
    sim.step(5.0)  # hits after ~1.5 s, then keeps pushing for 3.5 s
    front = sim.state.x + vehicle.length_m / 2
    assert front == pytest.approx(2.0 - 0.3, abs=0.02)  # stopped at the box face, not through it
    assert abs(sim.state.v) < 0.05
    assert sim.collisions == 1 and sim.in_collision
    sim.apply_controls(-0.5, 0.0)
    sim.step(1.5)
    assert sim.collisions == 1 and not sim.in_collision
    sim.apply_controls(1.0, 0.0)
    sim.step(3.0)
    assert sim.collisions == 2
    sim.reset()
    assert (sim.collisions, sim.distance_m, sim.time_s) == (0, 0.0, 0.0)
    assert (sim.state.x, sim.state.y) == (0.0, 0.0)


def test_non_finite_command_is_rejected_and_stops_the_truck():
    sim = Simulator(_world_with())
    assert sim.apply_controls(1.0, 0.0)
    sim.step(1.0)
    assert sim.state.v > 0.5
    assert not sim.apply_controls(math.nan, 0.0)
    assert sim.command == (0.0, 0.0)
    sim.step(1.0)
    assert abs(sim.state.v) < 0.01  # the drive lag (0.15 s) has decayed to < 1 %
    with pytest.raises(ValueError, match='dt'):
        sim.step(-0.1)


def test_step_carries_remainders_in_whole_physics_steps():
    sim = Simulator(_world_with(), physics_dt=0.005)
    for _ in range(30):
        sim.step(1.0 / 30.0)
    assert sim.time_s == pytest.approx(1.0, abs=0.005)
    sim.step(0.002)
    sim.step(0.002)
    assert sim.time_s == pytest.approx(1.0, abs=0.005)
    sim.step(0.001)  # the three remainders add up to one physics step
    assert round(sim.time_s / 0.005) == round(1.005 / 0.005)
    with pytest.raises(ValueError, match='time_s'):
        sim.step_to(math.nan)


def _drive_expert(world, noise=None, rate_hz=15.0, limit_s=80.0):
    sim = Simulator(world)
    expert = ExpertDriver(world, noise=noise)
    commands = []
    while sim.time_s < limit_s and not expert.reached_goal(sim.state):
        command = expert.command(sim.state)
        commands.append(command)
        sim.apply_controls(command.applied_v, command.applied_w)
        sim.step(1.0 / rate_hz)
    return sim, expert, commands


@pytest.mark.parametrize('seed', [0, 3, 11])
def test_expert_reaches_the_goal_without_collision(seed):
    world = generate_world(seed)
    sim, expert, _ = _drive_expert(world)
    assert expert.reached_goal(sim.state), (sim.state, world.goal)
    assert sim.collisions == 0
    straight = math.dist((world.start.x, world.start.y), world.goal)
    assert straight - 1.0 < sim.distance_m < 1.6 * straight


def test_expert_with_noise_drives_noisy_but_labels_clean_commands():
    world = generate_world(4)
    sim, expert, commands = _drive_expert(world, noise=NoiseConfig(seed=2))
    assert expert.reached_goal(sim.state) and sim.collisions == 0
    dw = np.array([c.applied_w - c.w for c in commands])
    assert np.abs(dw).max() <= NoiseConfig().yaw_rate_max_rps + 1e-9
    assert np.abs(dw).mean() > 0.05  # the noise is really applied
    labels = np.array([(c.v, c.w, c.curvature) for c in commands])
    moving = labels[:, 0] > 0
    assert np.allclose(labels[moving, 1], labels[moving, 0] * labels[moving, 2])  # w = v * curvature
    assert expert.command(sim.state).applied_v == 0.0  # stops at the goal


def test_expert_rejects_a_route_clearance_the_truck_does_not_fit():
    world = generate_world(0, WorldConfig(route_clearance_m=0.2, grid_resolution_m=0.1))
    with pytest.raises(ValueError, match='route_clearance_m'):
        ExpertDriver(world)
    with pytest.raises(ValueError, match='cruise_speed'):
        ExpertDriver(generate_world(0), cruise_speed=5.0)
    with pytest.raises(ValueError, match='lookahead_min_m'):
        ExpertConfig(lookahead_min_m=0.0)


class _Wall:
    """An injected wall clock."""

    def __init__(self) -> None:
        self.t = 100.0


def test_real_time_pacing_frames_and_catch_up_limit():
    sim = Simulator(_world_with())
    wall = _Wall()
    driver = RealTimeDriver(sim, PacingConfig(camera_rate_hz=10.0, real_time_factor=2.0), wall.t)
    frame_times = []
    for _ in range(100):  # 1 s of wall time in 10 ms updates
        wall.t += 0.01
        if driver.advance(wall.t):
            frame_times.append(sim.time_s)
    assert sim.time_s == pytest.approx(2.0, abs=0.011)  # real_time_factor 2
    assert np.allclose(np.diff(frame_times), 0.1, atol=0.0051)  # on the 10 Hz sim-time grid
    assert driver.frames_skipped == 0
    wall.t += 3.0  # a stall: catch up at most max_catch_up_s per update, and skip missed frames
    driver.advance(wall.t)
    assert sim.time_s - 2.0 <= 0.5 + 1e-9
    assert driver.frames_skipped > 0


def test_command_timeout_stops_the_truck_at_the_deadline():
    sim = Simulator(_world_with())
    wall = _Wall()
    driver = RealTimeDriver(sim, PacingConfig(cmd_timeout_s=0.5), wall.t)
    assert driver.stopped_by_timeout  # no command yet
    assert driver.on_command(1.0, 0.0)
    for _ in range(100):  # 1 s, but the command is only good for 0.5 s
        wall.t += 0.01
        driver.advance(wall.t)
    assert driver.timeouts == 1 and driver.stopped_by_timeout
    assert sim.command == (0.0, 0.0)
    assert abs(sim.state.v) < 0.05
    # Within 0.5 s the truck reached only ~0.35 m: the drive was cut exactly at the deadline.
    assert 0.2 < sim.state.x < 0.45
    assert not driver.on_command(math.inf, 0.0)
    assert sim.command == (0.0, 0.0)


def test_command_timeout_holds_under_irregular_updates_and_stalls():
    """Random update intervals (callbacks delayed by rendering, stalls) never let a command outlive its deadline."""
    world = _world_with()
    for trial in range(20):
        rng = np.random.default_rng(trial)
        sim = Simulator(world)
        wall = _Wall()
        driver = RealTimeDriver(sim, PacingConfig(camera_rate_hz=float(rng.choice([10, 15, 30]))), wall.t)
        commands_until = wall.t + rng.uniform(0.5, 2.0)
        while wall.t < commands_until + 1.5:
            wall.t += float(rng.choice([0.001, 0.005, 0.02, 0.02, 0.037, 0.06, 0.3, 0.7]))
            if wall.t < commands_until and rng.random() < 0.5:
                driver.on_command(1.0, 0.0)
            driver.advance(wall.t)
            last = driver._last_command_s
            if last is not None and sim.time_s > last + driver.config.cmd_timeout_s + sim.physics_dt:
                assert sim.command == (0.0, 0.0), (trial, sim.time_s, last)
        assert driver.stopped_by_timeout


def test_step_to_is_absolute_and_never_goes_back():
    sim = Simulator(_world_with())
    sim.step(0.0123)
    sim.step_to(0.05)
    assert sim.time_s == pytest.approx(0.05)
    sim.step_to(0.01)
    assert sim.time_s == pytest.approx(0.05)
    sim.step(0.0049)  # 0.0549: not yet a whole step further
    assert sim.time_s == pytest.approx(0.05)
