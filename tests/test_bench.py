"""`dave bench sim`: a tiny real run (few frames) writes every contract key as a positive number."""
import argparse
import json
import math

import pytest

from dave_cli.commands import bench as bench_command
from dave_sim.bench import SimBenchConfig

REQUIRED = ('stereo_pairs_per_s_320x240', 'stereo_pairs_per_s_320x240_2workers', 'stereo_pairs_per_s_640x480',
            'realtime_factor')


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='dave bench')
    bench_command.add_arguments(parser)
    return parser


def test_tiny_sim_bench_writes_flat_positive_figures(tmp_path, capsys):
    path = tmp_path / 'bench' / 'sim.json'
    args = _parser().parse_args(['sim', '--frames', '2', '--repeats', '2', '--warmup', '1',
                                 '--physics-seconds', '0.5', '--expert-worlds', '2', '--json', str(path)])
    assert bench_command.run(args) == 0
    figures = json.loads(path.read_text())
    for key in REQUIRED:
        value = figures[key]
        assert isinstance(value, (int, float)) and not isinstance(value, bool), key
        assert math.isfinite(value) and value > 0, key
    assert all(isinstance(v, (int, float, str)) for v in figures.values())  # flat
    assert figures['frames_per_repeat'] == 2 and figures['repeats'] == 2
    assert figures['physics_dt_s'] == pytest.approx(0.005)
    assert figures['lp_num_threads'] == '1'
    assert figures['render_ms_stereo_with_gt_320x240'] > 0 and figures['render_ms_stereo_rgb_320x240'] > 0
    assert figures['expert_worlds'] == 2
    assert 0.0 <= figures['expert_collision_free_pct'] <= 100.0
    assert figures['expert_goal_reached_pct'] in (0.0, 50.0, 100.0)
    assert 'stereo_pairs_per_s_320x240' in capsys.readouterr().out


def test_registry_holds_sim_and_rejects_unknown_benchmarks():
    assert 'sim' in bench_command.BENCHMARKS
    with pytest.raises(SystemExit):
        _parser().parse_args(['warp-drive'])


@pytest.mark.parametrize('option, needle', [(['--frames', '0'], 'frames'), (['--repeats', '-1'], 'repeats'),
                                            (['--physics-seconds', 'nan'], 'physics_s')])
def test_bad_sizes_give_one_error_line(option, needle, capsys):
    assert bench_command.run(_parser().parse_args(['sim', *option])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('dave bench sim: error:') and needle in err[0]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match='warmup_frames'):
        SimBenchConfig(warmup_frames=-1)
