"""Steering path end to end on tiny data: shards, world split, dry run, resume, export, runtime.

Synthetic scenes stand in for the simulator so the training tests stay fast: a bright bar in
front of a textured background, its horizontal position sets the curvature label. One test
drives the real simulator's expert for a few frames to check the shard generator.
"""
import argparse
import json

import numpy as np
import pytest
import torch

from dave_cli.commands import export as export_command
from dave_cli.commands import train as train_command
from dave_core.model_contract import load_contract
from dave_core.onnx_runner import OnnxModel
from dave_core.preprocess import PreprocessSpec, preprocess_stereo
from dave_core.seeds import parse_seed_list
from dave_core.steering import SteeringPredictor
from dave_models.datasets import DatasetError, Samples, ShardWriter, load_manifest, read_shard, split_by_world
from dave_models.export import PARITY_ATOL, ExportError, export_checkpoint
from dave_models.steering_net import SteeringNet, SteeringNetConfig
from dave_models.train import direction_classes, steering_metrics

H, W = 48, 64


def synthetic_world(seed: int, frames: int) -> Samples:
    rng = np.random.default_rng(seed)
    background = rng.integers(30, 90, (H, W, 3), dtype=np.uint8)
    left = np.repeat(background[None], frames, axis=0)
    right = left.copy()
    bar_x = rng.integers(10, W - 14, frames)
    for i, x in enumerate(bar_x):
        left[i, H // 3:, x:x + 4] = (230, 200, 40)
        right[i, H // 3:, x - 3:x + 1] = (230, 200, 40)
    curvature = ((bar_x + 0.5 - W / 2) / W * 1.6).astype(np.float32)  # steer towards the bar
    return Samples(left, right, curvature, np.full(frames, seed, np.int64),
                   speed=np.full(frames, 1.0, np.float32))


def write_dataset(root, seeds=range(4), frames=12, source=None):
    with ShardWriter(root, source or {'generator': 'tests'}) as writer:
        for seed in seeds:
            writer.add(synthetic_world(seed, frames))
    return root


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('data'))


def _run(module, argv):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


# --- data set format ------------------------------------------------------------------------

def test_manifest_round_trip_and_data_id(dataset, tmp_path):
    manifest = load_manifest(dataset)
    assert manifest.world_seeds == (0, 1, 2, 3) and manifest.num_samples == 48
    samples = read_shard(manifest, manifest.shards[1])
    np.testing.assert_array_equal(samples.curvature, synthetic_world(1, 12).curvature)
    # Same content -> same id; different content -> different id.
    assert load_manifest(write_dataset(tmp_path / 'again')).data_id == manifest.data_id
    assert load_manifest(write_dataset(tmp_path / 'other', frames=11)).data_id != manifest.data_id


def _write_raw_shard(root, name, **arrays):
    """A shard written behind ShardWriter's back (so it can be invalid), with a matching manifest."""
    import hashlib
    import io
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (root / name).write_bytes(buffer.getvalue())
    from dave_models.datasets import data_id_of
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    n = len(arrays['curvature'])
    (root / 'manifest.json').write_text(json.dumps({
        'format': 'dave-steering-shards', 'version': 1, 'data_id': data_id_of([digest]),
        'image_height': H, 'image_width': W, 'num_samples': n,
        'shards': [{'file': name, 'num_samples': n, 'world_seeds': [0], 'sha256': digest}]}))


@pytest.mark.parametrize('change, culprit', [
    (lambda a: a['curvature'].__setitem__(3, np.nan), r'curvature has 1 NaN/inf label\(s\), first at index 3'),
    (lambda a: a.update(right=a['right'][:, :, :-2]), r'left .* and right .* sizes differ'),
    (lambda a: a.update(left=a['left'][:0], right=a['right'][:0], curvature=a['curvature'][:0],
                        world_seed=a['world_seed'][:0]), 'no samples'),
    (lambda a: a.pop('world_seed'), "missing array 'world_seed'"),
    (lambda a: a.update(left=a['left'].astype(np.float32)), 'left must be'),
])
def test_bad_shard_is_one_error_naming_the_file(tmp_path, change, culprit):
    world = synthetic_world(0, 6)
    arrays = {'left': world.left, 'right': world.right, 'curvature': world.curvature.copy(),
              'world_seed': world.world_seed}
    change(arrays)
    _write_raw_shard(tmp_path, 'shard_00000.npz', **arrays)
    with pytest.raises(DatasetError, match=culprit) as info:
        manifest = load_manifest(tmp_path)
        read_shard(manifest, manifest.shards[0])
    assert 'shard_00000.npz' in str(info.value) or 'manifest.json' in str(info.value)


def test_writer_refuses_bad_samples_and_modified_shards_are_detected(tmp_path):
    world = synthetic_world(0, 6)
    world.curvature[0] = np.inf
    with pytest.raises(DatasetError, match=r'shard_00000\.npz: curvature has 1 NaN/inf'):
        ShardWriter(tmp_path / 'a').add(world)
    root = write_dataset(tmp_path / 'b', seeds=[0, 1], frames=4)
    with open(root / 'shard_00001.npz', 'r+b') as f:
        f.seek(100)
        f.write(b'\x00\x01\x02')
    manifest = load_manifest(root)
    with pytest.raises(DatasetError, match=r'shard_00001\.npz: sha256 differs'):
        read_shard(manifest, manifest.shards[1])
    with pytest.raises(DatasetError, match='no manifest.json'):
        load_manifest(tmp_path)
    with pytest.raises(DatasetError, match='already holds a data set'):
        ShardWriter(root)


def test_split_is_by_world_and_deterministic():
    seeds = list(range(36))
    train, val = split_by_world(seeds, val_fraction=0.17, seed=3)
    assert len(val) == 6 and not set(train) & set(val) and sorted(train + val) == seeds
    assert (train, val) == split_by_world(seeds, val_fraction=0.17, seed=3)
    assert split_by_world(seeds, val_seeds=range(30, 36))[1] == [30, 31, 32, 33, 34, 35]
    with pytest.raises(DatasetError, match='seed 99 is not in the data'):
        split_by_world(seeds, val_seeds=[99])
    with pytest.raises(DatasetError, match='at least 2 worlds'):
        split_by_world([5])


def test_parse_seed_list():
    assert parse_seed_list('0-3,7,5-5') == [0, 1, 2, 3, 5, 7]
    with pytest.raises(ValueError, match="cannot read '3-1'"):
        parse_seed_list('0,3-1')


def test_direction_metrics_use_the_deadband():
    assert direction_classes(np.array([0.3, 0.01, -0.01, -0.2]), 0.02).tolist() == [1, 0, 0, -1]
    m = steering_metrics(np.array([0.1, 0.0, -0.3]), np.array([0.2, 0.01, 0.1]), deadband=0.05)
    assert m['mae'] == pytest.approx((0.1 + 0.01 + 0.4) / 3)
    assert m['direction_accuracy'] == pytest.approx(2 / 3)
    assert m['direction_accuracy_straight_baseline'] == pytest.approx(1 / 3)


def test_avoid_rate_counts_steering_away_from_the_obstacle_side():
    ahead = np.array([1, 1, -1, 0, 0])  # obstacle left, left, right, none, none
    predicted = np.array([-0.2, 0.1, 0.3, 0.5, -0.5])  # away, towards, away
    target = np.array([-0.1, -0.1, 0.2, 0.0, 0.0])  # the expert always steers away here
    m = steering_metrics(predicted, target, 0.05, ahead)
    assert m['obstacle_ahead_fraction'] == pytest.approx(0.6)
    assert m['avoid_rate'] == pytest.approx(2 / 3) and m['avoid_rate_expert'] == 1.0


def test_obstacle_ahead_geometry():
    from dave_models.sim_dataset import obstacle_ahead
    obstacles = np.array([[2.0, 0.5, 0.3],    # ahead-left when facing +x
                          [-0.5, -2.0, 0.3]])  # ahead-right when facing -y
    assert obstacle_ahead(obstacles, 0.0, 0.0, 0.0) == 1
    assert obstacle_ahead(obstacles, 0.0, 0.0, -np.pi / 2) == -1
    assert obstacle_ahead(obstacles, 0.0, 0.0, np.pi) == 0  # both behind
    assert obstacle_ahead(obstacles, -3.0, 0.0, 0.0) == 0  # 4.7 m away: beyond the 3 m range
    assert obstacle_ahead(np.zeros((0, 3)), 0.0, 0.0, 0.0) == 0


# --- training, export, runtime --------------------------------------------------------------

def test_dry_run_resume_export_and_runtime(dataset, tmp_path):
    out = tmp_path / 'train'
    assert _run(train_command, ['steering', '--data', str(dataset), '--out', str(out), '--dry-run',
                                '--batch-size', '8', '--threads', '1', '--val-seeds', '3']) == 0
    for name in ('last.pt', 'best.pt', 'metrics.json', 'learning_curve.png'):
        assert (out / name).stat().st_size > 0, name
    checkpoint = torch.load(out / 'last.pt', weights_only=True)
    assert checkpoint['epoch'] == 1 and checkpoint['val_seeds'] == [3]
    assert checkpoint['train_seeds'] == [0, 1, 2]
    assert checkpoint['data_id'] == load_manifest(dataset).data_id
    assert np.isfinite(checkpoint['metrics']['val_mae'])

    # A new run must not overwrite an existing one...
    stamp = (out / 'best.pt').stat().st_mtime_ns
    assert _run(train_command, ['steering', '--data', str(dataset), '--out', str(out), '--dry-run']) == 2
    assert (out / 'best.pt').stat().st_mtime_ns == stamp
    # ...but --resume continues it from the saved epoch.
    assert _run(train_command, ['steering', '--data', str(dataset), '--out', str(out), '--resume',
                                '--epochs', '2', '--batch-size', '8', '--threads', '1',
                                '--val-seeds', '3']) == 0
    resumed = torch.load(out / 'last.pt', weights_only=True)
    assert resumed['epoch'] == 2 and [h['epoch'] for h in resumed['history']] == [1.0, 2.0]

    onnx_path = tmp_path / 'models' / 'steering.onnx'
    report = export_checkpoint(out / 'last.pt', onnx_path)
    assert report.max_abs_diff <= PARITY_ATOL and report.parameters == resumed_parameters(resumed)
    contract = load_contract(onnx_path, expected_task='steering')
    assert contract.training_data_id == resumed['data_id']
    assert contract.metrics['val_mae'] == pytest.approx(resumed['metrics']['val_mae'])
    assert contract.inputs[0].shape == (1, 6, 66, 200)
    assert contract.camera == {}  # the synthetic data records no camera

    # The runtime path (sidecar spec + preprocess + ONNX) matches torch on a raw stereo pair.
    model = SteeringNet(SteeringNetConfig.from_dict(resumed['model_config']))
    model.load_state_dict(resumed['state_dict'])
    model.eval()
    spec = PreprocessSpec.from_dict(resumed['preprocess'])
    predictor = SteeringPredictor.load(onnx_path)
    assert predictor.spec == spec
    world = synthetic_world(7, 3)
    for left, right in zip(world.left, world.right):
        with torch.no_grad():
            expected = model(torch.from_numpy(preprocess_stereo(left, right, spec)[None]))[0].item()
        assert predictor.predict(left, right).curvature_per_m == pytest.approx(expected, abs=1e-4)
    assert OnnxModel.load(onnx_path).output_names == ['curvature_per_m']

    # The CLI export refuses a non-checkpoint, naming it.
    (tmp_path / 'junk.pt').write_bytes(b'junk')
    assert _run(export_command, [str(tmp_path / 'junk.pt'), '--out', str(tmp_path / 'x.onnx')]) == 2
    with pytest.raises(ExportError, match='must end in .onnx'):
        export_checkpoint(out / 'last.pt', tmp_path / 'model.bin')


def resumed_parameters(checkpoint):
    return sum(t.numel() for k, t in checkpoint['state_dict'].items()
               if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked')))


def test_training_beats_the_straight_baseline_on_held_out_worlds(tmp_path):
    """A learnable synthetic task: a few epochs must beat 'always straight' on unseen worlds."""
    data = write_dataset(tmp_path / 'data', seeds=range(5), frames=16)
    out = tmp_path / 'train'
    assert _run(train_command, ['steering', '--data', str(data), '--out', str(out), '--epochs', '6',
                                '--batch-size', '8', '--threads', '2', '--val-seeds', '3-4',
                                '--lr', '3e-3', '--no-augment']) == 0
    summary = json.loads((out / 'metrics.json').read_text())
    baseline = summary['history'][-1]['val_mae_zero_baseline']
    assert summary['val_worlds'] == [3, 4] and summary['train_frames'] == 48
    # Measured with --seed 0..3: best/baseline 0.15-0.35; 'always straight' would be 1.0.
    assert summary['best_val_mae'] < 0.5 * baseline, summary['history']


def test_sim_dataset_generates_deterministic_shards(tmp_path):
    pytest.importorskip('mujoco')
    from dave_models.sim_dataset import SimDatasetConfig, generate

    config = SimDatasetConfig(frames_per_world=4, camera_rate_hz=10.0)
    a = load_manifest(generate([3], tmp_path / 'a', config, 'test'))
    b = load_manifest(generate([3], tmp_path / 'b', config, 'test'))
    assert a.data_id == b.data_id
    samples = read_shard(a, a.shards[0])
    assert samples.left.shape == (4, 240, 320, 3) and samples.left.dtype == np.uint8
    assert np.all(np.isfinite(samples.curvature)) and samples.speed is not None
    assert a.source['worlds'][0]['frames'] == 4 and a.source['command'] == 'test'


def test_sidecar_carries_the_training_camera(tmp_path):
    from dave_models.train import training_camera

    camera = {'width': W, 'height': H, 'hfov_deg': 90.0, 'baseline_m': 0.12}
    data = write_dataset(tmp_path / 'data', seeds=range(3), frames=4,
                         source={'generator': 'tests', 'camera': camera})
    out = tmp_path / 'train'
    assert _run(train_command, ['steering', '--data', str(data), '--out', str(out), '--dry-run',
                                '--batch-size', '4', '--threads', '1', '--val-seeds', '2']) == 0
    export_checkpoint(out / 'last.pt', tmp_path / 'steering.onnx')
    contract = load_contract(tmp_path / 'steering.onnx', expected_task='steering')
    assert contract.camera == {'width': W, 'height': H, 'fx': pytest.approx(W / 2), 'baseline_m': 0.12}
    assert training_camera({'camera': {'width': 320}}) == {}  # incomplete: no camera check


def test_sim_dataset_expert_registry(tmp_path):
    pytest.importorskip('mujoco')
    from dave_models.sim_dataset import EXPERTS, SimDatasetConfig, generate

    assert set(EXPERTS) == {'reactive', 'planner'} and SimDatasetConfig().expert == 'reactive'
    with pytest.raises(ValueError, match="expert 'astar' unknown"):
        SimDatasetConfig(expert='astar')
    config = SimDatasetConfig(frames_per_world=3, expert='planner')
    manifest = load_manifest(generate([2], tmp_path / 'planner', config, 'test'))
    assert manifest.source['config']['expert'] == 'planner'
    assert read_shard(manifest, manifest.shards[0]).curvature.shape == (3,)


def test_merge_gives_the_data_id_of_one_run_and_refuses_overlaps(tmp_path):
    from dave_models.datasets import main as datasets_main
    from dave_models.datasets import merge_datasets

    camera = {'width': W, 'height': H}
    whole = load_manifest(write_dataset(tmp_path / 'whole', seeds=range(4), frames=3, source={'camera': camera}))
    write_dataset(tmp_path / 'a', seeds=range(2), frames=3, source={'camera': camera})
    write_dataset(tmp_path / 'b', seeds=range(2, 4), frames=3, source={'camera': camera})
    merged = merge_datasets([tmp_path / 'a', tmp_path / 'b'], tmp_path / 'ab')
    assert merged.data_id == whole.data_id and merged.world_seeds == (0, 1, 2, 3)
    reloaded = load_manifest(tmp_path / 'ab')
    assert reloaded.source['camera'] == camera and len(reloaded.source['merged_from']) == 2
    assert np.array_equal(read_shard(reloaded, reloaded.shards[3]).left,
                          read_shard(whole, whole.shards[3]).left)
    with pytest.raises(DatasetError, match='world seed 0 is also in'):
        merge_datasets([tmp_path / 'a', tmp_path / 'whole'], tmp_path / 'bad')
    assert datasets_main(['merge', str(tmp_path / 'a'), str(tmp_path / 'a'), '--out', str(tmp_path / 'c')]) == 2
