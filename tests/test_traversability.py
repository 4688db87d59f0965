"""Traversability: data from `dave collect` bags (ground-truth and stereo labels), dry-run training,
ONNX export parity, argmax postprocessing, and the node publishing /traversability/labels in a
real rclpy graph.

One tiny collection (3 worlds, 160x120, 0.8 s each) feeds everything, so the file stays fast.
"""
import json
import shutil
import time
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest
import torch

from dave_cli.cli import main as dave_main
from dave_core import recording as rec
from dave_core.model_contract import ModelContractError, load_sidecar, sidecar_path_for
from dave_core.segmentation import (CLASS_IDS, SegmentationSpec, TraversabilitySegmenter,
                                    labels_from_logits, preprocess_left)
from dave_core.stereo_geometry import IGNORE, StereoLabelConfig
from dave_models.export import ExportError, export_any
from dave_models.traversability_data import (TraversabilityDataError, build_dataset, find_bags,
                                             read_bag)
from dave_models.traversability_net import TraversabilityNet, TraversabilityNetConfig
from dave_models.traversability_train import confusion_matrix, iou_metrics, load_stereo_config
from dave_sim.camera import StereoCameraConfig
from dave_sim.collect import CollectConfig, collect

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [3, 4, 5]
CAMERA = StereoCameraConfig(width=160, height=120)
FRAMES = 12  # 0.8 s at 15 Hz


def train_main(argv: list[str]) -> int:
    """`dave train traversability ARGV`, the way users run it."""
    return dave_main(['train', 'traversability', *argv])


@pytest.fixture(scope='module')
def collection(tmp_path_factory):
    out = tmp_path_factory.mktemp('collect')
    config = CollectConfig(duration_s=0.8, camera=CAMERA)
    collect(out, SEEDS, config, workers=1, worker_env={'LP_NUM_THREADS': '1'}, progress=False)
    return out


@pytest.fixture(scope='module')
def trained(collection, tmp_path_factory):
    """A dry-run checkpoint and its export: (training dir, onnx path)."""
    out = tmp_path_factory.mktemp('train')
    code = train_main(['--data', str(collection), '--out', str(out / 'run'), '--val-seeds', '5',
                       '--batch-size', '8', '--dry-run'])
    assert code == 0
    onnx_path = out / 'traversability.onnx'
    export_any(out / 'run' / 'last.pt', onnx_path)
    return out / 'run', onnx_path


# ---------------------------------------------------------------- data

def test_dataset_pairs_every_image_with_its_labels_and_splits_by_world(collection, tmp_path):
    data = build_dataset(collection, tmp_path / 'cache')
    assert len(data) == FRAMES * len(SEEDS)
    assert data.images.shape == (len(data), 120, 160, 3) and data.images.dtype == np.uint8
    assert data.labels.shape == (len(data), 120, 160) and set(np.unique(data.labels)) <= {0, 1, 2}
    assert data.world_seeds == SEEDS and data.camera_size == (160, 120)
    # GT labels of the simulator: sky (2) on top, ground (0) at the bottom of every frame.
    assert np.mean(data.labels[:, 0] == 2) > 0.9 and np.mean(data.labels[:, -1] == 0) > 0.9
    held = data.select([5])
    assert len(held) == FRAMES and set(held.world_seed) == {5}
    # Second build: same content from the cache, without touching the bags.
    cached = sorted((tmp_path / 'cache').glob('*.npz'))
    assert len(cached) == len(SEEDS)
    mtimes = [p.stat().st_mtime_ns for p in cached]
    again = build_dataset(collection, tmp_path / 'cache')
    assert again.data_id == data.data_id and [p.stat().st_mtime_ns for p in cached] == mtimes
    np.testing.assert_array_equal(again.labels, data.labels)


def test_dataset_resizes_labels_without_blending_classes(collection):
    bag = find_bags(collection)[0]
    images, labels, camera = read_bag(bag, SegmentationSpec(height=60, width=80))
    assert camera == (160, 120) and images.shape == (FRAMES, 60, 80, 3)
    assert set(np.unique(labels)) <= {0, 1, 2}


def _bag(path, left_size, label_size, stamps=(1_000_000_000,)):
    with rec.RecordingWriter(path, (rec.LEFT_IMAGE, rec.GT_LABELS), compress=False) as writer:
        for ns in stamps:
            writer.write(rec.LEFT_IMAGE, rec.image_msg(np.zeros(left_size[::-1] + (3,), np.uint8), 'rgb8',
                                                       ns, rec.LEFT_OPTICAL_FRAME), ns)
            writer.write(rec.GT_LABELS, rec.image_msg(np.zeros(label_size[::-1], np.uint8), 'mono8',
                                                      ns + 1, rec.LEFT_OPTICAL_FRAME), ns)


def test_dataset_errors_name_the_culprit(tmp_path, collection):
    with pytest.raises(TraversabilityDataError, match='no rosbag2 recordings'):
        build_dataset(tmp_path, tmp_path / 'cache')
    # Labels whose stamps match no image: no samples, and the bag is named.
    _bag(tmp_path / 'bags' / 'seed_000001', (32, 24), (32, 24))
    with pytest.raises(TraversabilityDataError, match=r'seed_000001: no samples'):
        build_dataset(tmp_path / 'bags', tmp_path / 'cache')
    with rec.RecordingWriter(tmp_path / 'sizes' / 'seed_000002', (rec.LEFT_IMAGE, rec.GT_LABELS),
                             compress=False) as writer:
        writer.write(rec.LEFT_IMAGE, rec.image_msg(np.zeros((24, 32, 3), np.uint8), 'rgb8', 5, 'f'), 5)
        writer.write(rec.GT_LABELS, rec.image_msg(np.zeros((12, 16), np.uint8), 'mono8', 5, 'f'), 5)
    with pytest.raises(TraversabilityDataError, match=r'seed_000002: .*32x24 but the labels are 16x12'):
        build_dataset(tmp_path / 'sizes', tmp_path / 'cache')
    # A corrupted cache file (NaN where pixels should be) is named, not silently trained on.
    cache = tmp_path / 'good_cache'
    build_dataset(collection, cache)
    victim = sorted(cache.glob('*.npz'))[0]
    with np.load(victim) as data:
        arrays = dict(data)
    arrays['images'] = np.full(arrays['images'].shape, np.nan, np.float32)
    np.savez(victim, **arrays)
    with pytest.raises(TraversabilityDataError, match=f'{victim.name}: images contain NaN'):
        build_dataset(collection, cache)


# ---------------------------------------------------------------- stereo labels

@pytest.fixture(scope='module')
def stereo_cache(tmp_path_factory):
    """One cache directory for the tests that label the collection with the default settings."""
    return tmp_path_factory.mktemp('stereo_cache')


def test_stereo_set_keeps_ground_truth_for_scoring_and_its_own_cache(collection, stereo_cache):
    cache = stereo_cache
    gt = build_dataset(collection, cache)
    stereo = build_dataset(collection, cache, labels='stereo')
    assert stereo.label_source == 'stereo' and stereo.data_id != gt.data_id
    np.testing.assert_array_equal(stereo.images, gt.images)
    np.testing.assert_array_equal(stereo.gt_labels, gt.labels)  # the truth rides along for scoring
    assert IGNORE in stereo.labels and set(np.unique(stereo.labels)) <= {0, 1, 2, IGNORE}
    assert stereo.far.dtype == bool and 0 < stereo.far.mean() < 0.5
    # Beyond range the labeller mostly abstains (stereo depth errors let a few far pixels in).
    surfaces = stereo.gt_labels != 2
    labelled_far = np.mean(stereo.labels[stereo.far & surfaces] != IGNORE)
    labelled_near = np.mean(stereo.labels[~stereo.far & surfaces] != IGNORE)
    assert labelled_far < 0.3 < labelled_near, (labelled_far, labelled_near)
    # What stereo calls ground is ground: calibration (baseline sign, fx) was read right.
    ground = stereo.labels == 0
    assert ground.mean() > 0.2 and np.mean(stereo.gt_labels[ground] == 0) > 0.95
    # gt and stereo caches sit side by side; a second build reads them without relabelling.
    files = sorted(cache.glob('*.npz'))
    stereo_files = [f for f in files if '_stereo-' in f.name]
    assert len(files) == 2 * len(SEEDS) and len(stereo_files) == len(SEEDS)
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = build_dataset(collection, cache, labels='stereo')
    assert again.data_id == stereo.data_id and [f.stat().st_mtime_ns for f in files] == mtimes
    np.testing.assert_array_equal(build_dataset(collection, cache).labels, gt.labels)
    # Another labeller configuration is another cache, never the old one.
    nearer = build_dataset(collection, cache, labels='stereo', stereo=StereoLabelConfig(max_range_m=4.0))
    assert len(list(cache.glob('*.npz'))) == 3 * len(SEEDS)
    assert nearer.far.mean() > stereo.far.mean()
    for file in set(cache.glob('*.npz')) - set(stereo_files):
        file.unlink()  # leave only the default stereo labels for the dry run below


def test_stereo_dry_run_scores_against_ground_truth_and_beyond_range(collection, stereo_cache, tmp_path):
    out = tmp_path / 'run'
    assert train_main(['--data', str(collection), '--labels', 'stereo', '--val-seeds', '5', '--batch-size', '8',
                       '--dry-run', '--out', str(out), '--cache', str(stereo_cache)]) == 0
    summary = json.loads((out / 'metrics.json').read_text())
    assert summary['label_source'] == 'stereo' and summary['val_reference'] == 'gt'
    assert summary['stereo_config'] == StereoLabelConfig().to_dict()
    assert 0 < summary['train_labelled_share'] < 1
    record = summary['history'][-1]
    for key in ('val_miou', 'val_far_miou', 'val_stereo_miou', 'val_stereo_far_miou',
                'val_stereo_labelled_accuracy', 'val_stereo_coverage'):
        assert np.isfinite(record[key]), key
    assert record['val_stereo_labelled_accuracy'] > 0.8  # the labels are right where they speak
    assert summary['stereo_labels']['val_stereo_far_miou'] == record['val_stereo_far_miou']
    # The checkpoint carries what export puts in the sidecar (its val_* metrics and label source).
    checkpoint = torch.load(out / 'last.pt', weights_only=True)
    assert checkpoint['label_source'] == 'stereo' and checkpoint['stereo_config'] == summary['stereo_config']
    assert checkpoint['metrics']['val_stereo_far_miou'] == record['val_stereo_far_miou']


def _robot_bags(collection, out, seeds=(3, 4)):
    """Copies of collection bags with only what a robot records (no simulator ground truth)."""
    for seed in seeds:
        source = next(b for b in find_bags(collection) if b.name.endswith(f'{seed:06d}'))
        with rec.RecordingWriter(out / source.name, rec.DRIVING_TOPICS, compress=False) as writer:
            for topic, t, msg in rec.read_messages(source, rec.DRIVING_TOPICS):
                writer.write(topic, msg, t)
    return out


def test_stereo_training_needs_no_ground_truth(collection, tmp_path, caplog):
    bags = _robot_bags(collection, tmp_path / 'robot')
    with pytest.raises(TraversabilityDataError, match=r'seed_000003: no samples .*share no stamp'):
        build_dataset(bags, tmp_path / 'cache2')  # gt labels from a robot's bag: there are none
    # A robot's own labeller settings come from a JSON file; a bad one is refused before any work.
    settings = tmp_path / 'stereo.json'
    settings.write_text('{"num_disparities": 40}')
    args = ['--data', str(bags), '--labels', 'stereo', '--val-seeds', '4', '--batch-size', '8', '--dry-run',
            '--stereo-config', str(settings), '--cache', str(tmp_path / 'cache')]
    assert train_main(args + ['--out', str(tmp_path / 'bad')]) == 2
    assert 'stereo.json: StereoLabelConfig.num_disparities must be a multiple of 16' in caplog.text
    assert not (tmp_path / 'bad' / 'last.pt').exists()
    settings.write_text('{"max_range_m": 6.0, "nominal_pitch_deg": 12.0}')
    out = tmp_path / 'run'
    assert train_main(args + ['--out', str(out)]) == 0
    summary = json.loads((out / 'metrics.json').read_text())
    assert summary['val_reference'] == 'stereo' and summary['stereo_labels'] == {}
    assert summary['stereo_config'] == StereoLabelConfig(max_range_m=6.0, nominal_pitch_deg=12.0).to_dict()
    assert 'val_far_miou' not in summary['history'][-1] and np.isfinite(summary['history'][-1]['val_miou'])
    data = build_dataset(bags, tmp_path / 'cache', labels='stereo', stereo=load_stereo_config(settings))
    assert data.gt_labels is None and data.far is None and len(data) == 2 * FRAMES


def _stereo_bag(path, left_size=(32, 24), right_size=(32, 24), baseline_m=0.12, depth=np.inf,
                stamps=(1_000_000_000,)):
    """A bag with the topics stereo labels read; sizes (width, height)."""
    topics = (rec.LEFT_IMAGE, rec.RIGHT_IMAGE, rec.LEFT_INFO, rec.RIGHT_INFO, rec.GT_LABELS, rec.GT_DEPTH)
    width, height = left_size
    with rec.RecordingWriter(path, topics, compress=False) as writer:
        for ns in stamps:
            image = np.random.default_rng(ns).integers(0, 255, (height, width, 3), dtype=np.uint8)
            right = np.random.default_rng(ns).integers(0, 255, right_size[::-1] + (3,), dtype=np.uint8)
            info = (width, height, 20.0, 20.0, (width - 1) / 2, (height - 1) / 2, ns)
            writer.write(rec.LEFT_IMAGE, rec.image_msg(image, 'rgb8', ns, rec.LEFT_OPTICAL_FRAME), ns)
            writer.write(rec.RIGHT_IMAGE, rec.image_msg(right, 'rgb8', ns, rec.RIGHT_OPTICAL_FRAME), ns)
            writer.write(rec.LEFT_INFO, rec.camera_info_msg(*info, rec.LEFT_OPTICAL_FRAME), ns)
            writer.write(rec.RIGHT_INFO, rec.camera_info_msg(*info, rec.RIGHT_OPTICAL_FRAME, baseline_m), ns)
            writer.write(rec.GT_LABELS, rec.image_msg(np.zeros((height, width), np.uint8), 'mono8', ns,
                                                      rec.LEFT_OPTICAL_FRAME), ns)
            writer.write(rec.GT_DEPTH, rec.image_msg(np.full((height, width), depth, np.float32), '32FC1', ns,
                                                     rec.LEFT_OPTICAL_FRAME), ns)


@pytest.mark.parametrize('make, error', [
    (lambda p: _stereo_bag(p, right_size=(16, 12)), r'left image is 32x24 but the right image is 16x12'),
    (lambda p: _stereo_bag(p, baseline_m=0.0), r'right camera_info P\[3\] is 0'),
    (lambda p: _stereo_bag(p, depth=np.nan), r'/sim/left/depth contains NaN'),
    (lambda p: _stereo_bag(p, stamps=()), r'no samples \(0 /stereo/left/image_raw'),
])
def test_stereo_data_errors_name_the_bag(tmp_path, make, error):
    make(tmp_path / 'bags' / 'seed_000007')
    with pytest.raises(TraversabilityDataError, match=rf'seed_000007: .*{error}'):
        build_dataset(tmp_path / 'bags', tmp_path / 'cache', labels='stereo')


def test_a_failed_run_leaves_trained_checkpoints_alone(collection, trained, tmp_path, caplog):
    run_dir, _ = trained
    bags = tmp_path / 'bags'
    shutil.copytree(find_bags(collection)[0], bags / 'seed_000003')
    mcap = next((bags / 'seed_000003').glob('*.mcap'))
    mcap.write_bytes(mcap.read_bytes()[:mcap.stat().st_size // 3])  # a truncated copy
    with pytest.raises(TraversabilityDataError, match=r'seed_000003: unreadable recording'):
        build_dataset(bags, tmp_path / 'cache', labels='stereo')
    out = tmp_path / 'run'
    shutil.copytree(run_dir, out)
    before = {p.name: p.read_bytes() for p in out.glob('*.pt')}
    code = train_main(['--data', str(bags), '--out', str(out), '--resume', '--epochs', '2'])
    assert code == 2 and 'seed_000003: unreadable recording' in caplog.text
    assert {p.name: p.read_bytes() for p in out.glob('*.pt')} == before


# ---------------------------------------------------------------- metrics and postprocessing

def test_iou_of_a_known_confusion():
    target = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 0, 0, 1, 1, 0, 2, 2])
    m = iou_metrics(confusion_matrix(predicted, target))
    assert m['iou_traversable'] == pytest.approx(3 / 5)  # tp 3, union 3 + 1 fn + 1 fp
    assert m['iou_obstacle'] == pytest.approx(1 / 3)
    assert m['iou_unknown'] == pytest.approx(1.0)
    assert m['miou'] == pytest.approx((3 / 5 + 1 / 3) / 2)  # classes 0 and 1 only
    assert m['pixel_accuracy'] == pytest.approx(6 / 8)


def test_labels_from_logits_is_argmax_then_nearest_upsampling():
    logits = np.zeros((3, 2, 2), np.float32)
    logits[1, 0, 1] = 5.0  # top right: obstacle
    logits[2, 1, :] = 1.0  # bottom row: unknown
    logits[0, 0, 0] = 2.0  # top left: traversable
    labels = labels_from_logits(logits[np.newaxis], 4, 6)
    assert labels.dtype == np.uint8 and labels.shape == (4, 6)
    np.testing.assert_array_equal(labels[:2, :3], 0)
    np.testing.assert_array_equal(labels[:2, 3:], 1)
    np.testing.assert_array_equal(labels[2:], 2)
    with pytest.raises(ValueError, match='NaN'):
        labels_from_logits(np.full((3, 2, 2), np.nan), 4, 6)
    with pytest.raises(ValueError, match=r'shape \(2, 2\)'):
        labels_from_logits(np.zeros((2, 2)), 4, 6)


def test_segmentation_spec_rejects_unknown_keys_also_inside_a_sidecar(trained):
    assert SegmentationSpec.from_dict(SegmentationSpec().to_dict()) == SegmentationSpec()
    with pytest.raises(ValueError, match="unknown key 'crop_top'"):
        SegmentationSpec.from_dict({'crop_top': 0.3})
    _, onnx_path = trained
    contract = load_sidecar(sidecar_path_for(onnx_path))
    with pytest.raises(ModelContractError, match="field 'preprocessing': .*color_space"):
        replace(contract, preprocessing={**contract.preprocessing, 'color_space': 'hsv'})


@pytest.mark.parametrize('class_ids', [
    {'traversable': 1, 'obstacle': 0, 'unknown': 2},  # swapped: labels would be misread
    {'traversable': 0, 'obstacle': 1},
    {'traversable': 0, 'obstacle': 1, 'unknown': 2, 'water': 3},
])
def test_a_model_with_other_classes_is_refused_naming_it(tmp_path, class_ids):
    for name in ('traversability.onnx', 'traversability.json'):
        shutil.copy(ROOT / 'models' / name, tmp_path / name)
    sidecar = tmp_path / 'traversability.json'
    data = json.loads(sidecar.read_text())
    data['class_ids'] = class_ids
    sidecar.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f'{tmp_path / "traversability.onnx"}: class_ids .* differ'):
        TraversabilitySegmenter.load(tmp_path / 'traversability.onnx')
    assert TraversabilitySegmenter.load(ROOT / 'models' / 'traversability.onnx').model.contract.class_ids == CLASS_IDS


# ---------------------------------------------------------------- training and export

def test_dry_run_writes_checkpoint_metrics_and_curve(trained):
    run_dir, _ = trained
    for name in ('last.pt', 'best.pt', 'metrics.json', 'learning_curve.png'):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / 'metrics.json').read_text())
    assert summary['val_worlds'] == [5] and summary['train_worlds'] == [3, 4]
    record = summary['history'][-1]
    for key in ('val_miou', 'val_iou_traversable', 'val_iou_obstacle', 'val_iou_unknown'):
        assert key in record
    assert 0.0 <= record['val_pixel_accuracy'] <= 1.0 and np.isfinite(record['train_loss'])


def test_resume_continues_the_same_run(collection, tmp_path, caplog):
    args = ['--data', str(collection), '--out', str(tmp_path / 'run'), '--cache', str(tmp_path / 'cache'),
            '--val-seeds', '5', '--batch-size', '8', '--no-augment']
    assert train_main(args + ['--epochs', '1']) == 0
    first = json.loads((tmp_path / 'run' / 'metrics.json').read_text())['history']
    assert train_main(args + ['--epochs', '1']) == 2  # a new run must not replace last.pt
    assert train_main(args + ['--epochs', '2', '--resume']) == 0
    history = json.loads((tmp_path / 'run' / 'metrics.json').read_text())['history']
    assert [h['epoch'] for h in history] == [1.0, 2.0] and history[0] == first[0]
    assert torch.load(tmp_path / 'run' / 'last.pt', weights_only=True)['epoch'] == 2
    # A training-time budget that the checkpoint has used up says so (not "nothing to do").
    assert train_main(args + ['--epochs', '3', '--resume', '--max-minutes', '1e-9']) == 2
    assert '--max-minutes 1e-09: the checkpoint has used' in caplog.text
    assert torch.load(tmp_path / 'run' / 'last.pt', weights_only=True)['epoch'] == 2


def test_export_matches_torch_and_carries_its_contract(trained, collection, tmp_path):
    run_dir, onnx_path = trained
    assert onnx_path.stat().st_size < 10 * 2**20
    segmenter = TraversabilitySegmenter.load(onnx_path)
    contract = segmenter.model.contract
    assert contract.class_ids == CLASS_IDS and contract.camera == {'width': 160, 'height': 120}
    assert contract.metrics['val_worlds'] == '5' and contract.metrics['label_source'] == 'gt'
    checkpoint = torch.load(run_dir / 'last.pt', weights_only=True)
    model = TraversabilityNet(TraversabilityNetConfig.from_dict(checkpoint['model_config'])).eval()
    model.load_state_dict(checkpoint['state_dict'])
    image = read_bag(find_bags(collection)[0], SegmentationSpec(height=120, width=160))[0][0]
    with torch.no_grad():
        expected = model(torch.from_numpy(preprocess_left(image, segmenter.spec)[np.newaxis]))[0].numpy()
    np.testing.assert_allclose(segmenter.logits(image), expected, atol=1e-3, rtol=1e-3)
    labels = segmenter.segment(image)
    assert labels.shape == (120, 160) and labels.dtype == np.uint8
    assert np.mean(labels == expected.argmax(0)) > 0.999
    np.testing.assert_array_equal(segmenter.segment(np.ascontiguousarray(image[..., ::-1]), 'bgr8'), labels)
    with pytest.raises(ValueError, match='trained on 160x120'):
        segmenter.segment(np.zeros((240, 320, 3), np.uint8))
    with pytest.raises(ExportError, match='not found'):
        export_any(tmp_path / 'missing.pt', tmp_path / 'x.onnx')


@pytest.mark.parametrize('damage, culprit', [
    (lambda c: c.pop('label_source'), "missing key 'label_source'"),
    (lambda c: c.update(camera=[320, 240]), "key 'camera' has the wrong type"),
])
def test_export_of_a_checkpoint_missing_a_sidecar_field_names_it(trained, tmp_path, damage, culprit):
    checkpoint = torch.load(trained[0] / 'last.pt', weights_only=True)
    damage(checkpoint)
    bad = tmp_path / 'bad.pt'
    torch.save(checkpoint, bad)
    with pytest.raises(ExportError, match=f'{bad}: {culprit}'):
        export_any(bad, tmp_path / 'x.onnx')
    assert not (tmp_path / 'x.onnx').exists()


def test_sidecar_metrics_keep_finite_held_out_numbers_only():
    from dave_models.export import sidecar_metrics
    metrics = {'val_miou': 0.9, 'val_note': 'not a number', 'val_nan': float('nan'), 'val_flag': True,
               'epoch': 3, 'samples_per_s': 55.0}
    assert sidecar_metrics(metrics) == {'val_miou': 0.9, 'epoch': 3.0}


def test_eval_scores_the_deployed_path_beyond_range_and_the_stereo_labels(trained, collection, tmp_path):
    from dave_models.traversability_eval import main as eval_main

    _, onnx_path = trained
    out = tmp_path / 'eval.json'
    sheet = tmp_path / 'sheet.png'
    assert eval_main(['--model', str(onnx_path), '--data', str(collection), '--seeds', '5', '--stereo',
                      '--sheet', str(sheet), '--json', str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures['frames'] == FRAMES and figures['far_range_m'] == StereoLabelConfig().max_range_m
    for key in ('miou', 'far_miou', 'stereo_miou', 'stereo_far_miou', 'stereo_labelled_accuracy'):
        assert 0.0 <= figures[key] <= 1.0, key
    assert 0 < figures['stereo_coverage'] < 1 and 0 < figures['far_pixel_share'] < 1
    assert figures['stereo_labelled_accuracy'] > 0.8 and figures['stereo_far_miou'] < figures['stereo_miou']
    import cv2
    image = cv2.imread(str(sheet))
    assert image.shape[1] == 4 * 160 and image.shape[0] % 120 == 0  # left | truth | stereo | network
    for far_range in ('-5', 'nan', 'inf'):  # a negative range counted most pixels as "far"
        assert eval_main(['--model', str(onnx_path), '--data', str(collection), '--seeds', '5',
                          '--far-range', far_range, '--json', str(out)]) == 2
    assert json.loads(out.read_text()) == figures  # the report of the good run is left alone


# ---------------------------------------------------------------- node

@pytest.mark.ros
def test_node_publishes_labels_with_the_image_header(trained, collection):
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from dave_nodes.conversions import image_to_numpy, numpy_to_image
    from dave_nodes.traversability_node import TraversabilityNode

    _, onnx_path = trained
    image = read_bag(find_bags(collection)[0], SegmentationSpec(height=120, width=160))[0][0]
    ctx = Context()
    rclpy.init(context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    node = probe = None
    try:
        node = TraversabilityNode(context=ctx, parameter_overrides=[
            Parameter('model_dir', value=str(onnx_path.parent))])
        probe = rclpy.create_node('probe', context=ctx)
        executor.add_node(node)
        executor.add_node(probe)
        received: list[Image] = []
        probe.create_subscription(Image, '/traversability/labels', received.append,
                                  QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE))
        publisher = probe.create_publisher(Image, '/stereo/left/image_raw', qos_profile_sensor_data)

        def spin_until(done, seconds, make_msg):
            end = time.monotonic() + seconds
            while time.monotonic() < end and not done():
                publisher.publish(make_msg())
                executor.spin_once(timeout_sec=0.05)

        stamp = probe.get_clock().now().to_msg()
        # A wrong-size image first: the node logs one error and keeps running.
        spin_until(lambda: False, 0.3, lambda: numpy_to_image(np.zeros((60, 80, 3), np.uint8), 'rgb8',
                                                             stamp, 'stereo_left_optical_frame'))
        assert not received
        spin_until(lambda: bool(received), 5.0,
                   lambda: numpy_to_image(image, 'rgb8', stamp, 'stereo_left_optical_frame'))
        assert received, 'no /traversability/labels within 5 s'
        msg = received[0]
        assert msg.encoding == 'mono8' and (msg.width, msg.height) == (160, 120)
        assert msg.header.stamp == stamp and msg.header.frame_id == 'stereo_left_optical_frame'
        labels = image_to_numpy(msg)
        np.testing.assert_array_equal(labels, node.segmenter.segment(image))
    finally:
        executor.shutdown()
        for n in (node, probe):
            if n is not None:
                n.destroy_node()
        ctx.try_shutdown()
