"""Train the steering ConvNet on stereo shards, validating on held-out worlds.

The commands that produced models/steering.onnx (run "v3"; details and later runs in
models/STEERING_MODEL_CARD.md):

    python -m dave_models.sim_dataset --seeds 0-47 --frames-per-world 200 --out out/data/steering_v2
    python -m dave_models.sim_dataset --seeds 48-95 --frames-per-world 200 --out out/data/steering_v2b
    python -m dave_models.datasets merge out/data/steering_v2 out/data/steering_v2b --out out/data/steering_v3
    dave train steering --data out/data/steering_v3 --out out/train/steering_v3 --val-seeds 40-47 \
        --threads 1 --epochs 8
    dave export out/train/steering_v3/last.pt --out models/steering.onnx

(v3 predates the view-rotation, shadow and blur augmentations: its settings today are
`--aug-rotate-prob 0 --aug-shadow-prob 0 --aug-blur-prob 0`, with other random draws.) Options beyond v3: `--head arcs`
(cross-entropy over the expert's arc fan), `--aux-weight W` (auxiliary prediction of each arc's
free length and clearance) and `--label memoryless` need data with the reactive expert's
privileged labels (sim_dataset writes them; `--replay` adds them to older data).
`--perception TRAV_CHECKPOINT` steers from a frozen traversability network's maps of both views
(the steering card's runs p2/p3; `make models` reproduces the shipped one).

After each epoch the BatchNorm statistics are re-estimated for the epoch's final weights
(`recompute_batchnorm`), so validation and the checkpoint use statistics that fit them.

(last.pt, not best.pt: an epoch picked on the held-out worlds would flatter their metrics.)

Quick end-to-end check (what CI runs on a tiny set):

    dave train steering --data DIR --out DIR --dry-run

The same flags work as `dave train steering ...`. Outputs in --out: last.pt (every epoch),
best.pt (lowest validation MAE), metrics.json (history), learning_curve.png. Every file is
written to a temporary name and renamed, so a crash never leaves a half-written checkpoint, and a
non-finite loss stops the run before anything is saved.
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dave_core.atomic_file import atomic_write, atomic_write_text
from dave_core.autopilot import Pace
from dave_core.preprocess import COLOR_SPACES, PreprocessSpec, to_network_input
from dave_core.seeds import parse_seed_list
from dave_models.augment import AugmentConfig, ViewGeometry, augment
from dave_models.datasets import CachedSet, load_cached, load_manifest, split_by_world
from dave_models.steering_net import PERCEPTION_CONVS, PERCEPTION_FC, SteeringNet, SteeringNetConfig, arc_sides
from dave_models.train_config import SteeringTrainConfig, add_arguments, config_from_args
from dave_models.distributed import DistributedContext, run_distributed
from dave_models.training import (DRY_RUN_BATCHES, EpochPlan, TrainingError, finish, first_line, load_resume,
                                  optimizer_step, output_directory, package_version, read_checkpoint, restore,
                                  save_checkpoint, train_batches)

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 'dave-steering-checkpoint'
CHECKPOINT_VERSION = 1
PRECISE_BN_BATCHES = 50  # 3,200 frames at batch 64: BatchNorm statistics to within ~2 %




def direction_classes(curvature: np.ndarray, deadband: float) -> np.ndarray:
    """-1 right, 0 straight (|curvature| <= deadband), +1 left (REP-103: + is left)."""
    return np.where(curvature > deadband, 1, np.where(curvature < -deadband, -1, 0))


# Frames of slack for the timing-tolerant direction accuracy: 0.2 s at sim_dataset's default 10 Hz.
TIMING_TOLERANCE_FRAMES = 2


def drive_neighbours(sequence: np.ndarray, tolerance: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For each shift in -tolerance..tolerance: every frame's neighbour index at that shift and
    whether it is in the same drive (`sequence` ids, frames in drive order)."""
    index = np.arange(len(sequence))
    for shift in range(-tolerance, tolerance + 1):
        other = np.clip(index + shift, 0, len(sequence) - 1)
        yield other, sequence[other] == sequence


def timing_tolerant_hits(predicted_class: np.ndarray, true_class: np.ndarray, sequence: np.ndarray,
                         tolerance: int) -> np.ndarray:
    """Per frame: the predicted direction is the label of a frame at most `tolerance` frames away
    in the same drive. Early or late by that much counts."""
    hits = np.zeros(len(true_class), bool)
    for other, same_drive in drive_neighbours(sequence, tolerance):
        hits |= (true_class[other] == predicted_class) & same_drive
    return hits


def steering_metrics(predicted: np.ndarray, target: np.ndarray, deadband: float,
                     obstacle_ahead: np.ndarray | None = None,
                     sequence: np.ndarray | None = None,
                     near_tie: np.ndarray | None = None) -> dict[str, float]:
    """Curvature MAE/RMSE (1/m), direction accuracy, the 'always straight' baselines and, when
    the data says where obstacles are, how often the net and the expert steer away from them.

    With `sequence` (a drive id per frame, frames in drive order, e.g. the world seed) also how
    many misses are timing: `direction_accuracy_within_2_frames` forgives a direction up to
    TIMING_TOLERANCE_FRAMES early or late, `direction_misses_near_label_change` is the share
    of misses that close to a change of the label's direction.

    With `near_tie` (per frame: the expert's best arcs of two directions scored almost the same,
    reactive_expert.direction_margin) also the share of such frames, the accuracy on the others
    (`direction_accuracy_decisive`) and the share of misses at near-ties.
    """
    error = predicted - target
    true_class = direction_classes(target, deadband)
    predicted_class = direction_classes(predicted, deadband)
    metrics = {
        'mae': float(np.mean(np.abs(error))),
        'rmse': float(np.sqrt(np.mean(error ** 2))),
        'direction_accuracy': float(np.mean(predicted_class == true_class)),
        'mae_zero_baseline': float(np.mean(np.abs(target))),
        'direction_accuracy_straight_baseline': float(np.mean(true_class == 0)),
        'samples': float(len(target)),
    }
    if sequence is not None:
        k = TIMING_TOLERANCE_FRAMES
        metrics[f'direction_accuracy_within_{k}_frames'] = float(np.mean(
            timing_tolerant_hits(predicted_class, true_class, sequence, k)))
        # Near a change: some frame at most k away in the same drive has another direction label.
        near_change = np.zeros(len(true_class), bool)
        for other, same_drive in drive_neighbours(sequence, k):
            near_change |= (true_class[other] != true_class) & same_drive
        misses = predicted_class != true_class
        metrics['direction_misses_near_label_change'] = (float(np.mean(near_change[misses]))
                                                         if misses.any() else 0.0)
    if near_tie is not None:
        misses = predicted_class != true_class
        metrics['direction_near_tie_fraction'] = float(np.mean(near_tie))
        if (~near_tie).any():  # undefined when every frame is a near-tie (tiny sets); left out
            metrics['direction_accuracy_decisive'] = float(np.mean(~misses[~near_tie]))
        metrics['direction_misses_near_tie'] = float(np.mean(near_tie[misses])) if misses.any() else 0.0
    if obstacle_ahead is not None:
        near = obstacle_ahead != 0
        metrics['obstacle_ahead_fraction'] = float(np.mean(near))
        if near.any():
            # Steering away from an obstacle on the left (+1) means negative curvature.
            metrics['avoid_rate'] = float(np.mean(predicted[near] * obstacle_ahead[near] < 0))
            metrics['avoid_rate_expert'] = float(np.mean(target[near] * obstacle_ahead[near] < 0))
    return metrics


def channel_statistics(data: CachedSet, spec: PreprocessSpec, max_images: int = 512,
                       seed: int = 0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per colour channel mean and std (in [0, 1] units) of training images, for normalization.

    Both cameras share one normalization (same sensor model); a seeded subset keeps it cheap.
    """
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(data), size=min(max_images, len(data)), replace=False)
    code = COLOR_SPACES[spec.color_space][0]
    images = np.concatenate([data.left[picks], data.right[picks]])
    if code is not None:
        images = np.stack([cv2.cvtColor(im, code) for im in images])
    pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
    std = np.maximum(pixels.std(axis=0), 1e-3)  # a constant channel must not divide by zero
    return tuple(float(v) for v in pixels.mean(axis=0)), tuple(float(v) for v in std)


# --label -> the CachedSet array trained on (and scored on; the expert's is always scored too).
LABELS = {'expert': 'curvature', 'memoryless': 'curvature_memoryless'}


def label_array(data: CachedSet, label: str) -> np.ndarray:
    """The curvature labels `label` names; TrainingError if the data lacks them."""
    array = getattr(data, LABELS[label])
    if array is None:
        raise TrainingError(f'--label {label}: the data has no {LABELS[label]} array (generate it '
                            f'with python -m dave_models.sim_dataset --expert reactive)')
    return array


def arc_targets(curvature: np.ndarray, arcs: np.ndarray) -> np.ndarray:
    """(B, K) soft targets over the fan `arcs` (ascending): a curvature between two arcs splits its
    probability linearly between them (two-hot), so the target's mean over the fan is the label
    itself (clipped to the fan), also for the continuous labels of rotated views."""
    c = np.clip(np.asarray(curvature, np.float64), arcs[0], arcs[-1])
    upper = np.clip(np.searchsorted(arcs, c, side='left'), 1, len(arcs) - 1)
    lower = upper - 1
    w_upper = (c - arcs[lower]) / (arcs[upper] - arcs[lower])
    out = np.zeros((len(c), len(arcs)), np.float32)
    rows = np.arange(len(c))
    out[rows, lower] = 1.0 - w_upper
    out[rows, upper] += w_upper
    return out


def make_batch(data: CachedSet, indices: np.ndarray, spec: PreprocessSpec,
               rng: np.random.Generator | None, augment_config: AugmentConfig | None,
               geometry: ViewGeometry | None = None, label: str = 'expert',
               aux_scale: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Network inputs (B, 6, h, w) and targets for `indices`; augments when `rng` is given.

    Targets: curvature (the `label`), expert (the expert's own label, unaugmented), speed,
    and with `aux_scale` (one scale per aux column) aux (B, 2K) with aux_mask (B,): the arc
    free lengths/clearances, mirrored with a flip and masked out for a rotated or shifted view (its arcs
    would need the scene's depth to recompute).
    """
    labels = label_array(data, label)
    inputs = np.empty((len(indices),) + spec.output_shape, dtype=np.float32)
    curvature = np.empty(len(indices), dtype=np.float32)
    targets: dict[str, np.ndarray] = {'expert': data.curvature[indices]}
    if aux_scale is not None:
        aux = np.concatenate([data.arc_free_m[indices], data.arc_clearance_m[indices]], axis=1) / aux_scale
        aux_mask = np.ones(len(indices), np.float32)
    for row, i in enumerate(indices):
        left, right, value = data.left[i], data.right[i], float(labels[i])
        if rng is not None and augment_config is not None:
            out = augment(left, right, value, rng, augment_config, geometry)
            left, right, value = out.left, out.right, out.curvature
            if aux_scale is not None:
                if out.flipped:  # the fan runs right to left: mirror each half
                    k = aux.shape[1] // 2
                    aux[row] = np.concatenate([aux[row, :k][::-1], aux[row, k:][::-1]])
                if out.yaw_rad != 0.0 or out.shift_m != 0.0:
                    aux_mask[row] = 0.0
        inputs[row] = to_network_input(left, right, spec)
        curvature[row] = value
    targets['curvature'] = curvature
    if data.speed is not None:
        targets['speed'] = data.speed[indices]
    if aux_scale is not None:
        targets['aux'] = aux.astype(np.float32)
        targets['aux_mask'] = aux_mask
    return inputs, targets


def recompute_batchnorm(model: SteeringNet, batches: list[np.ndarray], data: CachedSet, spec: PreprocessSpec,
                        device: torch.device) -> int:
    """Re-estimate the trainable BatchNorm layers' statistics for the final weights (precise BN).

    The running averages kept during training mix statistics of weights from the last ~10 steps;
    where activations move fast (the maps of a `--perception` net: measured, held-out direction
    accuracy 0.25 with them and 0.78 with true batch statistics, epoch 4) that makes eval-mode
    outputs wrong. Averaging over `batches` of unaugmented training frames with the weights held
    fixed gives the statistics evaluation and export should use (Wu & Johnson 2021). Returns
    the number of layers updated.
    """
    frozen = set(model.perception.modules()) if model.perception is not None else set()
    layers = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) and m not in frozen]
    momenta = [m.momentum for m in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for indices in batches:
            inputs, _ = make_batch(data, indices, spec, None, None)
            model.forward_train(torch.from_numpy(inputs).to(device))
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    return len(layers)


@functools.lru_cache(maxsize=4)
def side_masks(arcs: tuple[float, ...], device: str) -> torch.Tensor:
    """(3, K) bool masks of the fan's right / straight / left arcs, built once per fan and device."""
    return arc_sides(torch.tensor(arcs, device=device)).bool()


# A speed label below the pilot's threshold is the expert turning in place (its label is 0 there).
TURN_IN_PLACE_BELOW_MPS = Pace().turn_in_place_below_mps
# The "turn in place" loss (binary cross-entropy of the logit): its weight, and the weight of its
# rare positives (about 1 % of the reactive expert's frames).
TURN_IN_PLACE_WEIGHT = 1.0
TURN_IN_PLACE_POS_WEIGHT = 5.0


def steering_loss(outputs: dict[str, torch.Tensor], targets: dict[str, np.ndarray],
                  net_config: SteeringNetConfig, config: SteeringTrainConfig,
                  device: torch.device) -> torch.Tensor:
    """MSE (regression head) or soft cross-entropy (arcs head, + mse_weight x MSE of its readout,
    + direction_weight x cross-entropy of its side probabilities) on curvature, + speed, + aux."""
    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(targets[name]).to(device)

    if net_config.head == 'arcs':
        soft = arc_targets(targets['curvature'], np.asarray(net_config.arc_curvatures))
        log_p = F.log_softmax(outputs['arc_logits'], dim=1)
        loss = -(torch.from_numpy(soft).to(device) * log_p).sum(dim=1).mean()
        if config.mse_weight > 0:  # the readout's curvature, which is what the vehicle drives
            loss = loss + config.mse_weight * F.mse_loss(outputs['curvature'][:, 0], tensor('curvature'))
        if config.direction_weight > 0:
            sides = side_masks(net_config.arc_curvatures, str(device))
            side_log_p = torch.logsumexp(log_p[:, None, :].masked_fill(~sides, -math.inf), dim=2)
            classes = torch.from_numpy(direction_classes(targets['curvature'], config.deadband) + 1).to(device)
            loss = loss + config.direction_weight * F.nll_loss(side_log_p, classes)
    else:
        loss = F.mse_loss(outputs['curvature'][:, 0], tensor('curvature'))
    if net_config.predict_speed and net_config.turn_in_place:
        spin = tensor('speed') < TURN_IN_PLACE_BELOW_MPS
        moving = (~spin).float()
        squared = (outputs['speed_raw'][:, 0] - tensor('speed')) ** 2
        loss = loss + config.speed_weight * (squared * moving).sum() / moving.sum().clamp(min=1.0)
        loss = loss + TURN_IN_PLACE_WEIGHT * F.binary_cross_entropy_with_logits(
            outputs['turn_in_place_logit'][:, 0], spin.float(),
            pos_weight=torch.tensor(TURN_IN_PLACE_POS_WEIGHT, device=device))
    elif net_config.predict_speed:
        loss = loss + config.speed_weight * F.mse_loss(outputs['speed'][:, 0], tensor('speed'))
    if net_config.aux_arcs:
        mask = tensor('aux_mask')
        per_sample = ((outputs['aux'] - tensor('aux')) ** 2).mean(dim=1)
        loss = loss + config.aux_weight * (per_sample * mask).sum() / mask.sum().clamp(min=1.0)
    return loss


def save_learning_curve(history: list[dict[str, float]], path: Path) -> None:
    """Train loss, validation MAE (with the 'drive straight' baseline) and direction accuracy."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h['epoch'] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [h['train_loss'] for h in history], 'o-')
    axes[0].set(title='train loss (MSE or cross-entropy, + aux)', xlabel='epoch', yscale='log')
    axes[1].plot(epochs, [h['val_mae'] for h in history], 'o-', label='network')
    axes[1].plot(epochs, [h['val_mae_zero_baseline'] for h in history], '--', label='always straight')
    axes[1].set(title='held-out curvature MAE (1/m)', xlabel='epoch')
    axes[1].legend()
    axes[2].plot(epochs, [h['val_direction_accuracy'] for h in history], 'o-', label='network')
    axes[2].plot(epochs, [h['val_direction_accuracy_straight_baseline'] for h in history], '--',
                 label='always straight')
    if 'val_avoid_rate' in history[-1]:
        axes[2].plot(epochs, [h.get('val_avoid_rate', np.nan) for h in history], 's-',
                     label='steers away from obstacle ahead')
        axes[2].plot(epochs, [h.get('val_avoid_rate_expert', np.nan) for h in history], ':',
                     label='expert label steers away')
    axes[2].set(title='held-out direction accuracy / avoidance', xlabel='epoch', ylim=(0, 1))
    axes[2].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.9, wspace=0.3)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=90))
    plt.close(fig)


def expert_near_ties(data: CachedSet, used: np.ndarray, deadband: float) -> np.ndarray | None:
    """Per used frame: the reactive expert's direction was a near-tie (from the data's arc labels,
    scored with the expert's default weights); None when the data has no arc labels."""
    if data.arc_free_m is None or data.arc_clearance_m is None:
        return None
    try:  # the arc labels come from dave_sim's expert; without dave_sim the metric is skipped
        from dave_sim.reactive_expert import NEAR_TIE_SCORE, direction_margin
        return direction_margin(data.arc_free_m[used], data.arc_clearance_m[used], deadband) < NEAR_TIE_SCORE
    except (ImportError, ValueError) as exc:  # no dave_sim, or another fan than the expert's
        logger.debug('no near-tie metrics: %s', exc)
        return None


def speed_metrics(predicted: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Speed MAE, and how well "turn in place" (a speed below the pilot's threshold; the expert's
    label is 0 there) is found: recall and precision, each left out when undefined."""
    below = TURN_IN_PLACE_BELOW_MPS
    metrics = {'speed_mae': float(np.mean(np.abs(predicted - target)))}
    spin_true, spin_pred = target < below, predicted < below
    if spin_true.any():
        metrics['turn_in_place_recall'] = float((spin_pred & spin_true).sum() / spin_true.sum())
    if spin_pred.any():
        metrics['turn_in_place_precision'] = float((spin_pred & spin_true).sum() / spin_pred.sum())
    return metrics


@torch.no_grad()
def evaluate(model: SteeringNet, data: CachedSet, spec: PreprocessSpec, batch_size: int,
             deadband: float, device: torch.device, max_batches: int | None = None,
             label: str = 'expert') -> dict[str, float]:
    """Validation metrics over `data` (no augmentation), as val_* keys, against the trained
    `label`; for another label than the expert's, also val_expert_* against the expert's."""
    model.eval()
    order = np.arange(len(data))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)][:max_batches]
    predicted, target, expert, speed_pred, speed_true = [], [], [], [], []
    for indices in batches:
        inputs, targets = make_batch(data, indices, spec, None, None, label=label)
        outputs = model.forward_train(torch.from_numpy(inputs).to(device))
        predicted.append(outputs['curvature'][:, 0].cpu().numpy())
        target.append(targets['curvature'])
        expert.append(targets['expert'])
        if 'speed' in outputs and 'speed' in targets:
            speed_pred.append(outputs['speed'][:, 0].cpu().numpy())
            speed_true.append(targets['speed'])
    used = np.concatenate(batches)
    ahead = data.obstacle_ahead[used] if data.obstacle_ahead is not None else None
    metrics = steering_metrics(np.concatenate(predicted), np.concatenate(target), deadband, ahead,
                               sequence=data.world_seed[used], near_tie=expert_near_ties(data, used, deadband))
    if label != 'expert':
        vs_expert = steering_metrics(np.concatenate(predicted), np.concatenate(expert), deadband)
        metrics.update({f'expert_{k}': vs_expert[k] for k in ('mae', 'rmse', 'direction_accuracy')})
    if speed_pred:
        metrics.update(speed_metrics(np.concatenate(speed_pred), np.concatenate(speed_true)))
    return {f'val_{k}': v for k, v in metrics.items()}


def training_camera(source: dict[str, Any]) -> dict[str, float | int]:
    """Width, height, fx and baseline of the camera in a manifest's `source` ({} if not recorded).

    sim_dataset records dave_sim.camera.StereoCameraConfig as a dict (width, height, hfov_deg,
    baseline_m); fx follows from the width and the horizontal field of view.
    """
    camera = source.get('camera')
    if not isinstance(camera, dict) or not {'width', 'height'} <= camera.keys():
        return {}
    out: dict[str, float | int] = {'width': int(camera['width']), 'height': int(camera['height'])}
    if isinstance(camera.get('hfov_deg'), (int, float)):
        out['fx'] = float(out['width'] / 2 / math.tan(math.radians(camera['hfov_deg']) / 2))
    if isinstance(camera.get('baseline_m'), (int, float)):
        out['baseline_m'] = float(camera['baseline_m'])
    return out


def augment_setup(config: SteeringTrainConfig, source: dict[str, Any], spec: PreprocessSpec
                  ) -> tuple[AugmentConfig | None, ViewGeometry | None]:
    """The augmentation the flags ask for, and the geometry of the cached crops (None if unknown).

    The view rotation and the shadows' disparity need the camera that took the data
    (sim_dataset records it in the manifest); without it rotations are skipped, with a warning.
    """
    if not config.augment:
        return None, None
    augment = AugmentConfig(rotate_prob=config.aug_rotate_prob, rotate_max_deg=config.aug_rotate_max_deg,
                            return_distance_m=config.aug_return_distance,
                            shift_prob=config.aug_shift_prob, shift_max_m=config.aug_shift_max,
                            shadow_prob=config.aug_shadow_prob, blur_prob=config.aug_blur_prob)
    camera = source.get('camera')
    needed = {'width', 'height', 'hfov_deg', 'baseline_m', 'mount_height_m', 'pitch_deg'}
    if not isinstance(camera, dict) or not needed <= camera.keys():
        if augment.rotate_prob > 0 or augment.shift_prob > 0:
            logger.warning('augmentation: the data records no full camera geometry, so view '
                           'rotations and shifts are skipped and shadows get no disparity')
        return augment, None
    geometry = ViewGeometry.for_crop(camera, spec.crop_top, spec.crop_bottom, spec.width, spec.height)
    return augment, geometry


PERCEPTION_FORMAT = 'dave-traversability-checkpoint'  # dave_models.traversability_train's


def load_perception(path: str) -> tuple[PreprocessSpec, dict[str, Any]]:
    """The stereo preprocessing a `--perception` checkpoint implies, and the checkpoint.

    The traversability network sees the full image resized to its size, normalized its way; the
    steering input is that for both views (PreprocessSpec with no crop equals its spec).
    """
    # Only the network and how it sees are used (its training record is not).
    checkpoint = read_checkpoint('--perception', path, PERCEPTION_FORMAT,
                                 {'model_config': dict, 'preprocess': dict, 'state_dict': dict})
    seg = checkpoint['preprocess']
    try:
        spec = PreprocessSpec(crop_top=0.0, crop_bottom=0.0, height=int(seg['height']), width=int(seg['width']),
                              color_space=seg['color_space'], interpolation=seg['interpolation'],
                              mean=tuple(seg['mean']), std=tuple(seg['std']))
    except (KeyError, TypeError, ValueError) as exc:
        raise TrainingError(f'--perception: {path}: key \'preprocess\': {first_line(exc)}') from None
    return spec, checkpoint


def speed_rows(state: dict[str, torch.Tensor], model: SteeringNet, speed: np.ndarray) -> dict[str, torch.Tensor]:
    """`state`'s last layer with the new model's speed and turn-in-place rows appended: small
    weights, and as biases the mean speed of the moving frames and the log-odds of turning in
    place, so the new outputs start at their best constants and their early loss does not pull
    the trained layers away (a fresh auxiliary head did; steering card)."""
    weight, bias = state['out.weight'], state['out.bias']
    rows = model.out.weight.detach()[-2:].to(weight.dtype)  # SteeringNet's own small initialization
    spin = speed < TURN_IN_PLACE_BELOW_MPS
    share = float(np.clip(spin.mean(), 1e-3, 1 - 1e-3))
    moving = float(speed[~spin].mean()) if (~spin).any() else 0.0
    return {'out.weight': torch.cat([weight, rows]),
            'out.bias': torch.cat([bias, torch.tensor([moving, math.log(share / (1 - share))], dtype=bias.dtype)])}


def _net_config(flag: str, path: str | Path, checkpoint: dict[str, Any]) -> SteeringNetConfig:
    """The network a checkpoint describes; one TrainingError naming it if it describes none."""
    try:
        return SteeringNetConfig.from_dict(checkpoint['model_config'])
    except (TypeError, ValueError) as exc:
        raise TrainingError(f'{flag}: {path}: key \'model_config\': {first_line(exc)}') from None


def load_init(path: str) -> dict[str, Any]:
    """The steering checkpoint --init starts from."""
    return read_checkpoint('--init', path, CHECKPOINT_FORMAT)


class _TrainingOutputs(torch.nn.Module):
    """`forward` = the net's forward_train (every head), so DDP sees the training step's call."""

    def __init__(self, net: SteeringNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net.forward_train(x)


def train(config: SteeringTrainConfig) -> dict[str, Any]:
    """Run training as configured; returns the summary also written to OUT/metrics.json.

    Under torchrun every process trains on its share of each epoch's batches (DDP) and rank 0
    alone validates and writes (dave_models.distributed).
    """
    torch.set_num_threads(config.threads)
    with output_directory(Path(config.out)):
        return run_distributed(config.device, lambda ddp: _train(config, ddp))


def _train(config: SteeringTrainConfig, ddp: DistributedContext) -> dict[str, Any]:
    device = ddp.device(config.device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    manifest = load_manifest(config.data)
    val_seeds_arg = parse_seed_list(config.val_seeds) if config.val_seeds else None
    train_seeds, val_seeds = split_by_world(manifest.world_seeds, config.val_fraction, config.seed,
                                            val_seeds_arg)
    spec = PreprocessSpec(crop_top=config.crop_top, crop_bottom=config.crop_bottom,
                          height=config.input_height, width=config.input_width)
    arcs = manifest.source.get('arc_curvatures') or ()
    if (config.head == 'arcs' or config.aux_weight > 0) and len(arcs) < 3:
        raise TrainingError(f'--head arcs / --aux-weight: {config.data} records no arc fan '
                            f'(source.arc_curvatures; written by sim_dataset --expert reactive)')
    perception = init = None
    grow_speed = False
    perception_record: dict[str, str] = {}  # what the checkpoint says of the embedded perception
    init_path = str(Path(config.init).resolve()) if config.init else ''
    if config.perception and config.init:
        raise TrainingError('--init and --perception: a perception checkpoint given to --init brings '
                            'its own traversability network; pass one of them')
    if config.perception:
        spec, perception = load_perception(config.perception)
        perception_record = {'data_id': perception['data_id'], 'path': str(Path(config.perception).resolve())}
    net_config = SteeringNetConfig(height=spec.height, width=spec.width,
                                   predict_speed=config.predict_speed, turn_in_place=config.predict_speed,
                                   head=config.head,
                                   arc_curvatures=tuple(arcs) if config.head == 'arcs' else (),
                                   arc_readout=config.arc_readout,
                                   aux_arcs=len(arcs) if config.aux_weight > 0 else 0,
                                   **({} if perception is None else
                                      {'convs': PERCEPTION_CONVS, 'fc': PERCEPTION_FC,
                                       'perception': perception['model_config']}))
    if config.init:
        init = load_init(config.init)
        net_config = _net_config('--init', config.init, init)
        if net_config.head != config.head:
            raise TrainingError(f'--init: {config.init} has a {net_config.head} head, not the '
                                f'--head {config.head} asked for')
        spec = PreprocessSpec.from_dict(init['preprocess'])
        perception_record = dict(init.get('perception') or {})
        if config.aux_weight > 0 and not net_config.aux_arcs:  # a new auxiliary head on the old trunk
            net_config = replace(net_config, aux_arcs=len(arcs))
        grow_speed = config.predict_speed and not net_config.predict_speed
        if grow_speed:  # speed and turn-in-place outputs added to the trained head (two more rows)
            net_config = replace(net_config, predict_speed=True, turn_in_place=True)
        net_config = replace(net_config, arc_readout=config.arc_readout)  # no weights: free to change
    if config.direction_weight > 0 and net_config.head != 'arcs':
        raise TrainingError(f'--direction-weight: only the arcs head has direction probabilities '
                            f'(this model has a {net_config.head} head)')
    if config.arc_readout != 'mean' and net_config.head != 'arcs':
        raise TrainingError(f'--arc-readout {config.arc_readout}: only the arcs head has a readout '
                            f'(this model has a {net_config.head} head)')
    if config.perception_lr > 0 and not net_config.perception:
        raise TrainingError('--perception-lr: the model has no traversability network to train '
                            '(give --perception, or --init with a perception model)')
    resume = load_resume(config.resume, out, CHECKPOINT_FORMAT)
    if resume is not None:
        if resume['data_id'] != manifest.data_id:
            raise TrainingError(f'--resume: checkpoint was trained on {resume["data_id"]}, '
                                f'--data is {manifest.data_id}')
        if list(resume['val_seeds']) != val_seeds:
            raise TrainingError('--resume: the held-out worlds differ from the checkpoint\'s')
        net_config = _net_config('--resume', config.resume or out / 'last.pt', resume)
        spec = PreprocessSpec.from_dict(resume['preprocess'])
        # What the run started from stays on record (export puts it in the sidecar's data id).
        perception_record = dict(resume.get('perception') or {})
        init_path = resume.get('init', '')

    torch.manual_seed(config.seed)
    started = time.perf_counter()
    train_set = load_cached(manifest, spec, train_seeds)
    val_set = load_cached(manifest, spec, val_seeds)
    if resume is None and init is None and perception is None:  # those bring their normalization
        mean, std = channel_statistics(train_set, spec, seed=config.seed)
        spec = replace(spec, mean=mean, std=std)
    if net_config.predict_speed and (train_set.speed is None or val_set.speed is None):
        raise TrainingError(f'--predict-speed: {config.data} has no speed labels')
    label_array(train_set, config.label)
    label_array(val_set, config.label)
    aux_scale = None
    if net_config.aux_arcs:
        if train_set.arc_free_m is None or train_set.arc_free_m.shape[1] != net_config.aux_arcs:
            raise TrainingError(f'--aux-weight: {config.data} has no arc_free_m/arc_clearance_m '
                                f'arrays of {net_config.aux_arcs} arcs')
        # Each half (free lengths, clearances) to ~[0, 1] by its largest training value.
        top = [max(float(a.max()), 1e-3) for a in (train_set.arc_free_m, train_set.arc_clearance_m)]
        aux_scale = np.repeat(np.array(top, np.float32), net_config.aux_arcs)
    logger.info('normalization (%s) mean %s std %s', spec.color_space,
                [round(v, 3) for v in spec.mean], [round(v, 3) for v in spec.std])
    logger.info('data %s: %d train frames (%d worlds), %d held-out frames (worlds %s), loaded in %.1f s',
                manifest.data_id, len(train_set), len(train_seeds), len(val_set), val_seeds,
                time.perf_counter() - started)

    model = SteeringNet(net_config)
    if perception is not None and resume is None:
        try:
            model.perception.load_state_dict(perception['state_dict'])
        except RuntimeError as exc:
            raise TrainingError(f'--perception: {config.perception}: its weights do not fit its '
                                f'model_config ({first_line(exc)})') from None
    if init is not None and resume is None:
        state = dict(init['state_dict'])
        if grow_speed:
            state.update(speed_rows(state, model, train_set.speed))
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # a weight of another shape
            raise TrainingError(f'--init: {config.init}: its weights do not fit its model_config '
                                f'({first_line(exc)})') from None
        if unexpected or any(not key.startswith('aux.') for key in missing):
            raise TrainingError(f'--init: {config.init} does not fit its own model_config '
                                f'(missing {missing[:3]}, unexpected {unexpected[:3]})')
    groups = [{'params': [p for p in model.parameters() if p.requires_grad], 'lr': config.lr}]
    if config.perception_lr > 0:  # fine-tune it too, usually slower than the steering layers
        model.perception.requires_grad_(True)
        groups.append({'params': list(model.perception.parameters()), 'lr': config.perception_lr})
    model = model.to(device)
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    plan = EpochPlan.make(len(train_set), config.batch_size, config.seed, config.epochs, config.dry_run, ddp)
    scheduler = plan.cosine_schedule(optimizer)
    history: list[dict[str, float]] = []
    best_mae = math.inf
    start_epoch = 0
    if resume is not None:
        history, start_epoch = restore(resume, model, optimizer, scheduler, plan,
                                         config.resume or out / 'last.pt', {'best_val_mae': float})
        best_mae = float(resume['best_val_mae'])
        logger.info('resuming after epoch %d (best val MAE %.4f)', start_epoch, best_mae)
    augment_config, geometry = augment_setup(config, manifest.source, spec)
    logger.info('augmentation: %s', augment_config)
    # After resume (DDP broadcasts rank 0's weights); a head the loss may not use has no gradient.
    trained = ddp.wrap(_TrainingOutputs(model), device, find_unused_parameters=True)

    for epoch in range(start_epoch + 1, plan.epochs + 1):
        model.train()
        batches, rng = plan.batches(epoch, ddp)
        epoch_start = time.perf_counter()
        losses = []
        bar = tqdm(batches, desc=f'epoch {epoch}/{plan.epochs}', unit='batch',
                   disable=None if ddp.is_main else True, leave=False)
        for indices in bar:
            inputs, targets = make_batch(train_set, indices, spec, rng, augment_config, geometry,
                                         config.label, aux_scale)
            outputs = trained(torch.from_numpy(inputs).to(device))
            losses.append(optimizer_step(steering_loss(outputs, targets, net_config, config, device),
                                         optimizer, scheduler, epoch))
            bar.set_postfix(loss=f'{losses[-1]:.4g}')
        train_seconds = time.perf_counter() - epoch_start
        train_loss = ddp.mean(float(np.mean(losses)))
        if not ddp.is_main:
            ddp.barrier()  # wait for rank 0's validation and checkpoint
            continue
        bn_batches = train_batches(len(train_set), config.batch_size, rng)[:DRY_RUN_BATCHES if config.dry_run
                                                                          else PRECISE_BN_BATCHES]
        recompute_batchnorm(model, bn_batches, train_set, spec, device)
        val = evaluate(model, val_set, spec, config.batch_size, config.deadband, device,
                       DRY_RUN_BATCHES if config.dry_run else None, config.label)
        record = {'epoch': float(epoch), 'train_loss': train_loss,
                  'lr': float(scheduler.get_last_lr()[0]), 'train_seconds': train_seconds,
                  'train_samples_per_s': ddp.world_size * len(losses) * config.batch_size
                  / max(train_seconds, 1e-9), 'processes': float(ddp.world_size),
                  **val}
        history.append(record)
        improved = record['val_mae'] < best_mae
        best_mae = min(best_mae, record['val_mae'])
        checkpoint = {
            'format': CHECKPOINT_FORMAT, 'version': CHECKPOINT_VERSION, 'task': 'steering',
            'model_config': asdict(net_config), 'preprocess': spec.to_dict(),
            'state_dict': model.state_dict(), 'optimizer': optimizer.state_dict(),
            'scheduler': scheduler.state_dict(), 'epoch': epoch, 'metrics': record,
            'history': history, 'best_val_mae': best_mae, 'data_id': manifest.data_id,
            'data_dir': str(Path(config.data).resolve()), 'train_seeds': train_seeds,
            'val_seeds': val_seeds, 'deadband': config.deadband, 'train_config': asdict(config),
            'camera': training_camera(manifest.source),
            'perception': perception_record,
            'init': init_path,
            'created_by': f'dave_models {package_version()} train.py (torch {torch.__version__})',
        }
        save_learning_curve(history, out / 'learning_curve.png')
        summary = {'data_id': manifest.data_id, 'train_worlds': train_seeds, 'val_worlds': val_seeds,
                   'train_frames': len(train_set), 'val_frames': len(val_set),
                   'deadband_per_m': config.deadband, 'best_val_mae': best_mae, 'history': history}
        atomic_write_text(out / 'metrics.json', json.dumps(summary, indent=1) + '\n')
        save_checkpoint(out, checkpoint, improved)  # last: it marks the epoch done
        logger.info('epoch %d: train loss %.5f, val MAE %.4f 1/m (straight %.4f), direction '
                    'accuracy %.3f (%.3f within %d frames; straight %.3f), avoid rate %.3f (expert %.3f), '
                    '%.0f samples/s%s',
                    epoch, record['train_loss'], record['val_mae'], record['val_mae_zero_baseline'],
                    record['val_direction_accuracy'],
                    record.get(f'val_direction_accuracy_within_{TIMING_TOLERANCE_FRAMES}_frames', math.nan),
                    TIMING_TOLERANCE_FRAMES, record['val_direction_accuracy_straight_baseline'],
                    record.get('val_avoid_rate', math.nan), record.get('val_avoid_rate_expert', math.nan),
                    record['train_samples_per_s'], ' *best*' if improved else '')
        if 'val_direction_near_tie_fraction' in record:
            logger.info('epoch %d: %.0f %% of held-out frames are near-ties of the expert (holding %.0f %% '
                        'of the misses); direction accuracy on the others %.3f', epoch,
                        100 * record['val_direction_near_tie_fraction'], 100 * record['val_direction_misses_near_tie'],
                        record.get('val_direction_accuracy_decisive', math.nan))
        if 'val_speed_mae' in record:
            logger.info('epoch %d: speed MAE %.3f m/s; turn in place found %s of the time, right %s of the '
                        'times it is predicted', epoch, record['val_speed_mae'],
                        *(f'{record[key]:.2f}' if key in record else 'n/a'
                          for key in ('val_turn_in_place_recall', 'val_turn_in_place_precision')))
        if 'val_expert_direction_accuracy' in record:
            logger.info('epoch %d against the expert label: val MAE %.4f 1/m, direction accuracy %.3f',
                        epoch, record['val_expert_mae'], record['val_expert_direction_accuracy'])
        ddp.barrier()
    return finish(out, ddp, history, start_epoch, plan.epochs)


def run(args: argparse.Namespace) -> int:
    """`dave train steering`: train as configured; errors are one logged line, exit code 2."""
    try:
        config = config_from_args(args)
        summary = train(config)
    except (TrainingError, ValueError) as exc:  # DatasetError is a ValueError
        logger.error('%s', exc)
        return 2
    logger.info('best held-out MAE %.4f 1/m; checkpoints in %s', summary['best_val_mae'], config.out)
    return 0
