"""Score an exported traversability model on recorded worlds, at camera resolution, as deployed.

    python -m dave_models.traversability_eval --model models/traversability.onnx \\
        --data out/collect/trav_v1 --seeds 30-35 --json out/trav_eval.json
    python -m dave_models.traversability_eval --model out/train/trav_stereo_v1/traversability_stereo.onnx \\
        --data out/collect/trav_v1 --seeds 30-35 --stereo --sheet out/trav_stereo_sheet.png --json J

Every left image of the selected worlds' bags goes through `TraversabilitySegmenter.segment`
(the node's path: resize, network, argmax, nearest upsampling) and is compared with the
simulator's ground truth at the camera's own resolution. Training validates at network size;
this is the figure a consumer of /traversability/labels sees.

With the ground-truth depth in the bags it also scores the pixels beyond stereo range (true
depth > --far-range, surfaces only): far_miou, far_iou_traversable, far_iou_obstacle. With
--stereo it labels every pair by stereo geometry (dave_core.stereo_geometry, default
configuration) and scores those labels the same way, as stereo_* (unlabelled pixels read as
class 2, so they count wrong for a ground-truth 0/1 pixel), plus their accuracy where they give
a label and the share of pixels they label. --sheet draws a few frames: left image, ground
truth, stereo labels (with --stereo), network.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np

from dave_core import logs
from dave_core import recording as rec
from dave_core.atomic_file import atomic_write, atomic_write_text
from dave_core.onnx_runner import MODEL_LOAD_ERRORS
from dave_core.segmentation import TraversabilitySegmenter
from dave_core.seeds import parse_seed_list
from dave_core.stereo_geometry import IGNORE, StereoLabelConfig, label_pair
from dave_models.traversability_data import (NUM_CLASSES, TraversabilityDataError, bag_calibration,
                                             find_bags, read_topics, world_seed_of)
from dave_models.traversability_train import confusion_matrix, iou_metrics

logger = logging.getLogger(__name__)

FAR_KEYS = ('miou', 'iou_traversable', 'iou_obstacle')  # beyond range: surfaces, so no class 2
# Colours of the contact sheet: traversable green, obstacle red, unknown/sky blue, IGNORE black.
PALETTE = np.zeros((256, 3), np.uint8)
PALETTE[:3] = [(70, 170, 70), (210, 50, 50), (130, 170, 235)]


class _Score:
    """Confusion matrices of one labelling (network or stereo) over all pixels and beyond range."""

    def __init__(self) -> None:
        self.all = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
        self.far = np.zeros_like(self.all)
        self.labelled = np.zeros_like(self.all)
        self.pixels = 0
        self.labelled_pixels = 0

    def add(self, predicted: np.ndarray, truth: np.ndarray, far: np.ndarray | None) -> None:
        self.all += confusion_matrix(predicted, truth)
        if far is not None:
            self.far += confusion_matrix(predicted, truth, mask=far)
        given = predicted != IGNORE
        self.labelled += confusion_matrix(predicted, truth, mask=given)
        self.pixels += predicted.size
        self.labelled_pixels += int(given.sum())

    def figures(self, prefix: str, with_far: bool, with_labelled: bool) -> dict[str, float]:
        out = {f'{prefix}{k}': v for k, v in iou_metrics(self.all).items()}
        if with_far:
            far = iou_metrics(self.far)
            out.update({f'{prefix}far_{k}': far[k] for k in FAR_KEYS})
        if with_labelled:
            inside = iou_metrics(self.labelled)
            out[f'{prefix}labelled_miou'] = inside['miou']
            out[f'{prefix}labelled_accuracy'] = inside['pixel_accuracy']
            out[f'{prefix}coverage'] = self.labelled_pixels / max(self.pixels, 1)
        return out


def evaluate_bags(segmenter: TraversabilitySegmenter, bags: list[Path], far_range_m: float | None = None,
                  stereo: StereoLabelConfig | None = None, sheet: Path | None = None,
                  sheet_frames: int = 6) -> dict[str, float]:
    """IoU metrics over every (left image, GT labels) pair with one stamp in `bags`.

    far_range_m: also score pixels whose GT depth is beyond it (needs /sim/left/depth).
    stereo: also label each pair by stereo geometry and score those labels (stereo_*).
    """
    network, stereo_score = _Score(), _Score()
    frames, far_pixels, total_pixels = 0, 0, 0
    with_far = far_range_m is not None
    topics = (rec.LEFT_IMAGE, rec.GT_LABELS) + ((rec.GT_DEPTH,) if with_far else ()) + (
        (rec.RIGHT_IMAGE, rec.LEFT_INFO, rec.RIGHT_INFO) if stereo is not None else ())
    samples: list[tuple[np.ndarray, ...]] = []
    for bag in bags:
        found = read_topics(bag, topics)
        calibration = bag_calibration(bag, found[rec.LEFT_INFO], found[rec.RIGHT_INFO]) if stereo else None
        stamps = set(found[rec.LEFT_IMAGE]) & set(found[rec.GT_LABELS])
        for topic in ((rec.GT_DEPTH,) if with_far else ()) + ((rec.RIGHT_IMAGE,) if stereo else ()):
            stamps &= set(found[topic])
        for stamp in sorted(stamps):
            left = rec.image_to_numpy(found[rec.LEFT_IMAGE][stamp])
            truth = rec.image_to_numpy(found[rec.GT_LABELS][stamp])
            far = None
            if with_far:
                depth = rec.image_to_numpy(found[rec.GT_DEPTH][stamp])
                far = np.isfinite(depth) & (depth > far_range_m)
                far_pixels += int(far.sum())
            predicted = segmenter.segment(left)
            network.add(predicted, truth, far)
            labels = None
            if stereo is not None:
                right = rec.image_to_numpy(found[rec.RIGHT_IMAGE][stamp])
                labels = label_pair(left, right, calibration, stereo).labels
                stereo_score.add(labels, truth, far)
            if sheet is not None:
                samples.append((left.copy(), truth.copy(), labels, predicted))
            total_pixels += truth.size
            frames += 1
    if frames == 0:
        raise TraversabilityDataError(f'{bags[0].parent}: no image/label pairs in the selected bags')
    figures = network.figures('', with_far, False)
    if stereo is not None:
        figures.update(stereo_score.figures('stereo_', with_far, True))
    if with_far:
        figures['far_pixel_share'] = far_pixels / max(total_pixels, 1)
    figures['frames'] = float(frames)
    if sheet is not None:
        save_sheet(samples, sheet, sheet_frames)
    return figures


def save_sheet(samples: list[tuple[np.ndarray, ...]], path: Path, count: int) -> None:
    """Rows of evenly spaced frames: left image | ground truth | stereo labels | network."""
    import cv2

    picks = np.linspace(0, len(samples) - 1, min(count, len(samples))).round().astype(int)
    rows = []
    for i in picks:
        left, truth, stereo, predicted = samples[i]
        panels = [left, PALETTE[truth]] + ([PALETTE[stereo]] if stereo is not None else []) + [PALETTE[predicted]]
        rows.append(np.concatenate(panels, axis=1))
    image = np.concatenate(rows, axis=0)
    ok, png = cv2.imencode('.png', np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError(f'{path}: could not encode the sheet')
    atomic_write(path, lambda tmp: tmp.write_bytes(png.tobytes()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', type=Path, required=True, help='the .onnx (its sidecar beside it)')
    parser.add_argument('--data', required=True, help='a `dave collect` directory or a folder of bags')
    parser.add_argument('--seeds', required=True, help='world seeds to score, e.g. 30-35')
    parser.add_argument('--far-range', type=float, default=StereoLabelConfig().max_range_m,
                        help='score pixels whose true depth is beyond this many metres as far_* '
                             '(default: the stereo labeller\'s range, %(default)s m; 0: off)')
    parser.add_argument('--stereo', action='store_true',
                        help='also label every pair by stereo geometry and score those labels (stereo_*)')
    parser.add_argument('--sheet', type=Path, default=None,
                        help='draw a contact sheet PNG: left | truth | stereo labels | network')
    parser.add_argument('--json', type=Path, default=None, help='also write the figures here')
    args = parser.parse_args(argv)
    logs.configure()
    if not 0 <= args.far_range < float('inf'):
        logger.error('--far-range must be a finite number of metres >= 0, got %s', args.far_range)
        return 2
    try:
        wanted = set(parse_seed_list(args.seeds))
        segmenter = TraversabilitySegmenter.load(args.model)
        bags = [b for b in find_bags(args.data) if world_seed_of(b, rec.read_info(b)) in wanted]
        if not bags:
            raise TraversabilityDataError(f'--data {args.data}: no bag of worlds {sorted(wanted)}')
        figures = evaluate_bags(segmenter, bags, args.far_range or None,
                                StereoLabelConfig() if args.stereo else None, args.sheet)
    except (*MODEL_LOAD_ERRORS, ValueError) as exc:
        logger.error('%s', exc)
        return 2
    # NaN (a class absent from the frames) is null in the JSON: bare NaN is not JSON.
    figures = {**{k: round(v, 4) if math.isfinite(v) else None for k, v in figures.items()}, 'seeds': args.seeds,
               'model': str(args.model), 'far_range_m': args.far_range}
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(figures, indent=1) + '\n')
    logger.info('%s', ' '.join(f'{k}={v}' for k, v in figures.items()))
    return 0


if __name__ == '__main__':
    from dave_core.entry import run_tool
    raise SystemExit(run_tool(main, 'python -m dave_models.traversability_eval'))
