"""Train the traversability ConvNet on simulator ground truth, validating on held-out worlds.

The commands that produced models/traversability.onnx (details in
models/TRAVERSABILITY_MODEL_CARD.md):

    dave collect --seeds 0-35 --duration 20 --camera-rate-hz 5 --out out/collect/trav_v1 --workers 1
    dave train traversability --data out/collect/trav_v1 --out out/train/trav_v1 --labels gt \\
        --val-seeds 30-35 --max-minutes 20
    dave export out/train/trav_v1/last.pt --out models/traversability.onnx

Quick end-to-end check (what CI runs on a tiny set):

    dave train traversability --data DIR --out DIR --dry-run

Outputs in --out: last.pt (every epoch), best.pt (highest held-out mIoU), metrics.json (history),
learning_curve.png, cache/ (the network-size frames, unless --cache points elsewhere). Files are
written to a temporary name and renamed, so a crash never leaves a half-written checkpoint.

The score is the mean IoU over classes 0 (traversable) and 1 (obstacle) on the held-out worlds,
at network resolution; class 2 (sky/unknown) is reported too but is easy and says little.
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
from dave_models.augment import adjust_photometric
from dave_models.datasets import split_by_world
from dave_models.traversability_data import (NUM_CLASSES, TraversabilitySet, build_dataset,
                                             class_frequencies)
from dave_models.traversability_net import TraversabilityNet, TraversabilityNetConfig
from dave_models.traversability_train_config import (TraversabilityTrainConfig, add_arguments,
                                                     config_from_args)
from dave_models.training import TrainingError, load_resume, package_version, train_batches

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 'dave-traversability-checkpoint'
CHECKPOINT_VERSION = 1
TASK = 'traversability'
DRY_RUN_BATCHES = 2
SCORED_CLASSES = (CLASS_IDS['traversable'], CLASS_IDS['obstacle'])
CLASS_NAMES = {i: name for name, i in CLASS_IDS.items()}




def confusion_matrix(predicted: np.ndarray, target: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(num_classes, num_classes) pixel counts, rows = true class, columns = predicted class."""
    index = target.reshape(-1).astype(np.int64) * num_classes + predicted.reshape(-1).astype(np.int64)
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


def save_learning_curve(history: list[dict[str, float]], path: Path) -> None:
    """Train loss, held-out mIoU (classes 0/1) and per-class IoU per epoch."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h['epoch'] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(epochs, [h['train_loss'] for h in history], 'o-')
    axes[0].set(title='train loss (weighted cross-entropy)', xlabel='epoch', yscale='log')
    axes[1].plot(epochs, [h['val_miou'] for h in history], 'o-', lw=2, label='mIoU (0/1)')
    for i, name in CLASS_NAMES.items():
        axes[1].plot(epochs, [h[f'val_iou_{name}'] for h in history], '--', label=f'IoU {i} {name}')
    axes[1].axhline(0.9, color='grey', lw=0.8, ls=':')
    axes[1].set(title='held-out worlds', xlabel='epoch', ylim=(0, 1))
    axes[1].legend(loc='lower right')
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.9, wspace=0.25)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=90))
    plt.close(fig)


@torch.no_grad()
def evaluate(model: TraversabilityNet, data: TraversabilitySet, spec: SegmentationSpec,
             batch_size: int, device: torch.device, max_batches: int | None = None) -> dict[str, float]:
    """Held-out IoU metrics over `data` (no augmentation), as val_* keys."""
    model.eval()
    order = np.arange(len(data))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)][:max_batches]
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for indices in batches:
        inputs, labels = make_batch(data, indices, spec, None, False)
        logits = model(torch.from_numpy(inputs).to(device))
        confusion += confusion_matrix(logits.argmax(1).cpu().numpy(), labels)
    metrics = iou_metrics(confusion)
    metrics['frames'] = float(sum(len(b) for b in batches))
    return {f'val_{k}': v for k, v in metrics.items()}


def train(config: TraversabilityTrainConfig) -> dict[str, Any]:
    """Run training as configured; returns the summary also written to OUT/metrics.json."""
    torch.set_num_threads(config.threads)
    if config.device == 'cuda' and not torch.cuda.is_available():
        raise TrainingError('--device cuda: no CUDA device is available to torch')
    device = torch.device(config.device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    resume = load_resume(config.resume, out, CHECKPOINT_FORMAT)
    if resume is None and (out / 'last.pt').exists():
        raise TrainingError(f'--out: {out} already holds last.pt; pass --resume to continue it '
                            f'or choose another directory (a new run must not replace it)')
    spec = SegmentationSpec.from_dict(resume['preprocess']) if resume else SegmentationSpec()
    started = time.perf_counter()
    data = build_dataset(config.data, config.cache or out / 'cache', spec, config.frame_stride)
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
    logger.info('data %s: %d train frames (%d worlds), %d held-out frames (worlds %s), camera %dx%d, '
                'loaded in %.1f s; class shares %s, loss weights %s', data.data_id, len(train_set),
                len(train_seeds), len(val_set), val_seeds, *data.camera_size,
                time.perf_counter() - started, [round(float(v), 3) for v in freq],
                [round(float(v), 2) for v in weights])

    torch.manual_seed(config.seed)
    model = TraversabilityNet(net_config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    epochs = 1 if config.dry_run else config.epochs
    steps_per_epoch = len(train_batches(len(train_set), config.batch_size, np.random.default_rng(0)))
    if config.dry_run:
        steps_per_epoch = min(steps_per_epoch, DRY_RUN_BATCHES)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    history: list[dict[str, float]] = []
    best_miou = -math.inf
    start_epoch = 0
    train_minutes = 0.0
    if resume is not None:
        model.load_state_dict(resume['state_dict'])
        optimizer.load_state_dict(resume['optimizer'])
        scheduler.load_state_dict(resume['scheduler'])
        scheduler.T_max = epochs * steps_per_epoch  # --epochs may have grown since the first run
        history = list(resume['history'])
        best_miou = float(resume['best_val_miou'])
        start_epoch = int(resume['epoch'])
        train_minutes = float(resume.get('train_minutes', 0.0))
        logger.info('resuming after epoch %d (best held-out mIoU %.4f)', start_epoch, best_miou)
    loss_weights = torch.from_numpy(weights).to(device)

    for epoch in range(start_epoch + 1, epochs + 1):
        if config.max_minutes and train_minutes >= config.max_minutes:
            logger.info('stopping before epoch %d: %.1f of %.1f minutes of training used', epoch,
                        train_minutes, config.max_minutes)
            break
        model.train()
        rng = np.random.default_rng([config.seed, epoch])  # per epoch: a resumed run gets the same batches
        batches = train_batches(len(train_set), config.batch_size, rng)[:steps_per_epoch]
        epoch_start = time.perf_counter()
        losses = []
        bar = tqdm(batches, desc=f'epoch {epoch}/{epochs}', unit='batch', disable=None, leave=False)
        for indices in bar:
            inputs, labels = make_batch(train_set, indices, spec, rng, config.augment)
            logits = model(torch.from_numpy(inputs).to(device))
            loss = F.cross_entropy(logits, torch.from_numpy(labels).to(device), weight=loss_weights)
            if not torch.isfinite(loss):
                raise TrainingError(f'epoch {epoch}: loss became {loss.item()}; nothing was saved '
                                    f'for this epoch (try a lower --lr)')
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f'{losses[-1]:.4g}')
        train_seconds = time.perf_counter() - epoch_start
        train_minutes += train_seconds / 60.0
        val = evaluate(model, val_set, spec, config.batch_size, device,
                       DRY_RUN_BATCHES if config.dry_run else None)
        record = {'epoch': float(epoch), 'train_loss': float(np.mean(losses)),
                  'lr': float(scheduler.get_last_lr()[0]), 'train_seconds': train_seconds,
                  'train_samples_per_s': len(losses) * config.batch_size / max(train_seconds, 1e-9),
                  **val}
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
            'class_ids': dict(CLASS_IDS), 'label_source': config.labels,
            'train_minutes': train_minutes, 'train_config': asdict(config),
            'created_by': f'dave_models {package_version()} traversability_train.py (torch {torch.__version__})',
        }
        atomic_write(out / 'last.pt', lambda tmp: torch.save(checkpoint, tmp))
        if improved:
            atomic_write(out / 'best.pt', lambda tmp: torch.save(checkpoint, tmp))
        save_learning_curve(history, out / 'learning_curve.png')
        summary = {'data_id': data.data_id, 'train_worlds': train_seeds, 'val_worlds': val_seeds,
                   'train_frames': len(train_set), 'val_frames': len(val_set),
                   'parameters': model.num_parameters(), 'best_val_miou': best_miou,
                   'train_minutes': train_minutes, 'history': history}
        atomic_write_text(out / 'metrics.json', json.dumps(summary, indent=1) + '\n')
        logger.info('epoch %d: train loss %.4f, held-out mIoU(0/1) %.4f (IoU traversable %.4f, '
                    'obstacle %.4f, unknown %.4f), pixel accuracy %.4f, %.1f samples/s%s', epoch,
                    record['train_loss'], record['val_miou'], record['val_iou_traversable'],
                    record['val_iou_obstacle'], record['val_iou_unknown'], record['val_pixel_accuracy'],
                    record['train_samples_per_s'], ' *best*' if improved else '')
    if not history or int(history[-1]['epoch']) <= start_epoch:
        raise TrainingError(f'nothing to do: the checkpoint already has {start_epoch} of {epochs} epochs')
    return json.loads((out / 'metrics.json').read_text())


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
