"""`dave data`: bags -> steering shards -> training, info tables, contact sheets, and the errors.

The end-to-end test runs the real chain through the CLI on a tiny collection (3 worlds, 1 s,
160x120). The label rule, stamp pairing and every error are checked on small synthetic bags
written with the recording format itself, so they need no simulator.
"""
import json
import math
import shutil

import numpy as np
import pytest
import torch

from dave_cli.cli import main as dave_main
from dave_core import recording as rec
from dave_models.bag_dataset import EPISODE_KEY, BagDataError, build_steering, curvature_labels, read_steering_bag
from dave_models.contact_sheet import arc_pixels, evenly_spaced
from dave_models.datasets import load_manifest, read_shard

SEEDS = [0, 1, 2]
FRAMES = 15  # 1 s at 15 Hz
EPOCH_NS = 1_700_000_000_000_000_000


def _dave(argv, capsys):
    code = dave_main(argv)
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', path
    return int.from_bytes(data[16:20], 'big'), int.from_bytes(data[20:24], 'big')


@pytest.fixture(scope='module')
def collection(tmp_path_factory):
    pytest.importorskip('mujoco')
    out = tmp_path_factory.mktemp('collect')
    code = dave_main(['collect', '--seeds', '0-2', '--duration', '1', '--out', str(out), '--width', '160',
                      '--height', '120', '--workers', '2', '--quiet'])
    assert code == 0
    return out


# ---------------------------------------------------------------- the real chain, through the CLI

def test_collect_build_train_chain(collection, tmp_path, capsys):
    manifest = json.loads((collection / 'manifest.json').read_text())
    assert manifest['settings']['expert'] == 'reactive'
    assert [e['expert'] for e in manifest['episodes']] == ['reactive'] * 3
    assert all(e['turn_in_place_curvature_per_m'] == 1.5 for e in manifest['episodes'])

    shards = tmp_path / 'shards'
    code, out, err = _dave(['data', 'build', 'steering', '--data', str(collection), '--out', str(shards),
                            '--quiet'], capsys)
    assert code == 0 and err == [], err
    assert f'{3 * FRAMES} samples of 3 worlds (160x120) from 3 bags' in out
    data = load_manifest(shards)
    assert data.world_seeds == tuple(SEEDS) and [s.world_seeds for s in data.shards] == [(0,), (1,), (2,)]
    assert data.source['generator'] == 'dave_models.bag_dataset'
    assert data.source['camera']['width'] == 160 and data.source['camera']['hfov_deg'] == 85.0
    assert [b['bag'] for b in data.source['bags']] == [f'episodes/seed_{s:06d}' for s in SEEDS]
    assert '--frame-stride 1' in data.source['command']

    # Every sample is the pair and label of one stamp in its bag.
    for shard, seed in zip(data.shards, SEEDS):
        samples = read_shard(data, shard)
        by_topic = {}
        for topic, _, msg in rec.read_messages(collection / 'episodes' / f'seed_{seed:06d}',
                                               (rec.LEFT_IMAGE, rec.RIGHT_IMAGE, rec.EXPERT_CMD_VEL)):
            by_topic.setdefault(topic, []).append(msg)
        v = np.array([m.twist.linear.x for m in by_topic[rec.EXPERT_CMD_VEL]])
        w = np.array([m.twist.angular.z for m in by_topic[rec.EXPERT_CMD_VEL]])
        assert len(samples) == FRAMES and np.all(v > 0.1)  # driving: curvature is w / v
        np.testing.assert_allclose(samples.curvature, w / v, atol=1e-6)
        np.testing.assert_allclose(samples.speed, v, atol=1e-6)
        for i in (0, FRAMES - 1):
            np.testing.assert_array_equal(samples.left[i], rec.image_to_numpy(by_topic[rec.LEFT_IMAGE][i]))
            np.testing.assert_array_equal(samples.right[i], rec.image_to_numpy(by_topic[rec.RIGHT_IMAGE][i]))
        assert samples.obstacle_ahead is not None and set(np.unique(samples.obstacle_ahead)) <= {-1, 0, 1}

    train = tmp_path / 'train'
    code = dave_main(['train', 'steering', '--data', str(shards), '--out', str(train), '--dry-run',
                      '--batch-size', '8', '--threads', '1', '--val-seeds', '2'])
    assert code == 0
    checkpoint = torch.load(train / 'last.pt', weights_only=True)
    assert checkpoint['data_id'] == data.data_id and checkpoint['train_seeds'] == [0, 1]
    assert checkpoint['camera']['width'] == 160 and np.isfinite(checkpoint['metrics']['val_mae'])
    assert 'val_obstacle_ahead_fraction' in checkpoint['metrics']  # obstacle_ahead reached training


def test_frame_stride_keeps_every_nth_frame(collection, tmp_path, capsys):
    code, _, _ = _dave(['data', 'build', 'steering', '--data', str(collection / 'episodes' / 'seed_000001'),
                        '--out', str(tmp_path / 's'), '--frame-stride', '4', '--quiet'], capsys)
    assert code == 0
    data = load_manifest(tmp_path / 's')
    assert data.num_samples == math.ceil(FRAMES / 4) and data.world_seeds == (1,)
    every = read_steering_bag(collection / 'episodes' / 'seed_000001').samples
    np.testing.assert_array_equal(read_shard(data, data.shards[0]).curvature, every.curvature[::4])


def test_info_table_and_json(collection, tmp_path, capsys):
    code, out, err = _dave(['data', 'info', str(collection), '--json'], capsys)
    assert code == 0 and err == []
    info = json.loads(out)
    assert [b['seed'] for b in info['bags']] == SEEDS
    for bag in info['bags']:
        assert bag['expert'] == 'reactive' and bag['frames'] == FRAMES
        assert (bag['image_width'], bag['image_height']) == (160, 120)
        assert bag['messages'][rec.ODOM] == 50 and bag['distance_m'] > 0.1 and bag['reached_goal'] is False
        assert bag['duration_s'] == pytest.approx(0.98)  # first to last message: /odom at 50 Hz
    assert info['totals']['frames'] == 3 * FRAMES and info['totals']['worlds'] == 3

    code, out, _ = _dave(['data', 'info', str(collection)], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ['bag', 'seed', 'expert']
    assert lines[1].split()[:5] == ['seed_000000', '0', 'reactive', '1.0', '15']
    assert lines[5].startswith('total') and '3 worlds' in lines[5]


def test_show_draws_bags_and_shards(collection, tmp_path, capsys):
    bag_png = tmp_path / 'bag.png'
    code, out, err = _dave(['data', 'show', str(collection / 'episodes' / 'seed_000000'), '--out', str(bag_png),
                            '--frames', '6'], capsys)
    assert code == 0 and err == [] and str(bag_png) in out
    width, height = _png_size(bag_png)
    assert width > 600 and height > width  # frames on top, two plots below

    shards = tmp_path / 'shards'
    build_steering(collection, shards, progress=False)
    code, _, _ = _dave(['data', 'show', str(shards), '--out', str(tmp_path / 'shards.png')], capsys)
    assert code == 0 and _png_size(tmp_path / 'shards.png')[0] > 600
    code, out, _ = _dave(['data', 'info', str(shards)], capsys)
    assert code == 0 and load_manifest(shards).data_id in out and 'shard_00002.npz' in out

    code, _, err = _dave(['data', 'show', str(collection), '--out', str(tmp_path / 'x.png')], capsys)
    assert code == 2 and len(err) == 1 and 'is a dave collect directory; show one of its bags' in err[0]
    assert not (tmp_path / 'x.png').exists()


def test_build_traversability_fills_the_training_cache(collection, tmp_path, capsys):
    from dave_models.traversability_data import build_dataset

    cache = tmp_path / 'cache'
    code, out, err = _dave(['data', 'build', 'traversability', '--data', str(collection), '--out', str(cache)],
                           capsys)
    assert code == 0 and err == [] and f'{3 * FRAMES} frames of 3 worlds cached' in out
    files = sorted(cache.glob('*.npz'))
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert len(files) == 3 and build_dataset(collection, cache).world_seeds == SEEDS  # what training calls
    assert [f.stat().st_mtime_ns for f in files] == mtimes  # reused, not rebuilt


def test_bag_labels_equal_the_in_process_generator(tmp_path):
    """Same world, clean reactive expert, same rate: bag path and sim_dataset give the same samples."""
    pytest.importorskip('mujoco')
    from dave_models.sim_dataset import SimDatasetConfig, drive_world
    from dave_sim.collect import CollectConfig, record_episode

    record_episode(tmp_path, 5, CollectConfig(duration_s=0.6, noise=None), epoch_ns=EPOCH_NS)
    bag = read_steering_bag(tmp_path / 'episodes' / 'seed_000005').samples
    reference, _ = drive_world(5, SimDatasetConfig(frames_per_world=len(bag), camera_rate_hz=15.0,
                                                   dart_noise=False))
    assert len(bag) == 9
    np.testing.assert_array_equal(bag.curvature, reference.curvature)
    np.testing.assert_array_equal(bag.speed, reference.speed)
    np.testing.assert_array_equal(bag.obstacle_ahead, reference.obstacle_ahead)
    np.testing.assert_array_equal(bag.left, reference.left)


# ---------------------------------------------------------------- label rule and pairing (synthetic bags)

def test_curvature_rule():
    v = np.array([0.8, 0.5, 0.0, 0.0, 0.0])
    w = np.array([0.24, -0.75, 1.0, -1.0, 0.0])
    k, defined = curvature_labels(v, w, 1.5)
    np.testing.assert_allclose(k, [0.3, -1.5, 1.5, -1.5, 0.0])
    assert defined.all()
    k, defined = curvature_labels(v, w, None)  # planner: a turn in place has no recoverable label
    assert defined.tolist() == [True, True, False, False, True]
    np.testing.assert_allclose(k[defined], [0.3, -1.5, 0.0])


def _image(seed, width=8, height=6):
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


def write_bag(path, labels, *, record=None, right_size=None, label_lag_ns=0, unpaired_left=False):
    """A bag with one stereo pair per label (v, w); the label may be logged later (same stamp)."""
    topics = (rec.LEFT_IMAGE, rec.RIGHT_IMAGE, rec.EXPERT_CMD_VEL)
    custom = {EPISODE_KEY: json.dumps(record)} if record is not None else {}
    with rec.RecordingWriter(path, topics, custom_data=custom) as writer:
        for i, (v, w) in enumerate(labels):
            ns = EPOCH_NS + i * 100_000_000
            writer.write(rec.LEFT_IMAGE, rec.image_msg(_image(i), 'rgb8', ns, rec.LEFT_OPTICAL_FRAME), ns)
            right = _image(1000 + i, *(right_size or (8, 6)))
            writer.write(rec.RIGHT_IMAGE, rec.image_msg(right, 'rgb8', ns, rec.RIGHT_OPTICAL_FRAME), ns)
            writer.write(rec.EXPERT_CMD_VEL, rec.twist_stamped_msg(v, w, ns), ns + label_lag_ns)
            if unpaired_left and i == 0:  # an image between frames 0 and 1 whose pair and label never came
                odd = ns + 50_000_000
                writer.write(rec.LEFT_IMAGE, rec.image_msg(_image(99), 'rgb8', odd, rec.LEFT_OPTICAL_FRAME), odd)
    return path


def _record(seed, expert='reactive', turn=1.5):
    return {'seed': seed, 'expert': expert, 'turn_in_place_curvature_per_m': turn}


LABELS = [(0.8, 0.24), (0.0, 1.0), (0.0, -1.0), (0.0, 0.0)]


def test_pairs_by_stamp_and_labels_turns_in_place(tmp_path):
    # Labels logged 150 ms after their images (after the next pair) and a stray image without pair or
    # label after the first frame: pairing is by header stamp, not by arrival order.
    bag = write_bag(tmp_path / 'seed_000007', LABELS, record=_record(7), label_lag_ns=150_000_000,
                    unpaired_left=True)
    part = read_steering_bag(bag)
    np.testing.assert_allclose(part.samples.curvature, [0.3, 1.5, -1.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(part.samples.speed, [0.8, 0, 0, 0])
    for i in range(4):
        np.testing.assert_array_equal(part.samples.left[i], _image(i))
        np.testing.assert_array_equal(part.samples.right[i], _image(1000 + i))
    assert part.samples.world_seed.tolist() == [7] * 4
    assert part.stats['turn_in_place'] == 2 and part.stats['unpaired'] == 1
    assert part.stats['paired'] == 4
    strided = read_steering_bag(bag, frame_stride=3)  # the 1st and 4th complete instants
    np.testing.assert_allclose(strided.samples.curvature, [0.3, 0.0], atol=1e-6)
    assert strided.stats['paired'] == 4
    assert part.samples.obstacle_ahead is None  # no settings: the world cannot be rebuilt

    # No episode record (e.g. an older recorder): the world seed comes from the seed_N directory name.
    assert read_steering_bag(write_bag(tmp_path / 'seed_000042', LABELS[:1])).samples.world_seed.tolist() == [42]
    with pytest.raises(BagDataError, match='no world seed'):
        read_steering_bag(write_bag(tmp_path / 'drive', LABELS[:1]))

    planner = read_steering_bag(write_bag(tmp_path / 'p', LABELS, record=_record(8, 'planner', None)))
    np.testing.assert_allclose(planner.samples.curvature, [0.3, 0.0], atol=1e-6)
    assert planner.stats['dropped_undefined_label'] == 2


def _bags(tmp_path, *bags):
    data = tmp_path / 'data'
    (data / 'episodes').mkdir(parents=True)
    for name, kwargs in bags:
        write_bag(data / 'episodes' / name, kwargs.pop('labels', LABELS[:1] * 3), **kwargs)
    return data


@pytest.mark.parametrize('bad, needle', [
    ({'labels': [(0.8, 0.1), (float('nan'), 0.2)], 'record': _record(1)}, 'is not a finite label (v=nan'),
    ({'right_size': (10, 6), 'record': _record(1)}, 'the left image is 8x6 but the right one is 10x6'),
    ({'labels': [], 'record': _record(1)}, 'no frames (0 /stereo/left/image_raw'),
])
def test_a_bad_bag_is_one_error_line_and_no_output(bad, needle, tmp_path, capsys):
    data = _bags(tmp_path, ('seed_000000', {'record': _record(0)}), ('seed_000001', dict(bad)))
    out = tmp_path / 'shards'
    code, stdout, err = _dave(['data', 'build', 'steering', '--data', str(data), '--out', str(out), '--quiet'],
                              capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f'dave data build: error: {data / "episodes" / "seed_000001"}') and needle in err[0]
    assert not out.exists() and list(tmp_path.glob('.shards*')) == []  # nothing half-written


def test_truncated_bag_and_busy_output_are_one_error_line(tmp_path, capsys):
    data = _bags(tmp_path, ('seed_000000', {'record': _record(0)}), ('seed_000001', {'record': _record(1)}))
    mcap = data / 'episodes' / 'seed_000001' / 'seed_000001.mcap'
    mcap.write_bytes(mcap.read_bytes()[:-200])
    out = tmp_path / 'shards'
    out.mkdir()  # an empty directory may be the target...
    code, _, err = _dave(['data', 'build', 'steering', '--data', str(data), '--out', str(out), '--quiet'], capsys)
    assert code == 2 and len(err) == 1 and 'seed_000001: unreadable recording, truncated or corrupt' in err[0]
    assert out.is_dir() and list(out.iterdir()) == []  # ...and stays as it was

    # info reads metadata.yaml's counts, which a cut file keeps: it names the bag and fails.
    code, table, err = _dave(['data', 'info', str(data)], capsys)
    assert code == 1 and 'seed_000001' in table and len(err) == 1
    assert err[0].startswith(f'dave data info: error: {mcap.parent}: storage file seed_000001.mcap is cut short')

    shutil.rmtree(data / 'episodes' / 'seed_000001')
    assert _dave(['data', 'build', 'steering', '--data', str(data), '--out', str(out), '--quiet'], capsys)[0] == 0
    assert load_manifest(out).num_samples == 3
    code, _, err = _dave(['data', 'build', 'steering', '--data', str(data), '--out', str(out), '--quiet'], capsys)
    assert code == 2 and len(err) == 1 and 'exists and is not an empty directory' in err[0]


def test_info_of_a_bag_without_episode_record(tmp_path, capsys):
    bag = write_bag(tmp_path / 'drive', LABELS)
    code, out, _ = _dave(['data', 'info', str(bag)], capsys)
    row = out.splitlines()[1].split()
    assert code == 0 and row[:3] == ['drive', '-', '-'] and row[4] == '4'
    assert 'not recorded, not zero' in out
    code, _, err = _dave(['data', 'info', str(tmp_path / 'nothing')], capsys)
    assert code == 2 and len(err) == 1 and 'not a directory' in err[0]


# ---------------------------------------------------------------- drawing helpers

def test_evenly_spaced_and_arc_projection():
    assert evenly_spaced(100, 5) == [0, 25, 50, 74, 99] and evenly_spaced(3, 8) == [0, 1, 2]
    camera = {'width': 320, 'height': 240, 'hfov_deg': 85.0}
    straight = arc_pixels(0.0, camera, 320, 240)
    left, right = arc_pixels(1.0, camera, 320, 240), arc_pixels(-1.0, camera, 320, 240)
    # Straight ahead runs up the image towards the horizon, right of centre (left camera is 6 cm left).
    assert np.all(np.diff(straight[:, 1]) < 0) and 160 < straight[-1, 0] < 175
    assert left[-1, 0] < straight[-1, 0] < right[-1, 0]  # + curvature turns left
