"""Train the traversability ConvNet, validating on held-out worlds against simulator ground truth.

The commands that produced models/traversability.onnx (details in
models/TRAVERSABILITY_MODEL_CARD.md):

    dave collect --seeds 0-35 --duration 20 --camera-rate-hz 5 --out out/collect/trav_v1 --workers 1
    dave train traversability --data out/collect/trav_v1 --out out/train/trav_v1 --labels gt \\
        --val-seeds 30-35 --max-minutes 20
    dave export out/train/trav_v1/last.pt --out models/traversability.onnx

Self-supervised, from stereo geometry only (LAGR's near-to-far; the card's "Stereo labels" section):

    dave train traversability --data out/collect/trav_v1 --out out/train/trav_stereo_v1 --labels stereo \\
        --val-seeds 30-35 --epochs 10

Quick end-to-end check (what CI runs on a tiny set):

    dave train traversability --data DIR --out DIR --dry-run

Outputs in --out: last.pt (every epoch), best.pt (highest held-out mIoU), metrics.json (history),
learning_curve.png, cache/ (the network-size frames, unless --cache points elsewhere). Files are
written to a temporary name and renamed, so a crash never leaves a half-written checkpoint.

The score is the mean IoU over classes 0 (traversable) and 1 (obstacle) on the held-out worlds,
at network resolution; class 2 (sky/unknown) is reported too but is easy and says little. With
--labels stereo the training targets leave pixels unlabelled (IGNORE, skipped by the loss), but
validation still scores against the simulator's ground truth when the bags hold it, and adds:
- val_far_*: the network's IoU on pixels whose true depth is beyond the labeller's range
  (GT depth > StereoLabelConfig.max_range_m, surfaces only, not sky): seeing beyond stereo;
- val_stereo_*: the stereo labels themselves scored the same way, with every pixel they leave
  unlabelled read as class 2 (unknown), i.e. counted wrong for a GT class 0/1 pixel. The far-range
  pair val_far_miou vs val_stereo_far_miou says whether the network sees further than its labels;
- val_stereo_labelled_accuracy / _miou: label quality where the labeller gives a label (all within
  its range or sky), and val_stereo_coverage, the share of pixels it labels.
Without ground truth (a robot's bags) validation scores against the held-out stereo labels
(metrics.json: "val_reference": "stereo").
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dave_core.atomic_file import atomic_write, atomic_write_text
from dave_core.preprocess import COLOR_SPACES
from dave_core.segmentation import CLASS_IDS, SegmentationSpec, image_to_input
from dave_core.seeds import parse_seed_list
from dave_core.stereo_geometry import IGNORE, StereoLabelConfig
from dave_models.augment import adjust_photometric
from dave_models.datasets import split_by_world
from dave_models.traversability_data import (NUM_CLASSES, TraversabilitySet, build_dataset,
                                             class_frequencies)
from dave_models.traversability_net import TraversabilityNet, TraversabilityNetConfig
from dave_models.traversability_train_config import (TraversabilityTrainConfig, add_arguments,
                                                     config_from_args)
from dave_models.distributed import DistributedContext, run_distributed
from dave_models.training import (DRY_RUN_BATCHES, EpochPlan, TrainingError, finish, load_resume, output_directory,
                                  optimizer_step, package_version, restore, save_checkpoint)

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 'dave-traversability-checkpoint'
CHECKPOINT_VERSION = 1
TASK = 'traversability'
SCORED_CLASSES = (CLASS_IDS['traversable'], CLASS_IDS['obstacle'])
CLASS_NAMES = {i: name for name, i in CLASS_IDS.items()}
# Held-out mIoU(0/1) against ground truth the model card asks of each label source (issue #4).
MIOU_BAR = {'gt': 0.9, 'stereo': 0.75}


def load_stereo_config(path: str | Path) -> StereoLabelConfig:
    """A StereoLabelConfig from a JSON object of its fields (missing ones keep their defaults)."""
    try:
        return StereoLabelConfig.from_dict(json.loads(Path(path).read_text()))
    except OSError as exc:
        raise ValueError(f'--stereo-config {path}: cannot read it ({exc.strerror})') from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f'--stereo-config {path}: {exc}') from None


def confusion_matrix(predicted: np.ndarray, target: np.ndarray, num_classes: int = NUM_CLASSES,
                     mask: np.ndarray | None = None) -> np.ndarray:
    """(num_classes, num_classes) pixel counts, rows = true class, columns = predicted class.

    Pixels outside `mask`, and targets of IGNORE, are not counted; a predicted IGNORE (a stereo
    label that abstains) counts as class 2, unknown.
    """
    keep = target != IGNORE if mask is None else (target != IGNORE) & mask
    target = target[keep].astype(np.int64)
    predicted = predicted[keep].astype(np.int64)
    predicted = np.where(predicted == IGNORE, CLASS_IDS['unknown'], predicted)
    index = target * num_classes + predicted
    return np.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_metrics(confusion: np.ndarray) -> dict[str, float]:
    """Per-class IoU, mIoU over the scored classes (0, 1) and pixel accuracy.

    A class absent from both truth and prediction has no IoU (NaN) and is left out of the mean.
    """
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = np.where(union > 0, tp / union, np.nan)
    scored = iou[list(SCORED_CLASSES)]
    metrics = {f'iou_{CLASS_NAMES[i]}': float(iou[i]) for i in range(len(iou))}
    metrics['miou'] = float(np.nanmean(scored)) if np.isfinite(scored).any() else math.nan
    metrics['pixel_accuracy'] = float(tp.sum() / max(confusion.sum(), 1))
    return metrics


def channel_statistics(data: TraversabilitySet, spec: SegmentationSpec, max_images: int = 512,
                       seed: int = 0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per colour channel mean and std (in [0, 1] units) of training images, for normalization."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(data), size=min(max_images, len(data)), replace=False)
    code = COLOR_SPACES[spec.color_space][0]
    images = data.images[picks]
    if code is not None:
        images = np.stack([cv2.cvtColor(im, code) for im in images])
    pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
    std = np.maximum(pixels.std(axis=0), 1e-3)  # a constant channel must not divide by zero
    return tuple(float(v) for v in pixels.mean(axis=0)), tuple(float(v) for v in std)


def class_weights(labels: np.ndarray) -> np.ndarray:
    """1/sqrt(frequency), normalized to mean 1: boosts rare obstacles without drowning the rest."""
    freq = np.maximum(class_frequencies(labels), 1e-4)  # a class absent from training stays finite
    weights = 1.0 / np.sqrt(freq)
    return (weights / weights.mean()).astype(np.float32)


def make_batch(data: TraversabilitySet, indices: np.ndarray, spec: SegmentationSpec,
               rng: np.random.Generator | None, augment: bool) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (B, 3, h, w) float32 and labels (B, h, w) int64; augments when `rng` is given.

    A horizontal flip of image and labels together is a valid scene (the world generator has no
    handedness); brightness/contrast jitter teaches invariance to exposure.
    """
    inputs = np.empty((len(indices),) + spec.input_shape, np.float32)
    labels = np.empty((len(indices), spec.height, spec.width), np.int64)
    for row, i in enumerate(indices):
        image, label = data.images[i], data.labels[i]
        if rng is not None and augment:
            if rng.random() < 0.5:
                image, label = image[:, ::-1], label[:, ::-1]
            image = adjust_photometric(np.ascontiguousarray(image), rng.uniform(-0.2, 0.2),
                                       rng.uniform(0.8, 1.2))
        inputs[row] = image_to_input(np.ascontiguousarray(image), spec)
        labels[row] = label
    return inputs, labels


def save_learning_curve(history: list[dict[str, float]], path: Path, reference: str = 'gt',
                        bar: float = 0.9) -> None:
    """Train loss, held-out mIoU (classes 0/1) and per-class IoU per epoch; with stereo labels also
    the mIoU beyond stereo range, and the stereo labels' own scores as horizontal lines."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h['epoch'] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    axes[0].plot(epochs, [h['train_loss'] for h in history], 'o-')
    axes[0].set(title='train loss (weighted cross-entropy)', xlabel='epoch', yscale='log')
    axes[1].plot(epochs, [h['val_miou'] for h in history], 'o-', lw=2, label='mIoU (0/1)')
    for i, name in CLASS_NAMES.items():
        axes[1].plot(epochs, [h[f'val_iou_{name}'] for h in history], '--', label=f'IoU {i} {name}')
    if 'val_far_miou' in history[-1]:
        axes[1].plot(epochs, [h['val_far_miou'] for h in history], 's-', color='black',
                     label='mIoU beyond stereo range')
        for key, style, text in (('val_stereo_miou', '-.', 'stereo labels: mIoU'),
                                 ('val_stereo_far_miou', ':', 'stereo labels: beyond range')):
            axes[1].axhline(history[-1][key], color='purple', lw=1.2, ls=style, label=text)
    axes[1].axhline(bar, color='grey', lw=0.8, ls=':')  # the model card's bar for this label source
    reference = 'ground truth' if reference == 'gt' else 'stereo labels'
    axes[1].set(title=f'held-out worlds, vs {reference}', xlabel='epoch', ylim=(0, 1))
    axes[1].legend(loc='center left', bbox_to_anchor=(1.02, 0.5), fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.subplots_adjust(left=0.06, right=0.8, bottom=0.14, top=0.9, wspace=0.22)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=90))
    plt.close(fig)


def reference_labels(data: TraversabilitySet) -> np.ndarray:
    """What validation scores against: simulator ground truth, else the (stereo) training labels."""
    return data.gt_labels if data.gt_labels is not None else data.labels


def _scores(confusion: np.ndarray, prefix: str) -> dict[str, float]:
    return {f'{prefix}{k}': v for k, v in iou_metrics(confusion).items()}


def _far_scores(confusion: np.ndarray, prefix: str) -> dict[str, float]:
    """mIoU and IoU of classes 0/1 beyond stereo range (class 2 has no depth, so none there)."""
    metrics = iou_metrics(confusion)
    return {f'{prefix}{k}': metrics[k] for k in ('miou', 'iou_traversable', 'iou_obstacle')}


def stereo_label_metrics(data: TraversabilitySet, count: int | None = None) -> dict[str, float]:
    """The stereo labels of `data` (its first `count` frames) scored against ground truth, as val_stereo_*.

    Pixels the labeller leaves unlabelled count as class 2 (unknown): wrong for a ground-truth
    0/1 pixel. `labelled_*` scores only the pixels it labels (its precision where it speaks).
    """
    if data.gt_labels is None:
        return {}
    labels, truth = data.labels[:count], data.gt_labels[:count]
    labelled = labels != IGNORE
    metrics = {**_scores(confusion_matrix(labels, truth), 'val_stereo_'),
               'val_stereo_coverage': float(labelled.mean())}
    inside = iou_metrics(confusion_matrix(labels, truth, mask=labelled))
    metrics['val_stereo_labelled_miou'] = inside['miou']
    metrics['val_stereo_labelled_accuracy'] = inside['pixel_accuracy']
    if data.far is not None:
        far = data.far[:count]
        metrics.update(_far_scores(confusion_matrix(labels, truth, mask=far), 'val_stereo_far_'))
        metrics['val_far_pixel_share'] = float(far.mean())
    return metrics


@torch.no_grad()
def evaluate(model: TraversabilityNet, data: TraversabilitySet, spec: SegmentationSpec,
             batch_size: int, device: torch.device, max_batches: int | None = None) -> dict[str, float]:
    """Held-out IoU metrics over `data` (no augmentation), as val_* keys (and val_far_* with GT depth)."""
    model.eval()
    order = np.arange(len(data))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)][:max_batches]
    reference = reference_labels(data)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    far_confusion = np.zeros_like(confusion)
    for indices in batches:
        inputs, _ = make_batch(data, indices, spec, None, False)
        predicted = model(torch.from_numpy(inputs).to(device)).argmax(1).cpu().numpy()
        confusion += confusion_matrix(predicted, reference[indices])
        if data.far is not None:
            far_confusion += confusion_matrix(predicted, reference[indices], mask=data.far[indices])
    metrics = _scores(confusion, 'val_')
    if data.far is not None:
        metrics.update(_far_scores(far_confusion, 'val_far_'))
    metrics['val_frames'] = float(sum(len(b) for b in batches))
    return metrics


def train(config: TraversabilityTrainConfig) -> dict[str, Any]:
    """Run training as configured; returns the summary also written to OUT/metrics.json.

    Under torchrun every process trains on its share of each epoch's batches (DDP) and rank 0
    alone validates and writes (dave_models.distributed).
    """
    torch.set_num_threads(config.threads)
    cv2.setNumThreads(config.threads)  # SGBM (stereo labels) and resizing share the same budget
    with output_directory(Path(config.out)):
        return run_distributed(config.device, lambda ddp: _train(config, ddp))


def _train(config: TraversabilityTrainConfig, ddp: DistributedContext) -> dict[str, Any]:
    device = ddp.device(config.device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    resume = load_resume(config.resume, out, CHECKPOINT_FORMAT)
    spec = SegmentationSpec.from_dict(resume['preprocess']) if resume else SegmentationSpec()
    started = time.perf_counter()
    if resume is not None and resume.get('label_source', 'gt') != config.labels:
        raise TrainingError(f'--resume: the checkpoint was trained on --labels {resume["label_source"]}, '
                            f'not {config.labels}')
    stereo = load_stereo_config(config.stereo_config) if config.stereo_config else None
    if resume is not None and resume.get('stereo_config'):
        if stereo is not None and stereo.to_dict() != resume['stereo_config']:
            raise TrainingError(f'--resume: --stereo-config {config.stereo_config} differs from the '
                                f'stereo labeller configuration the checkpoint was trained with')
        stereo = StereoLabelConfig.from_dict(resume['stereo_config'])
    stereo = stereo or StereoLabelConfig()
    if not ddp.is_main:
        ddp.barrier()  # rank 0 fills the label cache first; the others then read it
    data = build_dataset(config.data, config.cache or out / 'cache', spec, config.frame_stride,
                         config.labels, stereo)
    if ddp.is_main:
        ddp.barrier()
    val_seeds_arg = parse_seed_list(config.val_seeds) if config.val_seeds else None
    train_seeds, val_seeds = split_by_world(data.world_seeds, config.val_fraction, config.seed,
                                            val_seeds_arg)
    train_set, val_set = data.select(train_seeds), data.select(val_seeds)
    net_config = TraversabilityNetConfig(height=spec.height, width=spec.width)
    if resume is not None:
        if resume['data_id'] != data.data_id:
            raise TrainingError(f'--resume: checkpoint was trained on {resume["data_id"]}, '
                                f'--data is {data.data_id}')
        if list(resume['val_seeds']) != val_seeds:
            raise TrainingError('--resume: the held-out worlds differ from the checkpoint\'s')
        net_config = TraversabilityNetConfig.from_dict(resume['model_config'])
    else:
        mean, std = channel_statistics(train_set, spec, seed=config.seed)
        spec = replace(spec, mean=mean, std=std)
    freq = class_frequencies(train_set.labels)
    weights = class_weights(train_set.labels) if config.balance else np.ones(NUM_CLASSES, np.float32)
    val_reference = 'gt' if val_set.gt_labels is not None else config.labels
    logger.info('data %s (%s labels on %.1f %% of the training pixels): %d train frames (%d worlds), '
                '%d held-out frames (worlds %s, scored against %s), camera %dx%d, loaded in %.1f s; '
                'class shares %s, loss weights %s', data.data_id, config.labels,
                100 * float(np.mean(train_set.labels != IGNORE)), len(train_set), len(train_seeds),
                len(val_set), val_seeds, val_reference, *data.camera_size, time.perf_counter() - started,
                [round(float(v), 3) for v in freq], [round(float(v), 2) for v in weights])
    val_batches = DRY_RUN_BATCHES if config.dry_run else None
    stereo_metrics = stereo_label_metrics(
        val_set, None if val_batches is None else val_batches * config.batch_size) \
        if config.labels == 'stereo' else {}
    if stereo_metrics:
        logger.info('stereo labels of the held-out worlds vs ground truth: mIoU(0/1) %.4f (unlabelled = '
                    'wrong), %.4f where labelled (accuracy %.4f, %.1f %% of pixels labelled), beyond '
                    'stereo range %.4f', stereo_metrics['val_stereo_miou'],
                    stereo_metrics['val_stereo_labelled_miou'], stereo_metrics['val_stereo_labelled_accuracy'],
                    100 * stereo_metrics['val_stereo_coverage'], stereo_metrics['val_stereo_far_miou'])

    torch.manual_seed(config.seed)
    model = TraversabilityNet(net_config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    plan = EpochPlan.make(len(train_set), config.batch_size, config.seed, config.epochs, config.dry_run, ddp)
    scheduler = plan.cosine_schedule(optimizer)
    history: list[dict[str, float]] = []
    best_miou = -math.inf
    start_epoch = 0
    train_minutes = 0.0
    if resume is not None:
        history, start_epoch = restore(resume, model, optimizer, scheduler, plan,
                                         config.resume or out / 'last.pt', {'best_val_miou': float})
        best_miou = float(resume['best_val_miou'])
        train_minutes = float(resume.get('train_minutes', 0.0))
        logger.info('resuming after epoch %d (best held-out mIoU %.4f)', start_epoch, best_miou)
    loss_weights = torch.from_numpy(weights).to(device)
    trained = ddp.wrap(model, device)  # after resume: DDP broadcasts rank 0's weights

    for epoch in range(start_epoch + 1, plan.epochs + 1):
        # The mean over processes: every process must take the same decision (DDP).
        if config.max_minutes and ddp.mean(train_minutes) >= config.max_minutes:
            if epoch == start_epoch + 1:
                raise TrainingError(f'--max-minutes {config.max_minutes:g}: the checkpoint has used '
                                    f'{train_minutes:.1f} minutes of training already; raise it to go on')
            logger.info('stopping before epoch %d: %.1f of %.1f minutes of training used', epoch,
                        train_minutes, config.max_minutes)
            break
        model.train()
        batches, rng = plan.batches(epoch, ddp)
        epoch_start = time.perf_counter()
        losses = []
        bar = tqdm(batches, desc=f'epoch {epoch}/{plan.epochs}', unit='batch',
                   disable=None if ddp.is_main else True, leave=False)
        for indices in bar:
            inputs, labels = make_batch(train_set, indices, spec, rng, config.augment)
            labelled = bool((labels != IGNORE).any())
            if not labelled and not ddp.enabled:
                continue  # nothing labelled (stereo labels of frames without ground): no gradient
            logits = trained(torch.from_numpy(inputs).to(device))
            if labelled:
                # ignore_index: the pixels stereo geometry left unlabelled are no training target
                loss = F.cross_entropy(logits, torch.from_numpy(labels).to(device), weight=loss_weights,
                                       ignore_index=IGNORE)
            else:  # DDP: every process must join every step's gradient all-reduce, with zero here
                loss = logits.sum() * 0.0
            value = optimizer_step(loss, optimizer, scheduler, epoch)
            if labelled:
                losses.append(value)
                bar.set_postfix(loss=f'{losses[-1]:.4g}')
        train_seconds = time.perf_counter() - epoch_start
        train_minutes += train_seconds / 60.0
        if not losses:
            raise TrainingError(f'epoch {epoch}: no training batch had a labelled pixel')
        train_loss = ddp.mean(float(np.mean(losses)))
        if not ddp.is_main:
            ddp.barrier()  # wait for rank 0's validation and checkpoint
            continue
        val = evaluate(model, val_set, spec, config.batch_size, device, val_batches)
        record = {'epoch': float(epoch), 'train_loss': train_loss,
                  'lr': float(scheduler.get_last_lr()[0]), 'train_seconds': train_seconds,
                  'train_samples_per_s': ddp.world_size * len(losses) * config.batch_size
                  / max(train_seconds, 1e-9), 'processes': float(ddp.world_size),
                  **val, **stereo_metrics}
        history.append(record)
        improved = record['val_miou'] > best_miou
        best_miou = max(best_miou, record['val_miou'])
        checkpoint = {
            'format': CHECKPOINT_FORMAT, 'version': CHECKPOINT_VERSION, 'task': TASK,
            'model_config': net_config.to_dict(), 'preprocess': spec.to_dict(),
            'state_dict': model.state_dict(), 'optimizer': optimizer.state_dict(),
            'scheduler': scheduler.state_dict(), 'epoch': epoch, 'metrics': record,
            'history': history, 'best_val_miou': best_miou, 'data_id': data.data_id,
            'data_dir': str(Path(config.data).resolve()), 'train_seeds': train_seeds,
            'val_seeds': val_seeds, 'camera': {'width': data.camera_size[0], 'height': data.camera_size[1]},
            'class_ids': dict(CLASS_IDS), 'label_source': config.labels, 'val_reference': val_reference,
            'stereo_config': stereo.to_dict() if config.labels == 'stereo' else None,
            'train_minutes': train_minutes, 'train_config': asdict(config),
            'created_by': f'dave_models {package_version()} traversability_train.py (torch {torch.__version__})',
        }
        save_learning_curve(history, out / 'learning_curve.png', val_reference, MIOU_BAR[config.labels])
        summary = {'data_id': data.data_id, 'label_source': config.labels, 'val_reference': val_reference,
                   'train_labelled_share': float(np.mean(train_set.labels != IGNORE)),
                   **({'stereo_config': stereo.to_dict(), 'stereo_labels': stereo_metrics}
                      if config.labels == 'stereo' else {}),
                   'train_worlds': train_seeds, 'val_worlds': val_seeds,
                   'train_frames': len(train_set), 'val_frames': len(val_set),
                   'parameters': model.num_parameters(), 'best_val_miou': best_miou,
                   'train_minutes': train_minutes, 'history': history}
        atomic_write_text(out / 'metrics.json', json.dumps(summary, indent=1) + '\n')
        save_checkpoint(out, checkpoint, improved)  # last: it marks the epoch done
        logger.info('epoch %d: train loss %.4f, held-out mIoU(0/1) %.4f (IoU traversable %.4f, '
                    'obstacle %.4f, unknown %.4f), pixel accuracy %.4f, %.1f samples/s%s', epoch,
                    record['train_loss'], record['val_miou'], record['val_iou_traversable'],
                    record['val_iou_obstacle'], record['val_iou_unknown'], record['val_pixel_accuracy'],
                    record['train_samples_per_s'], ' *best*' if improved else '')
        if 'val_far_miou' in record:
            logger.info('epoch %d: beyond stereo range mIoU(0/1) %.4f (traversable %.4f, obstacle %.4f); '
                        'the stereo labels there: %.4f', epoch, record['val_far_miou'],
                        record['val_far_iou_traversable'], record['val_far_iou_obstacle'],
                        record.get('val_stereo_far_miou', math.nan))
        ddp.barrier()
    return finish(out, ddp, history, start_epoch, plan.epochs)


def run(args: argparse.Namespace) -> int:
    """`dave train traversability`: train as configured; errors are one logged line, exit code 2."""
    try:
        config = config_from_args(args)
        summary = train(config)
    except (TrainingError, ValueError) as exc:  # TraversabilityDataError and DatasetError are ValueErrors
        logger.error('%s', exc)
        return 2
    logger.info('best held-out mIoU (classes 0/1) %.4f; checkpoints in %s', summary['best_val_miou'],
                config.out)
    return 0
