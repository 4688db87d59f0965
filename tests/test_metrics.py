"""Closed-loop metric definitions and the atomic JSON writer."""
import json
import math

import pytest

from dave_core.metrics import ClosedLoopRecorder, autonomy_pct, write_json_atomic


def test_metrics_follow_the_contract_definitions():
    rec = ClosedLoopRecorder()
    rec.start(10.0)
    for x in range(11):
        rec.add_position(float(x), 0.0)
    rec.collisions = 2
    rec.camera_frames, rec.commands = 150, 300
    for v in range(1, 101):
        rec.add_latency_ms(float(v))
    rec.stop(20.0)
    m = rec.metrics()
    assert m['distance_m'] == pytest.approx(10.0)
    assert m['mean_distance_between_collisions_m'] == pytest.approx(5.0)
    assert m['camera_rate_hz'] == pytest.approx(15.0)
    assert m['command_rate_hz'] == pytest.approx(30.0)
    assert m['stack_latency_ms_p50'] == pytest.approx(50.5)
    assert m['stack_latency_ms_p95'] == pytest.approx(95.05)
    assert m['autonomy_pct'] == pytest.approx(100.0)


def test_no_collisions_divides_by_one():
    rec = ClosedLoopRecorder()
    rec.add_position(0.0, 0.0)
    rec.add_position(3.0, 4.0)
    assert rec.metrics()['mean_distance_between_collisions_m'] == pytest.approx(5.0)


def test_autonomy_charges_six_seconds_per_intervention():
    assert autonomy_pct(1, 60.0) == pytest.approx(90.0)
    assert autonomy_pct(20, 60.0) == 0.0


def test_json_is_flat_atomic_and_nan_free(tmp_path):
    path = write_json_atomic(tmp_path / 'sub' / 'm.json', {'a': 1, 'b': math.nan, 'c': 'x'})
    assert json.loads(path.read_text()) == {'a': 1, 'b': None, 'c': 'x'}
    assert [p.name for p in path.parent.iterdir()] == ['m.json']  # no temp file left
    with pytest.raises(TypeError, match="'d'"):
        write_json_atomic(tmp_path / 'n.json', {'d': [1, 2]})
    assert not (tmp_path / 'n.json').exists()


def test_summary_over_runs_adds_distances_and_collisions():
    from dave_core.metrics import summarize_runs
    run = {'distance_m': 10.0, 'collisions': 1, 'mean_distance_between_collisions_m': 10.0, 'autonomy_pct': 100.0,
           'camera_rate_hz': 15.0, 'command_rate_hz': 20.0, 'stack_latency_ms_p50': 40.0,
           'stack_latency_ms_p95': 90.0, 'elapsed_s': 60.0}
    other = {**run, 'distance_m': 30.0, 'collisions': 0, 'autonomy_pct': 50.0, 'elapsed_s': 20.0,
             'stack_latency_ms_p50': 60.0}
    summary = summarize_runs({0: run, 1: other})
    assert summary['worlds'] == 2 and summary['distance_m'] == 40.0 and summary['collisions'] == 1
    assert summary['mean_distance_between_collisions_m'] == 40.0
    assert summary['autonomy_pct'] == pytest.approx((100 * 60 + 50 * 20) / 80, abs=0.01)
    assert summary['stack_latency_ms_p50'] == 50.0 and summary['elapsed_s'] == 80.0
    with pytest.raises(ValueError):
        summarize_runs({})
