"""In-process model drives (dave_sim.model_drive, `dave eval --offline`): sim-time loop, stack defaults."""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

os.environ.setdefault('MUJOCO_GL', 'egl')

from dave_core.autopilot import Pace, SteeringPilot  # noqa: E402
from dave_core.command import Command, CommandLimits  # noqa: E402
from dave_sim.model_drive import ModelDriveConfig, drive_model  # noqa: E402
from dave_sim.world import Obstacle, Pose2D, World, WorldConfig, generate_world  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class ConstantPolicy:
    """Always proposes the same command (a policy that ignores the images)."""

    def __init__(self, command: Command) -> None:
        self.command = command
        self.frames = 0

    def propose(self, left, right) -> Command:
        assert left.shape == right.shape == (240, 320, 3)
        self.frames += 1
        return self.command


def _box_ahead_world() -> World:
    box = Obstacle('box', 2.0, 0.0, 0.3, 0.5, (0.5, 0.5, 0.5, 1.0))
    return World(seed=0, config=WorldConfig(walls=True, n_obstacles=0), obstacles=(box,),
                 start=Pose2D(0.0, 0.0, 0.0), goal=(8.0, 0.0), ground_rgb=((0.3, 0.35, 0.2), (0.4, 0.35, 0.27)),
                 sky_rgb=(0.5, 0.7, 0.9), light_dir=(0.3, 0.2, -0.9))


def test_defaults_are_the_stacks_launch_defaults():
    stack = yaml.safe_load((ROOT / 'launch/params/stack.yaml').read_text())
    steering = stack['/**/steering']['ros__parameters']
    limits = stack['/**/command']['ros__parameters']['limits']
    sim_launch = yaml.safe_load((ROOT / 'launch/sim.launch.yaml').read_text())['launch']
    camera_rate = next(item['arg']['default'] for item in sim_launch
                       if 'arg' in item and item['arg']['name'] == 'camera_rate_hz')
    config = ModelDriveConfig()
    assert config.cruise_speed_mps == steering['cruise_speed_mps']
    assert Pace(**steering['pace']) == Pace()  # dave eval --offline's pilot uses the defaults
    assert config.camera_rate_hz == float(camera_rate)
    assert config.limits == CommandLimits(**limits)


def test_driving_into_a_box_counts_the_collision_and_where_it_happened():
    policy = ConstantPolicy(Command(0.8, 0.0))
    metrics = drive_model(_box_ahead_world(), policy, ModelDriveConfig(duration_s=4.0))
    assert policy.frames == 60  # 4 s at 15 Hz, on sim time
    assert metrics['camera_rate_hz'] == metrics['command_rate_hz'] == 15.0
    assert metrics['elapsed_s'] == 4.0
    assert metrics['collisions'] == 1
    # Box face at 2.0 - 0.3 m; the chassis front is ~0.3 m ahead of the centre.
    assert 1.0 < metrics['distance_to_first_collision_m'] < 1.6
    assert metrics['distance_m'] < 1.7  # the box stopped the truck
    assert math.isnan(metrics['stack_latency_ms_p50'])


def test_the_governor_limits_apply_to_what_the_model_asks():
    # 5 rad/s asked; the simulator is sent the governor's command: within 2 rad/s, reached
    # at its 8 rad/s^2 yaw acceleration limit.
    sent = []
    drive_model(generate_world(1), ConstantPolicy(Command(0.0, 5.0)), ModelDriveConfig(duration_s=1.0),
                on_frame=lambda sim: sent.append(sim.command[1]))
    assert sent[0] == 0.0  # the governor starts from standstill
    assert sent[1] == pytest.approx(8.0 / 15.0, abs=0.02)  # a frame (whole 5 ms steps) of yaw acceleration
    assert max(sent) == pytest.approx(2.0)


def test_a_shipped_model_drive_is_deterministic():
    pilot = SteeringPilot.from_file(ROOT / 'models/steering.onnx')
    config = ModelDriveConfig(duration_s=3.0)
    first = drive_model(generate_world(40), pilot, config)
    second = drive_model(generate_world(40), pilot, config)
    assert first == pytest.approx(second, nan_ok=True)
    assert first['distance_m'] > 1.0  # it drove


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match='latency_s'):
        ModelDriveConfig(latency_s=0.1)  # longer than a 15 Hz frame
    with pytest.raises(ValueError, match='duration_s'):
        ModelDriveConfig(duration_s=0)


def test_dave_eval_offline_writes_the_report(tmp_path):
    out = tmp_path / 'cl.json'
    result = subprocess.run([sys.executable, '-m', 'dave_cli.cli', 'eval', '--offline', '--seeds', '40,41',
                             '--duration', '2', '--json', str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report['mode'] == 'offline' and report['worlds'] == 2
    assert report['distance_m'] == pytest.approx(report['seed40_distance_m'] + report['seed41_distance_m'], abs=1e-3)
    assert 'seed41_distance_to_first_collision_m' in report
    assert out.with_suffix('.png').stat().st_size > 0


def test_dave_eval_offline_names_a_missing_model(tmp_path):
    result = subprocess.run([sys.executable, '-m', 'dave_cli.cli', 'eval', '--offline', '--seeds', '40',
                             '--duration', '2', '--model-dir', str(tmp_path), '--json', str(tmp_path / 'x.json')],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert 'steering.onnx' in result.stderr and 'Traceback' not in result.stderr
    assert not (tmp_path / 'x.json').exists()


@pytest.mark.parametrize('flags, culprit', [
    (['--json', 'REPORT.png'], '--json .*REPORT.png: must name a .json file'),
    (['--json', 'DIR.json'], '--json .*DIR.json: must name a .json file'),
    (['--duration', 'inf'], '--duration must be a finite number > 0, got inf'),
])
def test_dave_eval_refuses_bad_flags_before_driving(tmp_path, capsys, flags, culprit):
    from dave_cli.cli import main

    (tmp_path / 'DIR.json').mkdir()
    args = ['eval', '--offline', '--seeds', '40', '--duration', '2', '--json', str(tmp_path / 'r.json')]
    for flag, value in zip(flags[::2], flags[1::2]):
        args[args.index(flag) + 1] = str(tmp_path / value) if flag == '--json' else value
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(culprit, err[0]), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['DIR.json']


def test_a_file_system_error_is_one_line_naming_the_file(tmp_path, capsys):
    from dave_cli.cli import main

    (tmp_path / 'afile').write_text('not a directory')
    report = tmp_path / 'afile' / 'r.json'
    assert main(['eval', '--offline', '--seeds', '40', '--duration', '1', '--json', str(report)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f'dave eval: error: {tmp_path / "afile"}: File exists'], err
