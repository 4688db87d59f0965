"""`dave collect`: episode round trip, labels vs applied commands, manifest, resume, interruption, bad input.

Episodes are tiny (160x120, well under a second of sim time) so the file stays fast; the
collect() tests run real spawned worker processes.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from dave_core import recording as rec
from dave_cli.commands import collect as collect_command
from dave_sim.camera import StereoCameraConfig
from dave_sim.collect import (EPISODE_KEY, EXPERTS, MANIFEST, SETTINGS_KEY, CollectConfig, CollectError,
                              EpisodeInterrupted, collect, episode_path, frames_per_episode, parse_seeds,
                              record_episode)
from dave_sim.expert import NoiseConfig
from dave_sim.labels import TerrainClass

SMALL = StereoCameraConfig(width=160, height=120)
EPOCH_NS = 1_700_000_000_000_000_000


def _config(**changes) -> CollectConfig:
    return CollectConfig(**{'duration_s': 0.6, 'camera': SMALL, **changes})


def _messages(path) -> dict[str, list]:
    by_topic: dict[str, list] = {}
    for topic, log_ns, msg in rec.read_messages(path):
        by_topic.setdefault(topic, []).append((log_ns, msg))
    return by_topic


@pytest.fixture(scope='module')
def episode(tmp_path_factory):
    out = tmp_path_factory.mktemp('collect')
    result = record_episode(out, 4, _config(), epoch_ns=EPOCH_NS)
    return out, result, _messages(out / result.bag)


def test_episode_records_every_topic_at_its_rate(episode):
    out, result, by_topic = episode
    assert result.frames == frames_per_episode(_config()) == 9  # 0.6 s at 15 Hz
    assert result.bag == 'episodes/seed_000004' and (out / result.bag).is_dir()
    assert result.distance_m > 0.1 and not result.reached_goal
    for topic in (rec.LEFT_IMAGE, rec.RIGHT_IMAGE, rec.LEFT_INFO, rec.RIGHT_INFO, rec.GT_LABELS, rec.GT_DEPTH,
                  rec.EXPERT_CMD_VEL, rec.CMD_VEL):
        assert len(by_topic[topic]) == result.frames, topic
    assert len(by_topic[rec.ODOM]) == 30  # 0.6 s at 50 Hz
    assert [m.data for _, m in by_topic[rec.COLLISIONS]] == [0]
    info = rec.read_info(out / result.bag)
    assert info.format_version == rec.FORMAT_VERSION and info.start_ns == EPOCH_NS


def test_episode_records_its_expert_and_settings(episode, tmp_path):
    out, result, _ = episode
    # Default: the reactive expert (no plan, so no re-plans); its turn in place is labelled +-k_max.
    assert result.expert == 'reactive' and result.replans == 0
    assert result.turn_in_place_curvature_per_m == CollectConfig().reactive.max_curvature_per_m == 1.5
    custom = rec.read_info(out / result.bag).custom_data
    assert json.loads(custom[EPISODE_KEY])['expert'] == 'reactive'
    settings = json.loads(custom[SETTINGS_KEY])  # the bag describes itself without the manifest
    assert settings == json.loads(json.dumps(_config().settings()))
    assert settings['reactive']['cruise_speed_mps'] == settings['cruise_speed_mps'] == 0.8

    planner = record_episode(tmp_path, 4, _config(expert='planner', duration_s=0.2), epoch_ns=EPOCH_NS)
    assert planner.expert == 'planner' and planner.turn_in_place_curvature_per_m is None
    assert isinstance(planner.replans, int) and planner.frames == 3
    assert json.loads(rec.read_info(tmp_path / planner.bag).custom_data[SETTINGS_KEY])['expert'] == 'planner'


def test_expert_registry_refuses_unknown_names():
    assert set(EXPERTS) == {'reactive', 'planner'}
    with pytest.raises(CollectError, match="expert 'astar' is unknown \\(known: planner, reactive\\)"):
        CollectConfig(expert='astar')


def test_pair_gt_and_label_share_one_stamp_per_frame(episode):
    _, _, by_topic = episode
    for i in range(len(by_topic[rec.LEFT_IMAGE])):
        log_ns, left = by_topic[rec.LEFT_IMAGE][i]
        stamp = rec.stamp_to_ns(left.header.stamp)
        assert log_ns == stamp
        for topic in (rec.RIGHT_IMAGE, rec.LEFT_INFO, rec.RIGHT_INFO, rec.GT_LABELS, rec.GT_DEPTH, rec.EXPERT_CMD_VEL):
            assert rec.stamp_to_ns(by_topic[topic][i][1].header.stamp) == stamp, topic
        assert by_topic[rec.CMD_VEL][i][0] == stamp
    stamps = np.array([rec.stamp_to_ns(m.header.stamp) for _, m in by_topic[rec.LEFT_IMAGE]])
    # 15 Hz on the 5 ms physics grid: every gap is 65 or 70 ms.
    assert set(np.diff(stamps) // 1_000_000) <= {65, 70}


def test_ground_truth_matches_the_left_image(episode):
    _, _, by_topic = episode
    left = rec.image_to_numpy(by_topic[rec.LEFT_IMAGE][0][1])
    right = rec.image_to_numpy(by_topic[rec.RIGHT_IMAGE][0][1])
    labels = rec.image_to_numpy(by_topic[rec.GT_LABELS][0][1])
    depth = rec.image_to_numpy(by_topic[rec.GT_DEPTH][0][1])
    assert left.shape == right.shape == (120, 160, 3) and labels.shape == depth.shape == (120, 160)
    assert not np.array_equal(left, right)  # two viewpoints
    assert set(np.unique(labels)) <= {int(c) for c in TerrainClass}
    ground = labels == TerrainClass.TRAVERSABLE
    assert ground[-1].mean() > 0.9  # the bottom row sees the ground in front of the truck
    assert np.all(np.isfinite(depth[ground])) and np.all(depth[ground] > 0)
    assert np.all(np.isinf(depth[labels == TerrainClass.UNKNOWN]) | (depth[labels == TerrainClass.UNKNOWN] > 0))
    info = by_topic[rec.RIGHT_INFO][0][1]
    assert info.p[3] == pytest.approx(-SMALL.fx * SMALL.baseline_m)


def test_label_is_the_clean_command_and_noise_stays_bounded(episode, tmp_path):
    _, _, by_topic = episode
    noise = NoiseConfig()
    label_w = np.array([m.twist.angular.z for _, m in by_topic[rec.EXPERT_CMD_VEL]])
    applied_w = np.array([m.angular.z for _, m in by_topic[rec.CMD_VEL]])
    gap = np.abs(applied_w - label_w)
    assert gap.max() <= noise.yaw_rate_max_rps + 1e-9
    assert gap.max() > 0.01  # the driven command really was perturbed

    # Without noise the same world gives applied == label, and the label is what the noisy run
    # labelled for the first frame (same state, same clean expert).
    clean = record_episode(tmp_path, 4, _config(noise=None, duration_s=0.2), epoch_ns=EPOCH_NS)
    clean_msgs = _messages(tmp_path / clean.bag)
    clean_label = [m.twist.angular.z for _, m in clean_msgs[rec.EXPERT_CMD_VEL]]
    assert clean_label == [m.angular.z for _, m in clean_msgs[rec.CMD_VEL]]
    assert clean_label[0] == pytest.approx(label_w[0])


def test_stop_request_discards_the_episode(tmp_path):
    frames = []
    with pytest.raises(EpisodeInterrupted):
        record_episode(tmp_path, 2, _config(), on_frame=lambda: frames.append(1), should_stop=lambda: len(frames) >= 2)
    assert len(frames) == 2
    assert os.listdir(tmp_path / 'episodes') == []  # neither a bag nor a partial one


def test_collect_writes_bags_and_manifest_then_resumes(tmp_path):
    out = tmp_path / 'data'
    config = _config(duration_s=0.3)
    summary = collect(out, [0, 1], config, workers=2, worker_env={'LP_NUM_THREADS': '1'}, progress=False)
    assert sorted(r.seed for r in summary.recorded) == [0, 1] and not summary.failed
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest['format'] == 'dave-collect' and manifest['recording_format_version'] == rec.FORMAT_VERSION
    assert manifest['seeds'] == [0, 1]
    assert manifest['settings']['duration_s'] == 0.3 and manifest['settings']['camera']['width'] == 160
    assert manifest['settings']['noise']['yaw_rate_max_rps'] == NoiseConfig().yaw_rate_max_rps
    assert [e['seed'] for e in manifest['episodes']] == [0, 1]
    for entry in manifest['episodes']:
        assert entry['status'] == 'complete' and entry['frames'] == 5
        with Reader(out / entry['bag']) as reader:  # every finished bag opens
            assert sum(c.msgcount for c in reader.connections if c.topic == rec.LEFT_IMAGE) == 5
    assert manifest['totals']['frames'] == 10

    # Simulate an interrupted run: a partial bag on disk and a finished bag whose manifest
    # update was lost. A restart removes the partial, recovers the entry, records only seed 2.
    partial = out / 'episodes' / '.seed_000002.partial-999-deadbeef' / 'seed_000002'
    partial.mkdir(parents=True)
    (partial / 'seed_000002.mcap').write_bytes(b'\x89MCAP0\r\ntruncated')
    manifest['episodes'] = [e for e in manifest['episodes'] if e['seed'] != 1]
    (out / MANIFEST).write_text(json.dumps(manifest))
    kept = (episode_path(out, 0) / 'metadata.yaml').stat().st_mtime_ns

    summary = collect(out, [0, 1, 2], config, workers=1, worker_env={'LP_NUM_THREADS': '1'}, progress=False)
    assert summary.skipped == [0, 1] and [r.seed for r in summary.recorded] == [2]
    assert sorted(os.listdir(out / 'episodes')) == ['seed_000000', 'seed_000001', 'seed_000002']
    assert (episode_path(out, 0) / 'metadata.yaml').stat().st_mtime_ns == kept
    manifest = json.loads((out / MANIFEST).read_text())
    assert [e['seed'] for e in manifest['episodes']] == [0, 1, 2]
    assert manifest['episodes'][1]['frames'] == 5 and manifest['seeds'] == [0, 1, 2]

    with pytest.raises(CollectError, match=r'settings\.duration_s: 0\.3 there, 0\.5 now'):
        collect(out, [3], _config(duration_s=0.5), workers=1, progress=False)


_CLI = ('import argparse, sys\n'
        'from dave_cli.commands import collect\n'
        'parser = argparse.ArgumentParser()\n'
        'collect.add_arguments(parser)\n'
        'sys.exit(collect.run(parser.parse_args(sys.argv[1:])))\n')


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry))
    return found


def test_sigterm_keeps_finished_work_and_leaves_no_partial_bag_or_process(tmp_path):
    out = tmp_path / 'data'
    proc = subprocess.Popen([sys.executable, '-c', _CLI, '--seeds', '0-1', '--duration', '30', '--out', str(out),
                             '--width', '64', '--height', '48', '--workers', '2', '--quiet'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not list((out / 'episodes').glob('.seed_*')) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert list((out / 'episodes').glob('.seed_*')), 'no episode started within 30 s'
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and 'interrupted' in err
    assert os.listdir(out / 'episodes') == []  # the episodes in flight are gone, nothing partial
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest['seeds'] == [0, 1] and manifest['episodes'] == []
    deadline = time.monotonic() + 10
    while any(os.path.exists(f'/proc/{pid}') for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(os.path.exists(f'/proc/{pid}') for pid in workers)


@pytest.mark.parametrize('text, seeds', [('3', [3]), ('0-4', [0, 1, 2, 3, 4]), ('7-8,2, 8', [2, 7, 8])])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


def _run_cli(argv, capsys):
    parser = argparse.ArgumentParser(prog='dave collect')
    collect_command.add_arguments(parser)
    code = collect_command.run(parser.parse_args(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize('seeds, needle', [('a-b', "cannot read 'a-b'"), ('5-2', "'5-2' must be"),
                                           ('1,,2', "cannot read ''"), ('-3', "cannot read '-3'")])
def test_bad_seeds_give_one_error_line(seeds, needle, tmp_path, capsys):
    code, err = _run_cli(['--seeds', seeds, '--duration', '1', '--out', str(tmp_path)], capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith('dave collect: error: --seeds') and needle in err[0]


@pytest.mark.parametrize('extra, needle', [(['--duration', '0'], '--duration must be > 0'),
                                           (['--duration', 'nan'], '--duration must be > 0'),
                                           (['--duration', '1', '--noise', 'loud=1'], "'loud=1' is not KEY=VALUE"),
                                           (['--duration', '1', '--workers', '0'], '--workers must be >= 1'),
                                           (['--duration', '1', '--expert', 'astar'], "--expert 'astar' is unknown"),
                                           (['--duration', '1', '--cruise-speed', '5'], '--cruise-speed must be in')])
def test_bad_options_give_one_error_line(extra, needle, tmp_path, capsys):
    code, err = _run_cli(['--seeds', '0', '--out', str(tmp_path), *extra], capsys)
    assert code == 2 and len(err) == 1 and needle in err[0]


def test_unwritable_output_gives_one_error_line(tmp_path, capsys):
    blocker = tmp_path / 'file'
    blocker.write_text('not a directory')
    code, err = _run_cli(['--seeds', '0', '--duration', '1', '--out', str(blocker / 'data')], capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f'dave collect: error: --out {blocker / "data"}: not a writable directory')


def test_noise_option_overrides_fields():
    assert collect_command.parse_noise('off') is None
    assert collect_command.parse_noise('yaw_rate_std_rps=0.1, seed=4') == NoiseConfig(yaw_rate_std_rps=0.1, seed=4)
