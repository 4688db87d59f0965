"""Steering path end to end on tiny data: shards, world split, dry run, resume, export, runtime.

Synthetic scenes stand in for the simulator so the training tests stay fast: a bright bar in
front of a textured background, its horizontal position sets the curvature label. One test
drives the real simulator's expert for a few frames to check the shard generator.
"""
import argparse
import dataclasses
import json
import logging
import math
import os
import re
from pathlib import Path

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
from dave_models.datasets import (DatasetError, Samples, ShardWriter, building, load_manifest, read_shard,
                                  split_by_world)
from dave_models import export as export_module
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


@pytest.mark.parametrize('edit, culprit', [
    (lambda m: m['shards'][0].update(world_seeds='12'), r"shards\[0\]: key 'world_seeds' has the wrong type"),
    (lambda m: m['shards'][0].update(world_seeds=['1']), r"shards\[0\]: key 'world_seeds' must list"),
    (lambda m: m['shards'][0].update(num_samples='4'), r"shards\[0\]: key 'num_samples' has the wrong type"),
    (lambda m: m['shards'][0].update(num_samples=-1), r"shards\[0\]: key 'num_samples' is negative"),
    (lambda m: m['shards'][0].update(file='..'), r"shards\[0\]: file '..' must be a bare file name"),
    (lambda m: m['shards'][0].update(file=''), r"shards\[0\]: file '' must be a bare file name"),
    (lambda m: m['shards'][0].pop('sha256'), r"shards\[0\]: missing key 'sha256'"),
    (lambda m: m.update(source=['sim']), r"key 'source' has the wrong type \(list\)"),
])
def test_a_malformed_manifest_is_one_error_naming_the_entry(tmp_path, edit, culprit):
    root = write_dataset(tmp_path / 'd', seeds=[0, 1], frames=2)
    document = json.loads((root / 'manifest.json').read_text())
    edit(document)
    (root / 'manifest.json').write_text(json.dumps(document))
    with pytest.raises(DatasetError, match=re.escape(str(root / 'manifest.json')) + '.*' + culprit):
        load_manifest(root)


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
    with pytest.raises(ValueError, match="cannot read '9223372036854775808'"):  # overflowed int64 after a drive
        parse_seed_list('9223372036854775808')
    with pytest.raises(ValueError, match='more than 100000 worlds'):  # was built: 2e9 ints, memory exhausted
        parse_seed_list('0-2000000000')
    assert len(parse_seed_list('0-99999,0-99999,5')) == 100_000  # overlaps count once
    with pytest.raises(ValueError, match='more than 100000 worlds'):
        parse_seed_list('0-99999,100000')


def test_direction_metrics_use_the_deadband():
    assert direction_classes(np.array([0.3, 0.01, -0.01, -0.2]), 0.02).tolist() == [1, 0, 0, -1]
    m = steering_metrics(np.array([0.1, 0.0, -0.3]), np.array([0.2, 0.01, 0.1]), deadband=0.05)
    assert m['mae'] == pytest.approx((0.1 + 0.01 + 0.4) / 3)
    assert m['direction_accuracy'] == pytest.approx(2 / 3)
    assert m['direction_accuracy_straight_baseline'] == pytest.approx(1 / 3)


def test_timing_tolerant_direction_accuracy_forgives_early_or_late_turns_within_one_drive():
    # Drive 1 turns left at frame 4; the prediction turns two frames early. Drive 2 is straight,
    # and its first frame must not be excused by drive 1's last one (left).
    target = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0], float) * 0.5
    predicted = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 0, -1], float) * 0.5
    sequence = np.array([1] * 8 + [2] * 3)
    m = steering_metrics(predicted, target, 0.05, sequence=sequence)
    assert m['direction_accuracy'] == pytest.approx(7 / 11)
    # Frames 2 and 3 are within 2 of a left label; frames 8 and 10 (drive 2) are misses.
    assert m['direction_accuracy_within_2_frames'] == pytest.approx(9 / 11)
    # Misses 2, 3 are near drive 1's change; 8 and 10 are not (drive 2 never changes).
    assert m['direction_misses_near_label_change'] == pytest.approx(2 / 4)
    assert 'direction_accuracy_within_2_frames' not in steering_metrics(predicted, target, 0.05)


def test_near_tie_metrics_split_the_misses_by_how_decisive_the_expert_was():
    target = np.array([0.5, 0.5, 0.0, -0.5, 0.0])
    predicted = np.array([0.5, 0.0, 0.0, 0.5, -0.5])  # misses at frames 1, 3 and 4
    near_tie = np.array([False, True, False, True, False])
    m = steering_metrics(predicted, target, 0.05, near_tie=near_tie)
    assert m['direction_near_tie_fraction'] == pytest.approx(2 / 5)
    assert m['direction_accuracy_decisive'] == pytest.approx(2 / 3)  # frames 0, 2 right; 4 wrong
    assert m['direction_misses_near_tie'] == pytest.approx(2 / 3)
    assert 'direction_accuracy_decisive' not in steering_metrics(predicted, target, 0.05)
    # All near-ties (a tiny smoke set): nothing to report for the others, and no NaN in metrics
    # (export refuses non-finite metrics).
    m = steering_metrics(predicted, target, 0.05, near_tie=np.ones(5, bool))
    assert 'direction_accuracy_decisive' not in m and all(np.isfinite(v) for v in m.values())


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
    # Resuming a run that has all its epochs is an error, not a silent success.
    stamp = (out / 'last.pt').stat().st_mtime_ns
    assert _run(train_command, ['steering', '--data', str(dataset), '--out', str(out), '--resume',
                                '--epochs', '2', '--batch-size', '8', '--threads', '1',
                                '--val-seeds', '3']) == 2
    assert (out / 'last.pt').stat().st_mtime_ns == stamp

    onnx_path = tmp_path / 'models' / 'steering.onnx'
    report = export_checkpoint(out / 'last.pt', onnx_path)
    assert report.max_abs_diff <= PARITY_ATOL and report.parameters == resumed_parameters(resumed)
    contract = load_contract(onnx_path, expected_task='steering')
    assert contract.training_data_id == resumed['data_id']
    assert contract.metrics['val_mae'] == pytest.approx(resumed['metrics']['val_mae'])
    assert contract.inputs[0].shape == (1, 6, 66, 200)
    assert contract.camera == {}  # the synthetic data records no camera
    # The file is the same bytes wherever it is exported: no source paths or stack traces in it.
    shipped = onnx_path.read_bytes()
    assert b'stack_trace' not in shipped and str(Path(export_module.__file__).parent).encode() not in shipped
    again = export_checkpoint(out / 'last.pt', tmp_path / 'elsewhere' / 'steering.onnx').onnx_path
    assert again.read_bytes() == shipped

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


def test_a_failed_export_leaves_the_previous_model_and_sidecar_alone(dataset, tmp_path, monkeypatch):
    out = tmp_path / 'train'
    assert _run(train_command, ['steering', '--data', str(dataset), '--out', str(out), '--dry-run',
                                '--batch-size', '8', '--threads', '1', '--val-seeds', '3']) == 0
    onnx_path = tmp_path / 'models' / 'steering.onnx'
    export_checkpoint(out / 'last.pt', onnx_path)
    before = {path: path.read_bytes() for path in onnx_path.parent.iterdir()}
    monkeypatch.setattr(export_module, 'PARITY_ATOL', -1.0)  # no graph can pass: the parity check fails
    with pytest.raises(ExportError, match=re.escape(f'{onnx_path}: output') + '.*differs from torch'):
        export_checkpoint(out / 'last.pt', onnx_path)
    assert {path: path.read_bytes() for path in onnx_path.parent.iterdir()} == before
    # A graph that passes parity but whose sidecar does not fit it fails at the reload, before
    # anything is replaced (the new graph beside the old sidecar would not load on the car).
    monkeypatch.undo()
    real_contract = export_module.build_contract

    def wrong_output_name(*args):
        contract = real_contract(*args)
        renamed = dataclasses.replace(contract.outputs[0], name='steer')
        return dataclasses.replace(contract, outputs=(renamed, *contract.outputs[1:]))

    monkeypatch.setattr(export_module, 'build_contract', wrong_output_name)
    with pytest.raises(ExportError, match=re.escape(f'{onnx_path}: the exported model does not load')):
        export_checkpoint(out / 'last.pt', onnx_path)
    assert {path: path.read_bytes() for path in onnx_path.parent.iterdir()} == before
    monkeypatch.undo()
    # The sidecar cannot be replaced (the file system refuses: read-only, immutable) after the
    # model was: the previous model goes back, so the pair on disk still loads.
    real_replace = os.replace

    def refuse_the_sidecar(src, dst):
        if Path(dst).suffix == '.json':
            raise PermissionError(13, 'Operation not permitted', str(dst))
        real_replace(src, dst)

    other = tmp_path / 'other_run'  # another network: its graph differs from the one in place
    assert _run(train_command, ['steering', '--data', str(dataset), '--out', str(other), '--dry-run', '--seed', '1',
                                '--batch-size', '8', '--threads', '1', '--val-seeds', '3']) == 0
    monkeypatch.setattr(os, 'replace', refuse_the_sidecar)
    with pytest.raises(PermissionError):
        export_checkpoint(other / 'last.pt', onnx_path)
    monkeypatch.undo()
    assert {path: path.read_bytes() for path in onnx_path.parent.iterdir()} == before
    # --out naming a directory, or with a directory where its sidecar goes: refused before exporting.
    (tmp_path / 'models' / 'dir.onnx').mkdir()
    (tmp_path / 'models' / 'other.json').mkdir()
    for name in ('dir.onnx', 'other.onnx'):
        with pytest.raises(ExportError, match='is a directory'):
            export_checkpoint(out / 'last.pt', tmp_path / 'models' / name)


@pytest.mark.parametrize('flags, culprit', [
    (['--deadband', 'inf'], r"--deadband: invalid value inf \(must be finite\)"),  # scored everything straight
    (['--weight-decay', 'nan'], r"--weight-decay: invalid value nan"),
    (['--input-height', '20', '--input-width', '30'], r'input 20x30 \(--input-height x --input-width\) is too small'),
    (['--input-height', '16', '--input-width', '16'], r'input 16x16 .* is too small'),
])
def test_bad_numbers_are_one_error_naming_the_flag(dataset, tmp_path, caplog, flags, culprit):
    out = tmp_path / 'train'
    assert _run(train_command, ['steering', '--data', str(dataset), '--out', str(out), '--dry-run',
                                '--batch-size', '4', '--threads', '1', *flags]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and re.search(culprit, errors[0]), errors
    assert not out.exists()  # the folder the failed run made is gone: nothing to clean up by hand


def test_a_run_stopped_while_saving_an_epoch_can_be_run_again(dataset, tmp_path, monkeypatch):
    from dave_models import train as train_module

    real_write = train_module.atomic_write_text

    def ctrl_c_at_metrics(path, *args, **kwargs):
        if Path(path).name == 'metrics.json':
            raise KeyboardInterrupt
        return real_write(path, *args, **kwargs)

    out = tmp_path / 'train'
    args = ['steering', '--data', str(dataset), '--out', str(out), '--dry-run', '--batch-size', '8',
            '--threads', '1', '--val-seeds', '3']
    monkeypatch.setattr(train_module, 'atomic_write_text', ctrl_c_at_metrics)
    with pytest.raises(KeyboardInterrupt):
        _run(train_command, args)
    monkeypatch.undo()
    # last.pt is written last, so the epoch is not marked done: the same command runs again
    # (it was refused: "already holds last.pt", and --resume: "nothing to do").
    assert not (out / 'last.pt').exists()
    assert _run(train_command, args) == 0
    assert json.loads((out / 'metrics.json').read_text())['history'][-1]['epoch'] == 1


def _smaller_fc(checkpoint):
    checkpoint['state_dict']['head.1.weight'] = checkpoint['state_dict']['head.1.weight'][:10]


@pytest.mark.parametrize('damage, culprit', [
    (lambda c: c.pop('model_config'), "missing key 'model_config'"),
    (lambda c: c.update(model_config='PilotNet'), "key 'model_config' has the wrong type"),
    (lambda c: c.update(val_seeds=3), "key 'val_seeds' has the wrong type"),
    (_smaller_fc, 'weights do not fit its model_config|do not make a network'),
])
def test_a_damaged_checkpoint_is_one_error_naming_it_in_export_init_and_resume(dataset, tmp_path, caplog,
                                                                              damage, culprit):
    run = tmp_path / 'run'
    common = ['--batch-size', '8', '--threads', '1', '--val-seeds', '3', '--dry-run']
    assert _run(train_command, ['steering', '--data', str(dataset), '--out', str(run), *common]) == 0
    checkpoint = torch.load(run / 'last.pt', weights_only=True)
    damage(checkpoint)
    bad = tmp_path / 'bad.pt'
    torch.save(checkpoint, bad)
    caplog.clear()
    attempts = [
        (export_command, [str(bad), '--out', str(tmp_path / 'm.onnx')]),
        (train_command, ['steering', '--data', str(dataset), '--out', str(tmp_path / 'init'), '--init', str(bad), *common]),
        (train_command, ['steering', '--data', str(dataset), '--out', str(tmp_path / 'resume'), '--resume', str(bad),
                         '--epochs', '2', *common[:-1]]),
    ]
    for command, argv in attempts:
        caplog.clear()
        assert _run(command, argv) == 2, argv
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and '\n' not in errors[0] and re.search(culprit, errors[0]), errors
        assert str(bad) in errors[0], errors
    assert not (tmp_path / 'm.onnx').exists()


def test_export_of_a_checkpoint_without_its_deadband_names_the_key(dataset, tmp_path, caplog):
    run = tmp_path / 'run'
    assert _run(train_command, ['steering', '--data', str(dataset), '--out', str(run), '--batch-size', '8',
                                '--threads', '1', '--val-seeds', '3', '--dry-run']) == 0
    checkpoint = torch.load(run / 'last.pt', weights_only=True)
    del checkpoint['deadband']
    bad = tmp_path / 'bad.pt'
    torch.save(checkpoint, bad)
    caplog.clear()
    assert _run(export_command, [str(bad), '--out', str(tmp_path / 'm.onnx')]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"{bad}: missing key 'deadband'"], errors
    assert not (tmp_path / 'm.onnx').exists()


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


def test_an_interrupted_sim_dataset_run_leaves_nothing_and_can_be_repeated(tmp_path, monkeypatch):
    pytest.importorskip('mujoco')
    from dave_models import sim_dataset

    config = sim_dataset.SimDatasetConfig(frames_per_world=2, camera_rate_hz=10.0)
    real_drive = sim_dataset.drive_world

    def ctrl_c_in_the_second_world(seed, *args):
        if seed == 4:
            raise KeyboardInterrupt
        return real_drive(seed, *args)

    monkeypatch.setattr(sim_dataset, 'drive_world', ctrl_c_in_the_second_world)
    with pytest.raises(KeyboardInterrupt):
        sim_dataset.generate([3, 4], tmp_path / 'data' / 'steering', config, 'test')
    assert os.listdir(tmp_path / 'data') == []  # was: world 3's shard, no manifest, and a refusal to rerun
    monkeypatch.undo()
    manifest = load_manifest(sim_dataset.generate([3, 4], tmp_path / 'data' / 'steering', config, 'test'))
    assert manifest.world_seeds == (3, 4)


CAMERA = {'width': W, 'height': H, 'hfov_deg': 90.0, 'baseline_m': 0.12}


def _camera_model(tmp_path):
    """(data set of worlds 0-3, 6 frames each, recorded with CAMERA; a dry-run model exported from it)."""
    data = write_dataset(tmp_path / 'data', seeds=range(4), frames=6, source={'generator': 'tests', 'camera': CAMERA})
    out = tmp_path / 'train'
    assert _run(train_command, ['steering', '--data', str(data), '--out', str(out), '--dry-run',
                                '--batch-size', '4', '--threads', '1', '--val-seeds', '3']) == 0
    return data, export_checkpoint(out / 'last.pt', tmp_path / 'steering.onnx').onnx_path


def test_sidecar_carries_the_training_camera(tmp_path):
    from dave_models.train import training_camera

    _, model = _camera_model(tmp_path)
    contract = load_contract(model, expected_task='steering')
    assert contract.camera == {'width': W, 'height': H, 'fx': pytest.approx(W / 2), 'baseline_m': 0.12}
    assert training_camera({'camera': {'width': 320}}) == {}  # incomplete: no camera check


def test_steering_eval_scores_the_exported_model_frame_by_frame_and_refuses_another_camera(tmp_path, caplog):
    from dave_models.steering_eval import main as eval_main

    data, model = _camera_model(tmp_path)
    report = tmp_path / 'eval.json'
    assert eval_main(['--model', str(model), '--data', str(data), '--seeds', '1-2', '--json', str(report)]) == 0
    figures = json.loads(report.read_text())
    # The same figures as the deployed predictor's outputs through the training's metrics.
    predictor = SteeringPredictor.load(model)
    worlds = [synthetic_world(seed, 6) for seed in (1, 2)]
    predicted = np.array([predictor.predict(l, r).curvature_per_m for w in worlds for l, r in zip(w.left, w.right)])
    labels = np.concatenate([w.curvature for w in worlds])
    expected = steering_metrics(predicted, labels, 0.05, sequence=np.repeat([1, 2], 6))
    for key in ('mae', 'direction_accuracy', 'direction_accuracy_within_2_frames'):
        assert figures[key] == pytest.approx(expected[key], abs=1e-4), key
    assert figures['samples'] == 12 and figures['worlds'] == 2 and figures['deadband_per_m'] == 0.05
    per_world = figures['direction_accuracy_per_world']
    assert set(per_world) == {'1', '2'}
    assert np.mean(list(per_world.values())) == pytest.approx(figures['direction_accuracy'], abs=1e-3)
    counts = np.array(figures['direction_confusion'])
    assert counts.sum() == 12 and np.trace(counts) / 12 == pytest.approx(figures['direction_accuracy'], abs=1e-3)
    truth = direction_classes(labels, 0.05)
    assert counts.sum(axis=1).tolist() == [int((truth == c).sum()) for c in (-1, 0, 1)]  # rows: right, straight, left

    assert 'frames_open' not in figures  # no arc labels in this data: no split by situation

    # Worlds the data does not hold, and data from another camera: one error each, naming the culprit.
    caplog.clear()
    assert eval_main(['--model', str(model), '--data', str(data), '--seeds', '9']) == 2
    assert f'{data}: no frame of worlds [9]' in caplog.text
    caplog.clear()  # some of the worlds asked for are missing: refused too, naming those
    assert eval_main(['--model', str(model), '--data', str(data), '--seeds', '2-5']) == 2
    assert f'{data}: no frame of worlds [4, 5]' in caplog.text
    narrow = write_dataset(tmp_path / 'narrow', seeds=[5], frames=2,
                           source={'generator': 'tests', 'camera': {**CAMERA, 'hfov_deg': 60.0}})
    caplog.clear()
    assert eval_main(['--model', str(model), '--data', str(narrow)]) == 2
    assert f'{narrow}: recorded with camera fx=' in caplog.text and 'steering.onnx was trained with fx=' in caplog.text


def test_steering_eval_splits_frames_by_what_the_expert_faced():
    from dave_models.steering_eval import SITUATIONS, situations

    horizon = 3.5
    free = np.full((6, 5), horizon)  # a 5-arc fan; the middle one is straight
    clearance = np.full((6, 5), 1.0)
    speed = np.full(6, 0.8)
    speed[0] = 0.0  # boxed in: turning in place, whatever the arcs say
    free[1, 2] = 0.6  # an obstacle on the straight arc within 1 m
    free[2, 2] = 2.4  # further, within the horizon
    clearance[3, 2] = 0.05  # straight arc free, passing 5 cm from an obstacle
    free[4, [0, 1, 3, 4]] = 0.5  # the turns are blocked, the straight arc is open
    names = [SITUATIONS[i] for i in situations(free, clearance, speed, horizon)]
    assert names == ['turn_in_place', 'close', 'blocked', 'tight', 'open', 'open']


def test_sim_dataset_expert_registry(tmp_path):
    pytest.importorskip('mujoco')
    from dave_models.sim_dataset import EXPERTS, SimDatasetConfig, generate

    assert set(EXPERTS) == {'reactive', 'planner'} and SimDatasetConfig().expert == 'reactive'
    with pytest.raises(ValueError, match="expert 'astar' unknown"):
        SimDatasetConfig(expert='astar')
    for rate in (0.0, float('nan'), float('inf'), 400.0):  # above the physics rate: repeated frames
        with pytest.raises(ValueError, match='camera_rate_hz must be > 0 and <= 200'):
            SimDatasetConfig(camera_rate_hz=rate)
    config = SimDatasetConfig(frames_per_world=3, expert='planner')
    manifest = load_manifest(generate([2], tmp_path / 'planner', config, 'test'))
    assert manifest.source['config']['expert'] == 'planner'
    assert read_shard(manifest, manifest.shards[0]).curvature.shape == (3,)


def test_merge_gives_the_data_id_of_one_run_and_refuses_overlaps(tmp_path):
    from dave_models.datasets import main as datasets_main
    from dave_models.datasets import merge_datasets

    camera = {'width': W, 'height': H}
    fan = [-1.0, 0.0, 1.0]
    whole = load_manifest(write_dataset(tmp_path / 'whole', seeds=range(4), frames=3, source={'camera': camera}))
    write_dataset(tmp_path / 'a', seeds=range(2), frames=3, source={'camera': camera, 'arc_curvatures': fan, 'seeds': '0-1'})
    write_dataset(tmp_path / 'b', seeds=range(2, 4), frames=3, source={'camera': camera, 'arc_curvatures': fan, 'seeds': '2-3'})
    merged = merge_datasets([tmp_path / 'a', tmp_path / 'b'], tmp_path / 'ab')
    assert merged.data_id == whole.data_id and merged.world_seeds == (0, 1, 2, 3)
    reloaded = load_manifest(tmp_path / 'ab')
    # What both inputs agree on is kept (arcs heads need the fan); what differs is not.
    assert reloaded.source['camera'] == camera and reloaded.source['arc_curvatures'] == fan
    assert 'seeds' not in reloaded.source and len(reloaded.source['merged_from']) == 2
    assert np.array_equal(read_shard(reloaded, reloaded.shards[3]).left,
                          read_shard(whole, whole.shards[3]).left)
    with pytest.raises(DatasetError, match='world seed 0 is also in'):
        merge_datasets([tmp_path / 'a', tmp_path / 'whole'], tmp_path / 'bad')
    assert datasets_main(['merge', str(tmp_path / 'a'), str(tmp_path / 'a'), '--out', str(tmp_path / 'c')]) == 2
    with pytest.raises(DatasetError, match=re.escape(f'--out {tmp_path / "ab"}: exists and is not an empty')):
        merge_datasets([tmp_path / 'a', tmp_path / 'b'], tmp_path / 'ab')


@pytest.mark.parametrize('damage, culprit', [
    (lambda shard: shard.write_bytes(shard.read_bytes()[:-10]), 'sha256 differs from manifest.json'),
    (lambda shard: shard.unlink(), 'shard listed in manifest.json is missing'),
])
def test_a_failed_merge_names_the_input_shard_and_leaves_no_output(tmp_path, caplog, damage, culprit):
    from dave_models.datasets import main as datasets_main

    write_dataset(tmp_path / 'a', seeds=range(2), frames=3)
    b = write_dataset(tmp_path / 'b', seeds=range(2, 4), frames=3)
    damage(b / 'shard_00001.npz')  # the last shard: the output is half written when it is read
    out = tmp_path / 'data' / 'ab'
    assert datasets_main(['merge', str(tmp_path / 'a'), str(b), '--out', str(out)]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(f'{b / "shard_00001.npz"}: {culprit}')
    assert os.listdir(tmp_path / 'data') == []  # neither the output nor its hidden partial folder


def test_errors_while_building_name_the_output_not_its_hidden_folder(tmp_path):
    out = tmp_path / 'data'
    with pytest.raises(DatasetError) as error:
        with building(out) as partial:
            raise DatasetError(f'{partial / "shard_00000.npz"}: label 0 is NaN')
    assert str(error.value) == f'{out / "shard_00000.npz"}: label 0 is NaN'
    with pytest.raises(OSError) as error:  # e.g. a full disk while a shard is written
        with building(out) as partial:
            (partial / 'shard_00000.npz').read_bytes()
    assert error.value.filename == str(out / 'shard_00000.npz') and '.partial' not in str(error.value)
    assert os.listdir(tmp_path) == []


def test_augment_flags_mirror_augment_config_and_need_the_camera_for_rotations():
    from dataclasses import asdict

    from dave_models.augment import AugmentConfig
    from dave_models.train import augment_setup
    from dave_core.preprocess import PreprocessSpec
    from dave_models.train_config import add_arguments, config_from_args
    from dave_sim.camera import StereoCameraConfig

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args(['--data', 'd', '--out', 'o']))
    defaults = AugmentConfig()
    augment, geometry = augment_setup(config, {'camera': asdict(StereoCameraConfig())}, PreprocessSpec())
    assert augment == defaults  # the flag defaults are AugmentConfig's
    assert geometry is not None and geometry.fx == pytest.approx(StereoCameraConfig().fx * 200 / 320)
    assert augment_setup(config, {}, PreprocessSpec()) == (defaults, None)
    custom = config_from_args(parser.parse_args(['--data', 'd', '--out', 'o', '--aug-rotate-prob', '0',
                                                 '--aug-blur-prob', '0.5']))
    assert augment_setup(custom, {}, PreprocessSpec())[0] == AugmentConfig(rotate_prob=0.0, blur_prob=0.5)
    shift = config_from_args(parser.parse_args(['--data', 'd', '--out', 'o', '--aug-shift-prob', '0.4',
                                                '--aug-shift-max', '0.2']))
    assert augment_setup(shift, {}, PreprocessSpec())[0] == AugmentConfig(shift_prob=0.4, shift_max_m=0.2)
    with pytest.raises(ValueError, match='--aug-shift-max'):
        config_from_args(parser.parse_args(['--data', 'd', '--out', 'o', '--aug-shift-max', '0.9']))
    off = config_from_args(parser.parse_args(['--data', 'd', '--out', 'o', '--no-augment']))
    assert augment_setup(off, {}, PreprocessSpec()) == (None, None)
    with pytest.raises(ValueError, match='--aug-shadow-prob'):
        config_from_args(parser.parse_args(['--data', 'd', '--out', 'o', '--aug-shadow-prob', '2']))


# --- labels, arc head, auxiliary targets --------------------------------------------------

FAN = np.linspace(-1.5, 1.5, 21)


def test_arc_targets_are_two_hot_with_the_label_as_mean():
    from dave_models.train import arc_targets

    labels = np.array([0.0, 0.15, -1.5, 1.5, 0.2, -0.71, 3.0])
    soft = arc_targets(labels, FAN)
    assert soft.shape == (7, 21) and np.allclose(soft.sum(axis=1), 1.0)
    np.testing.assert_allclose(soft @ FAN, np.clip(labels, -1.5, 1.5), atol=1e-6)
    assert soft[0, 10] == 1.0 and soft[1, 11] == pytest.approx(1.0) and soft[3, 20] == 1.0
    assert (np.count_nonzero(soft, axis=1) <= 2).all()
    assert soft[4, 11] == pytest.approx(2 / 3) and soft[4, 12] == pytest.approx(1 / 3)


def _arc_dataset(path):
    """Three worlds of 8 frames with the reactive expert's arc fan and privileged arc labels."""
    with ShardWriter(path, {'generator': 'tests', 'arc_curvatures': FAN.tolist()}) as writer:
        for seed in range(3):
            writer.add(_arc_world(seed, 8))
    return path


def _arc_world(seed, frames):
    world = synthetic_world(seed, frames)
    rng = np.random.default_rng(100 + seed)
    world.curvature_memoryless = -world.curvature
    world.arc_free_m = rng.uniform(0, 3.5, (frames, 21)).astype(np.float32)
    world.arc_clearance_m = rng.uniform(0, 1.0, (frames, 21)).astype(np.float32)
    return world


def test_aux_targets_mirror_with_a_flip_and_are_masked_after_a_rotation_or_shift():
    from dave_core.preprocess import PreprocessSpec, crop_resize
    from dave_models.augment import AugmentConfig, ViewGeometry
    from dave_models.datasets import CachedSet
    from dave_models.train import make_batch

    world = _arc_world(0, 6)
    spec = PreprocessSpec()
    data = CachedSet(np.stack([crop_resize(im, spec) for im in world.left]),
                     np.stack([crop_resize(im, spec) for im in world.right]), world.curvature,
                     world.world_seed, arc_free_m=world.arc_free_m, arc_clearance_m=world.arc_clearance_m,
                     curvature_memoryless=world.curvature_memoryless)
    scale = np.repeat(np.array([3.5, 1.0], np.float32), 21)
    geometry = ViewGeometry(fx=100.0, fy=100.0, cx=99.5, cy=10.0, pitch_deg=10.0, height_m=0.3, baseline_m=0.12)
    index = np.arange(6)
    flip = AugmentConfig(flip_prob=1.0, rotate_prob=0.0)
    _, t = make_batch(data, index, spec, np.random.default_rng(0), flip, geometry, 'memoryless', scale)
    np.testing.assert_allclose(t['curvature'], world.curvature)  # memoryless = -expert here, flipped
    np.testing.assert_allclose(t['aux'][:, :21], world.arc_free_m[:, ::-1] / 3.5, rtol=1e-6)
    np.testing.assert_allclose(t['aux'][:, 21:], world.arc_clearance_m[:, ::-1], rtol=1e-6)
    assert t['aux_mask'].tolist() == [1.0] * 6 and np.array_equal(t['expert'], world.curvature)
    rotate = AugmentConfig(flip_prob=0.0, rotate_prob=1.0)
    _, t = make_batch(data, index, spec, np.random.default_rng(0), rotate, geometry, 'expert', scale)
    assert t['aux_mask'].tolist() == [0.0] * 6
    assert not np.allclose(t['curvature'], world.curvature)  # corrected labels
    shift = AugmentConfig(flip_prob=0.0, rotate_prob=0.0, shift_prob=1.0)
    _, t = make_batch(data, index, spec, np.random.default_rng(0), shift, geometry, 'expert', scale)
    assert t['aux_mask'].tolist() == [0.0] * 6 and not np.allclose(t['curvature'], world.curvature)
    _, t = make_batch(data, index, spec, None, None, geometry, 'expert', scale)
    np.testing.assert_allclose(t['aux'][:, :21], world.arc_free_m / 3.5, rtol=1e-6)


def test_arc_head_with_aux_loss_trains_exports_and_reports_both_labels(tmp_path):
    data = _arc_dataset(tmp_path / 'data')
    out = tmp_path / 'train'
    assert _run(train_command, ['steering', '--data', str(data), '--out', str(out), '--dry-run',
                                '--batch-size', '4', '--threads', '1', '--val-seeds', '2', '--head', 'arcs',
                                '--aux-weight', '1', '--label', 'memoryless', '--mse-weight', '2']) == 0
    checkpoint = torch.load(out / 'last.pt', weights_only=True)
    assert checkpoint['model_config']['head'] == 'arcs' and checkpoint['model_config']['aux_arcs'] == 21
    metrics = checkpoint['metrics']
    assert {'val_mae', 'val_expert_mae', 'val_expert_direction_accuracy'} <= metrics.keys()
    # The data's arc labels say where the expert's direction was a near-tie.
    assert 0 <= metrics['val_direction_near_tie_fraction'] <= 1 and 'val_direction_accuracy_decisive' in metrics
    report = export_checkpoint(out / 'last.pt', tmp_path / 'steering.onnx')
    assert report.max_abs_diff <= PARITY_ATOL
    assert OnnxModel.load(tmp_path / 'steering.onnx').output_names == ['curvature_per_m']
    # The arcs head's curvature is a mean over the fan, so it stays inside it.
    model = SteeringNet(SteeringNetConfig.from_dict(checkpoint['model_config']))
    model.load_state_dict(checkpoint['state_dict'])
    model.eval()
    with torch.no_grad():
        curvature = model(torch.randn(5, 6, 66, 200) * 10)[0]
    assert curvature.abs().max() <= 1.5 + 1e-6
    # Data without the arrays: one clear error each.
    plain = write_dataset(tmp_path / 'plain', seeds=range(3), frames=4)
    assert _run(train_command, ['steering', '--data', str(plain), '--out', str(tmp_path / 'x'), '--dry-run',
                                '--val-seeds', '2', '--head', 'arcs']) == 2
    assert _run(train_command, ['steering', '--data', str(plain), '--out', str(tmp_path / 'y'), '--dry-run',
                                '--val-seeds', '2', '--label', 'memoryless']) == 2


def test_init_with_aux_weight_adds_the_auxiliary_head_to_the_checkpoint_trunk(tmp_path):
    data = _arc_dataset(tmp_path / 'data')
    common = ['--data', str(data), '--dry-run', '--batch-size', '4', '--threads', '1', '--val-seeds', '2',
              '--head', 'arcs']
    assert _run(train_command, ['steering', *common, '--out', str(tmp_path / 'first')]) == 0
    assert _run(train_command, ['steering', *common, '--out', str(tmp_path / 'aux'), '--aux-weight', '1',
                                '--lr', '1e-9', '--init', str(tmp_path / 'first' / 'last.pt')]) == 0
    first = torch.load(tmp_path / 'first' / 'last.pt', weights_only=True)
    tuned = torch.load(tmp_path / 'aux' / 'last.pt', weights_only=True)
    assert first['model_config']['aux_arcs'] == 0 and tuned['model_config']['aux_arcs'] == 21
    assert {k for k in tuned['state_dict'] if k.startswith('aux.')} == {'aux.weight', 'aux.bias'}
    # The trunk starts from the checkpoint (a negligible lr leaves its weights where they were).
    weights = [k for k in first['state_dict'] if k.endswith('weight') and first['state_dict'][k].dim() > 1]
    assert weights and all(torch.allclose(first['state_dict'][k], tuned['state_dict'][k], atol=1e-6)
                           for k in weights)
    # Starting from the model with the head and no --aux-weight keeps it (unused) rather than failing.
    assert _run(train_command, ['steering', *common, '--out', str(tmp_path / 'again'),
                                '--init', str(tmp_path / 'aux' / 'last.pt')]) == 0


def test_init_with_predict_speed_adds_a_speed_output_to_the_trained_head(tmp_path):
    data = _arc_dataset(tmp_path / 'data')  # speed label 1.0 m/s everywhere
    common = ['--data', str(data), '--dry-run', '--batch-size', '4', '--threads', '1', '--val-seeds', '2',
              '--head', 'arcs']
    assert _run(train_command, ['steering', *common, '--out', str(tmp_path / 'first')]) == 0
    assert _run(train_command, ['steering', *common, '--out', str(tmp_path / 'speed'), '--predict-speed',
                                '--lr', '1e-9', '--init', str(tmp_path / 'first' / 'last.pt')]) == 0
    first = torch.load(tmp_path / 'first' / 'last.pt', weights_only=True)
    tuned = torch.load(tmp_path / 'speed' / 'last.pt', weights_only=True)
    assert not first['model_config']['predict_speed'] and tuned['model_config']['predict_speed']
    # The arc rows are the checkpoint's; the new rows start at the mean moving speed and at
    # the log-odds of turning in place (never, here: clipped to 0.1 %).
    old, new = first['state_dict'], tuned['state_dict']
    assert new['out.weight'].shape[0] == old['out.weight'].shape[0] + 2
    assert torch.allclose(new['out.weight'][:-2], old['out.weight'], atol=1e-6)
    assert new['out.bias'][-2].item() == pytest.approx(1.0, abs=1e-3)
    assert new['out.bias'][-1].item() == pytest.approx(math.log(1e-3 / (1 - 1e-3)), abs=1e-2)
    metrics = tuned['metrics']
    assert metrics['val_speed_mae'] < 0.05  # a constant label, started at its mean
    assert 'val_turn_in_place_recall' not in metrics  # no frame of the label turns in place
    export_checkpoint(tmp_path / 'speed' / 'last.pt', tmp_path / 'steering.onnx')
    assert OnnxModel.load(tmp_path / 'steering.onnx').output_names == ['curvature_per_m', 'speed_mps']


def test_turn_in_place_logit_zeroes_the_speed_and_is_trained_on_the_experts_zero_speeds():
    from dave_models.train import steering_loss
    from dave_models.train_config import SteeringTrainConfig

    config = SteeringNetConfig(predict_speed=True, turn_in_place=True)
    model = SteeringNet(config).eval()
    with torch.no_grad():
        model.out.bias[2] = 10.0  # the logit fires everywhere
        curvature, speed = model(torch.randn(2, 6, 66, 200))
    assert speed.abs().max() == 0.0
    outputs = {'curvature': torch.zeros(2, 1), 'speed_raw': torch.tensor([[0.5], [0.5]]),
               'turn_in_place_logit': torch.tensor([[-20.0], [20.0]])}
    targets = {'curvature': np.zeros(2, np.float32), 'speed': np.array([0.5, 0.0], np.float32)}
    train_config = SteeringTrainConfig(data='d', out='o')
    # Right on both: the moving frame's speed, the boxed-in frame's logit; the raw speed of a
    # frame that turns in place is not trained.
    assert steering_loss(outputs, targets, config, train_config, torch.device('cpu')).item() < 1e-6
    with pytest.raises(ValueError, match='turn_in_place needs predict_speed'):
        SteeringNetConfig(turn_in_place=True)


def test_speed_metrics_score_turn_in_place_by_the_pilots_threshold():
    from dave_models.train import speed_metrics

    target = np.array([0.0, 0.0, 0.5, 0.8])  # the expert turns in place on the first two frames
    metrics = speed_metrics(np.array([0.05, 0.3, 0.1, 0.8]), target)
    assert metrics['speed_mae'] == pytest.approx((0.05 + 0.3 + 0.4 + 0.0) / 4)
    assert metrics['turn_in_place_recall'] == 0.5 and metrics['turn_in_place_precision'] == 0.5
    assert speed_metrics(np.array([0.5]), np.array([0.6])).keys() == {'speed_mae'}


def test_direction_readout_picks_the_most_probable_direction_then_its_mean_arc():
    from dave_models.steering_net import arc_sides, direction_readout

    arcs = torch.tensor(FAN, dtype=torch.float32)
    i = {round(k, 2): n for n, k in enumerate(FAN)}  # arc index by curvature

    def probabilities(**mass):  # e.g. s0=0.4 -> 0.4 on the straight arc; l30 -> +0.30, r15 -> -0.15
        p = torch.zeros(21)
        for name, value in mass.items():
            p[i[(1 if name[0] == 'l' else -1 if name[0] == 'r' else 0) * int(name[1:]) / 100]] = value
        return p

    batch = torch.stack([
        probabilities(s0=0.4, l15=0.3, l30=0.3),  # left wins (0.6): its mean arc
        probabilities(s0=0.4, l30=0.35, r15=0.25),  # straight wins although the fan's mean is 0.0675
        probabilities(s0=0.2, r150=0.5, r15=0.3),  # right wins: the mean of its arcs only
        probabilities(l15=0.5, r15=0.5),  # a tie of the two sides: one of them, never between
    ])
    out = direction_readout(batch, arcs, arc_sides(arcs))[:, 0]
    assert out[0].item() == pytest.approx(0.225) and out[1].item() == 0.0
    assert out[2].item() == pytest.approx((0.5 * -1.5 + 0.3 * -0.15) / 0.8)
    assert abs(out[3].item()) == pytest.approx(0.15)
    assert (batch[1] * arcs).sum().item() == pytest.approx(0.0675)  # the mean readout: "left" at 0.05


def test_arc_readout_is_a_training_flag_exported_in_the_graph(tmp_path, caplog):
    data = _arc_dataset(tmp_path / 'data')
    common = ['--data', str(data), '--dry-run', '--batch-size', '4', '--threads', '1', '--val-seeds', '2']
    assert _run(train_command, ['steering', *common, '--out', str(tmp_path / 'mean'), '--head', 'arcs']) == 0
    assert _run(train_command, ['steering', *common, '--out', str(tmp_path / 'dir'), '--head', 'arcs',
                                '--arc-readout', 'direction', '--init', str(tmp_path / 'mean' / 'last.pt')]) == 0
    checkpoint = torch.load(tmp_path / 'dir' / 'last.pt', weights_only=True)
    assert checkpoint['model_config']['arc_readout'] == 'direction'
    assert export_checkpoint(tmp_path / 'dir' / 'last.pt', tmp_path / 'dir.onnx').max_abs_diff <= PARITY_ATOL
    # The graph outputs only fan arcs' direction means: never a curvature strictly inside (0, 0.15).
    model = OnnxModel.load(tmp_path / 'dir.onnx')
    rng = np.random.default_rng(0)
    out = np.array([model.run({'stereo': rng.normal(0, 3, (1, 6, 66, 200)).astype(np.float32)})
                    ['curvature_per_m'].item() for _ in range(20)])
    assert np.all((out == 0) | (np.abs(out) >= 0.15 - 1e-6))
    assert _run(train_command, ['steering', *common, '--out', str(tmp_path / 'reg'), '--arc-readout',
                                'direction']) == 2
    assert '--arc-readout direction: only the arcs head' in caplog.text and not (tmp_path / 'reg' / 'last.pt').exists()


def test_sim_dataset_stores_privileged_labels_and_replays_without_rendering(tmp_path):
    pytest.importorskip('mujoco')
    from dave_models.sim_dataset import SimDatasetConfig, generate

    config = SimDatasetConfig(frames_per_world=5)
    made = load_manifest(generate([3], tmp_path / 'made', config, 'test'))
    samples = read_shard(made, made.shards[0])
    assert samples.arc_free_m.shape == (5, 21) and samples.arc_clearance_m.shape == (5, 21)
    assert samples.curvature_memoryless.shape == (5,) and made.source['arc_curvatures'] == FAN.tolist()
    assert np.isin(samples.curvature, FAN.astype(np.float32)).all()
    # Replaying gives byte-identical shards (so the images of a replay are the drive's own).
    replayed = load_manifest(generate([3], tmp_path / 'replayed', config, 'test', tmp_path / 'made'))
    assert replayed.data_id == made.data_id and replayed.source['replayed_from'] == made.data_id
    # A data set whose labels do not come from this drive is refused.
    samples.curvature[2] += 0.15
    with ShardWriter(tmp_path / 'other', made.source) as writer:
        writer.add(samples)
    with pytest.raises(DatasetError, match='world 3 frame 2: the replayed drive differs'):
        generate([3], tmp_path / 'bad', config, 'test', tmp_path / 'other')


def test_sim_dataset_fragility_label_is_added_by_a_replay_and_split_by_steering_eval(tmp_path):
    pytest.importorskip('mujoco')
    from types import SimpleNamespace

    from dave_models.sim_dataset import SimDatasetConfig, generate
    from dave_models.steering_eval import evaluate_worlds

    made = load_manifest(generate([3], tmp_path / 'made', SimDatasetConfig(frames_per_world=8), 'test'))
    assert read_shard(made, made.shards[0]).direction_fragile is None  # off by default
    replayed = load_manifest(generate([3], tmp_path / 'fragile', SimDatasetConfig(frames_per_world=8, fragility=True),
                                      'test', tmp_path / 'made'))
    before, after = read_shard(made, made.shards[0]), read_shard(replayed, replayed.shards[0])
    assert after.direction_fragile.dtype == np.int8 and after.direction_fragile.shape == (8,)
    assert np.isin(after.direction_fragile, (0, 1)).all()
    assert np.array_equal(after.left, before.left) and np.array_equal(after.curvature, before.curvature)
    with pytest.raises(ValueError, match='--fragility needs --expert reactive'):
        SimDatasetConfig(expert='planner', fragility=True)
    bad = dataclasses.replace(after, direction_fragile=np.full(8, 2, np.int8))
    with pytest.raises(DatasetError, match='direction_fragile must hold only 0 or 1'), \
            ShardWriter(tmp_path / 'bad', {}) as writer:
        writer.add(bad)

    class Straight:  # a model that always says "straight"
        def predict(self, left, right):
            return SimpleNamespace(curvature_per_m=0.0, speed_mps=None)

    # One frame made fragile by hand, so both splits exist whatever this short drive met.
    labels = np.zeros(8, np.int8)
    labels[0] = 1
    with ShardWriter(tmp_path / 'split', replayed.source) as writer:
        writer.add(dataclasses.replace(after, direction_fragile=labels))
    figures = evaluate_worlds(Straight(), load_manifest(tmp_path / 'split'), {3}, 0.05)
    straight = np.abs(after.curvature) <= 0.05
    assert figures['frames_fragile'] == pytest.approx(1 / 8)
    assert figures['direction_accuracy_fragile'] == float(straight[0])
    assert figures['direction_accuracy_robust'] == pytest.approx(straight[1:].mean())


def test_arcs_loss_adds_the_weighted_mse_of_the_mean_curvature():
    from dave_models.train import steering_loss
    from dave_models.train_config import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    net_config = SteeringNetConfig(head='arcs', arc_curvatures=tuple(FAN))
    logits = torch.randn(4, 21)
    outputs = {'arc_logits': logits, 'curvature': (torch.softmax(logits, 1) * torch.tensor(FAN, dtype=torch.float32)).sum(1, keepdim=True)}
    targets = {'curvature': np.array([0.0, 1.5, -0.3, 0.6], np.float32)}
    losses = [steering_loss(outputs, targets, net_config,
                            config_from_args(parser.parse_args(['--data', 'd', '--out', 'o', '--mse-weight', w])),
                            torch.device('cpu')).item() for w in ('0', '3')]
    mse = float(np.mean((outputs['curvature'][:, 0].numpy() - targets['curvature']) ** 2))
    assert losses[1] - losses[0] == pytest.approx(3 * mse, rel=1e-5)
    assert losses[0] > 0  # cross-entropy against two-hot targets


def test_direction_loss_is_the_cross_entropy_of_the_side_probabilities(dataset, tmp_path, caplog):
    from dave_models.train import steering_loss
    from dave_models.train_config import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    net_config = SteeringNetConfig(head='arcs', arc_curvatures=tuple(FAN))
    logits = torch.randn(4, 21)
    outputs = {'arc_logits': logits, 'curvature': torch.zeros(4, 1)}
    targets = {'curvature': np.array([0.0, 1.5, -0.3, 0.03], np.float32)}  # straight, left, right, straight
    losses = [steering_loss(outputs, targets, net_config,
                            config_from_args(parser.parse_args(['--data', 'd', '--out', 'o', '--direction-weight', w])),
                            torch.device('cpu')).item() for w in ('0', '2')]
    p = torch.softmax(logits, 1).numpy()
    fan = np.asarray(FAN)
    side = {-1: p[:, fan < -1e-9].sum(1), 0: p[:, np.abs(fan) < 1e-9].sum(1), 1: p[:, fan > 1e-9].sum(1)}
    expected = -np.mean(np.log([side[c][i] for i, c in enumerate((0, 1, -1, 0))]))
    assert losses[1] - losses[0] == pytest.approx(2 * expected, rel=1e-5)
    # The regression head has no side probabilities: one error, nothing trained.
    assert _run(train_command, ['steering', '--data', str(dataset), '--out', str(tmp_path / 'r'), '--dry-run',
                                '--val-seeds', '3', '--direction-weight', '1']) == 2
    assert '--direction-weight: only the arcs head' in caplog.text and not (tmp_path / 'r' / 'last.pt').exists()


# --- steering from a frozen traversability network (--perception) ----------------------------

def _perception_checkpoint(path, height=96, width=128):  # big enough for the head's strides
    """A traversability checkpoint as dave_models.traversability_train writes it (random weights)."""
    from dave_core.segmentation import SegmentationSpec
    from dave_models.traversability_net import TraversabilityNet, TraversabilityNetConfig
    torch.manual_seed(3)
    config = TraversabilityNetConfig(height=height, width=width)
    net = TraversabilityNet(config)
    for module in net.modules():  # non-trivial BatchNorm statistics, which must survive training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    spec = SegmentationSpec(height=height, width=width, mean=(0.3, 0.5, 0.5), std=(0.2, 0.05, 0.05))
    torch.save({'format': 'dave-traversability-checkpoint', 'model_config': config.to_dict(),
                'preprocess': spec.to_dict(), 'state_dict': net.state_dict(), 'data_id': 'trav-test'}, path)
    return path


def test_perception_steering_keeps_the_network_frozen_and_exports_one_graph(dataset, tmp_path):
    trav = _perception_checkpoint(tmp_path / 'trav.pt')
    out = tmp_path / 'train'
    assert _run(train_command, ['steering', '--data', str(dataset), '--out', str(out), '--dry-run',
                                '--batch-size', '4', '--threads', '1', '--val-seeds', '3',
                                '--perception', str(trav)]) == 0
    checkpoint = torch.load(out / 'last.pt', weights_only=True)
    before = torch.load(trav, weights_only=True)['state_dict']
    after = {k[len('perception.'):]: v for k, v in checkpoint['state_dict'].items() if k.startswith('perception.')}
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)  # weights and BatchNorm statistics
    assert checkpoint['perception']['data_id'] == 'trav-test'
    # The input is the traversability network's: whole image, its size and normalization.
    spec = PreprocessSpec.from_dict(checkpoint['preprocess'])
    assert (spec.crop_top, spec.crop_bottom, spec.height, spec.width) == (0.0, 0.0, 96, 128)
    assert spec.mean == (0.3, 0.5, 0.5) and spec.std == (0.2, 0.05, 0.05)
    onnx_path = tmp_path / 'steering.onnx'
    assert export_checkpoint(out / 'last.pt', onnx_path).max_abs_diff <= PARITY_ATOL
    # The sidecar names both data sets: the steering data and the perception's.
    assert load_contract(onnx_path).training_data_id == f'{checkpoint["data_id"]}+trav-test'
    pair = synthetic_world(9, 1)
    output = SteeringPredictor.load(onnx_path).predict(pair.left[0], pair.right[0])
    assert np.isfinite(output.curvature_per_m)
    # Resumed without repeating --perception, the run keeps that record (the sidecar's data id).
    assert _run(train_command, ['steering', '--data', str(dataset), '--out', str(out), '--resume', '--epochs', '2',
                                '--batch-size', '4', '--threads', '1', '--val-seeds', '3']) == 0
    assert torch.load(out / 'last.pt', weights_only=True)['perception']['data_id'] == 'trav-test'


def test_fine_tuning_from_init_trains_the_perception_weights_but_not_its_statistics(dataset, tmp_path, caplog):
    trav = _perception_checkpoint(tmp_path / 'trav.pt')
    common = ['--data', str(dataset), '--dry-run', '--batch-size', '4', '--threads', '1', '--val-seeds', '3']
    assert _run(train_command, ['steering', *common, '--out', str(tmp_path / 'first'), '--perception', str(trav)]) == 0
    first = torch.load(tmp_path / 'first' / 'last.pt', weights_only=True)
    assert _run(train_command, ['steering', *common, '--out', str(tmp_path / 'tuned'), '--init',
                                str(tmp_path / 'first' / 'last.pt'), '--perception-lr', '0.01']) == 0
    tuned = torch.load(tmp_path / 'tuned' / 'last.pt', weights_only=True)
    before, after = first['state_dict'], tuned['state_dict']
    perception = [k for k in before if k.startswith('perception.')]
    weights = [k for k in perception if k.endswith('weight')]
    statistics = [k for k in perception if k.endswith(('running_mean', 'running_var'))]
    assert weights and statistics
    assert any(not torch.equal(before[k], after[k]) for k in weights)  # fine-tuned
    assert all(torch.equal(before[k], after[k]) for k in statistics)  # BatchNorm stays frozen
    assert tuned['perception'] == first['perception'] and tuned['init'].endswith('last.pt')
    assert tuned['preprocess'] == first['preprocess']
    assert export_checkpoint(tmp_path / 'tuned' / 'last.pt', tmp_path / 'tuned.onnx').max_abs_diff <= PARITY_ATOL
    # Bad combinations and files: one error each, naming the culprit.
    plain = tmp_path / 'plain'
    assert _run(train_command, ['steering', *common, '--out', str(plain), '--perception-lr', '0.01']) == 2
    assert '--perception-lr' in caplog.text and not (plain / 'last.pt').exists()
    assert _run(train_command, ['steering', *common, '--out', str(plain), '--perception', str(trav),
                                '--init', str(tmp_path / 'first' / 'last.pt')]) == 2
    assert '--init and --perception' in caplog.text
    missing = tmp_path / 'nope.pt'
    assert _run(train_command, ['steering', *common, '--out', str(plain), '--init', str(missing)]) == 2
    assert f'--init: {missing} not found' in caplog.text
    assert _run(train_command, ['steering', *common, '--out', str(plain), '--init', str(trav)]) == 2
    assert f'--init: {trav} is not a' in caplog.text


def test_perception_input_is_exactly_what_the_traversability_network_sees():
    from dave_core.model_contract import load_contract
    from dave_core.segmentation import SegmentationSpec, preprocess_left
    from dave_core.paths import project_file
    seg = SegmentationSpec.from_dict(load_contract(project_file('models/traversability.onnx')).preprocessing)
    spec = PreprocessSpec(crop_top=0.0, height=seg.height, width=seg.width, color_space=seg.color_space,
                          interpolation=seg.interpolation, mean=seg.mean, std=seg.std)
    rng = np.random.default_rng(0)
    left, right = (rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(2))
    stereo = preprocess_stereo(left, right, spec)
    np.testing.assert_allclose(stereo[:3], preprocess_left(left, seg), atol=1e-5)
    np.testing.assert_allclose(stereo[3:], preprocess_left(right, seg), atol=1e-5)


@pytest.mark.parametrize('make, message', [
    (lambda p: None, 'not found'),
    (lambda p: p.write_bytes(b'not a checkpoint'), 'not a readable checkpoint'),
    (lambda p: torch.save({'format': 'dave-steering-checkpoint'}, p), 'is not a dave-traversability-checkpoint'),
])
def test_a_bad_perception_checkpoint_is_one_error_naming_it(dataset, tmp_path, caplog, make, message):
    bad = tmp_path / 'trav.pt'
    make(bad)
    assert _run(train_command, ['steering', '--data', str(dataset), '--out', str(tmp_path / 'run'), '--dry-run',
                                '--val-seeds', '3', '--perception', str(bad)]) == 2
    assert f'--perception: {bad}' in caplog.text and message in caplog.text
    assert not (tmp_path / 'run' / 'last.pt').exists()


def test_precise_batchnorm_statistics_are_those_of_the_final_weights(dataset):
    from dave_models.datasets import load_cached
    from dave_models.train import make_batch, recompute_batchnorm
    manifest = load_manifest(dataset)
    spec = PreprocessSpec(height=H, width=W, crop_top=0.0)
    data = load_cached(manifest, spec, manifest.world_seeds)
    torch.manual_seed(0)
    model = SteeringNet(SteeringNetConfig(height=H, width=W, convs=((8, 5, 2), (8, 3, 1)), fc=(8,)))
    first_bn = model.features[1]
    first_bn.running_mean.fill_(5.0)  # stale statistics, as after fast-moving training
    batches = [np.arange(0, 16), np.arange(16, 32)]
    assert recompute_batchnorm(model, batches, data, spec, torch.device('cpu')) == 2
    inputs = np.concatenate([make_batch(data, b, spec, None, None)[0] for b in batches])
    with torch.no_grad():
        conv_out = model.features[0](torch.from_numpy(inputs))
    np.testing.assert_allclose(first_bn.running_mean.numpy(), conv_out.mean(dim=(0, 2, 3)).numpy(), atol=1e-5)
    assert first_bn.momentum == 0.1  # restored for further training


def test_dagger_data_is_driven_by_the_model_and_labelled_by_the_expert(tmp_path):
    from dave_core.paths import project_file
    from dave_models.sim_dataset import SimDatasetConfig, drive_world, main as sim_dataset_main

    model = str(project_file('models/steering.onnx'))
    expert_only = SimDatasetConfig(frames_per_world=30, camera_rate_hz=10.0, dart_noise=False)
    learner_only = SimDatasetConfig(frames_per_world=30, camera_rate_hz=10.0, dart_noise=False,
                                    driver=model, driver_share=1.0)
    mixed = SimDatasetConfig(frames_per_world=30, camera_rate_hz=10.0, driver=model)
    # A good model copies the clean expert's first 3 s exactly in some worlds (the shipped p6 in
    # worlds 0, 3, 4, 5, 7), so take the first of a few where it departs (p6: world 1).
    for world in (1, 2, 4, 6):
        a, _ = drive_world(world, expert_only)
        b, _ = drive_world(world, learner_only)
        if not np.array_equal(a.left[-1], b.left[-1]):  # the model drove elsewhere
            break
    else:
        pytest.fail('the model drove exactly as the expert in worlds 1, 2, 4 and 6')
    assert np.array_equal(a.left[0], b.left[0])  # same start
    c1, _ = drive_world(world, mixed)
    c2, _ = drive_world(world, mixed)
    assert np.array_equal(c1.left, c2.left) and np.array_equal(c1.curvature, c2.curvature)  # deterministic
    assert np.all(np.isfinite(b.curvature)) and b.arc_free_m is not None  # expert labels on every frame
    assert sim_dataset_main(['--seeds', '3', '--frames-per-world', '2', '--driver', str(tmp_path / 'none.onnx'),
                             '--out', str(tmp_path / 'x')]) == 2
    assert sim_dataset_main(['--seeds', '3', '--driver-share', '1.5', '--out', str(tmp_path / 'y')]) == 2


@pytest.mark.parametrize('write, culprit', [
    (lambda p: p.write_text('hello, a text file'), 'not a torch checkpoint (not a file torch.save writes)'),
    (lambda p: p.write_bytes(b''), 'not a torch checkpoint'),
    (lambda p: torch.save({'task': ['steering']}, p), "key 'task' is ['steering']; exportable tasks"),
])
def test_export_of_what_is_no_checkpoint_is_one_error_naming_it(tmp_path, write, culprit):
    checkpoint = tmp_path / 'model.pt'
    write(checkpoint)
    with pytest.raises(ExportError) as error:
        export_module.export_any(checkpoint, tmp_path / 'model.onnx')  # what `dave export` calls
    assert str(error.value).startswith(f'{checkpoint}: ') and culprit in str(error.value)
    assert not (tmp_path / 'model.onnx').exists()
