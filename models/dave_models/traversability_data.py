"""Traversability training sets built from the bags `dave collect` writes.

    python -m dave_models.traversability_data --data out/collect/trav_v1 --cache out/cache/trav_v1

Each bag (rosbag2/MCAP, dave_core.recording format) holds the left image and the simulator's
ground-truth classes (/sim/left/labels, mono8: 0 traversable, 1 obstacle, 2 sky/unknown) with
the same header stamp; they are paired by that stamp. Images are resized to network size with
area averaging, labels by nearest neighbour (classes are never blended), and cached as one .npz
per bag, so a second run reads ~60 KB per frame instead of decoding MCAP again.

A bag is one world (its seed comes from the episode record `dave collect` stores in the bag's
metadata), and training splits BY WORLD SEED, never by frame: consecutive frames of one drive
are near-duplicates, so a frame split would score validation on scenery already trained on.
`data_id` is a hash of the cached pixels and labels, so a checkpoint names exactly its data.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from dave_core import recording as rec
from dave_core.atomic_file import atomic_write
from dave_core.segmentation import CLASS_IDS, SegmentationSpec, resize_image, resize_labels

logger = logging.getLogger(__name__)

CACHE_FORMAT = 'dave-traversability-cache'
CACHE_VERSION = 1
EPISODE_KEY = 'dave.episode'  # bag custom_data written by dave_sim.collect: the episode as JSON
_SEED_DIR_RE = re.compile(r'seed_(\d+)$')
NUM_CLASSES = len(CLASS_IDS)


class TraversabilityDataError(ValueError):
    """A bag, cache file or data directory that cannot make a training set; names the file."""


@dataclass
class TraversabilitySet:
    """Network-size frames in memory: what training and validation read."""
    images: np.ndarray  # (N, h, w, 3) uint8 RGB
    labels: np.ndarray  # (N, h, w) uint8 class ids
    world_seed: np.ndarray  # (N,) int64
    camera_size: tuple[int, int]  # (width, height) of the recorded camera
    data_id: str

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def world_seeds(self) -> list[int]:
        return sorted(int(s) for s in np.unique(self.world_seed))

    def select(self, seeds: Iterable[int]) -> 'TraversabilitySet':
        """The frames of the given worlds (the data_id stays the whole set's)."""
        keep = np.isin(self.world_seed, list(seeds))
        return TraversabilitySet(self.images[keep], self.labels[keep], self.world_seed[keep],
                                 self.camera_size, self.data_id)


def validate_arrays(images: np.ndarray, labels: np.ndarray, where: str) -> None:
    """Raise TraversabilityDataError naming `where` for the first problem in the arrays."""
    if np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
        raise TraversabilityDataError(f'{where}: images contain NaN/inf')
    if np.issubdtype(labels.dtype, np.floating) and not np.isfinite(labels).all():
        raise TraversabilityDataError(f'{where}: labels contain NaN/inf')
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise TraversabilityDataError(f'{where}: images must be (N, H, W, 3) uint8, got '
                                      f'{images.shape} {images.dtype}')
    if labels.dtype != np.uint8 or labels.shape != images.shape[:3]:
        raise TraversabilityDataError(f'{where}: labels must be (N, H, W) uint8 matching the images '
                                      f'{images.shape[:3]}, got {labels.shape} {labels.dtype}')
    if images.shape[0] == 0:
        raise TraversabilityDataError(f'{where}: no samples')
    if labels.max() >= NUM_CLASSES:
        raise TraversabilityDataError(f'{where}: label value {int(labels.max())} is not a class id '
                                      f'(expected 0..{NUM_CLASSES - 1})')


def find_bags(source: str | os.PathLike) -> list[Path]:
    """Bag directories under `source`: a `dave collect` directory, a folder of bags, or one bag."""
    source = Path(source)
    if not source.is_dir():
        raise TraversabilityDataError(f'--data {source}: not a directory')
    if (source / 'metadata.yaml').is_file():
        return [source]
    root = source / 'episodes' if (source / 'episodes').is_dir() else source
    bags = sorted(p for p in root.iterdir() if (p / 'metadata.yaml').is_file() and not p.name.startswith('.'))
    if not bags:
        raise TraversabilityDataError(f'--data {source}: no rosbag2 recordings (directories with '
                                      f'metadata.yaml) in {root}')
    return bags


def world_seed_of(bag: Path, info: rec.RecordingInfo) -> int:
    """The world seed of a bag: from the episode record `dave collect` stored, else the dir name."""
    episode = info.custom_data.get(EPISODE_KEY)
    if episode is not None:
        try:
            return int(json.loads(episode)['seed'])
        except (ValueError, KeyError, TypeError):
            raise TraversabilityDataError(f'{bag}/metadata.yaml: custom_data {EPISODE_KEY!r} has no '
                                          f'integer seed') from None
    match = _SEED_DIR_RE.search(bag.name)
    if match is None:
        raise TraversabilityDataError(f'{bag}: no world seed (neither custom_data {EPISODE_KEY!r} nor a '
                                      f'seed_N directory name); the split by world needs one')
    return int(match.group(1))


def read_bag(bag: Path, spec: SegmentationSpec, frame_stride: int = 1
             ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(images, labels, camera (width, height)) of one bag: left images paired with GT by stamp."""
    lefts: dict[int, np.ndarray] = {}
    labels: dict[int, np.ndarray] = {}
    try:
        for topic, _, msg in rec.read_messages(bag, (rec.LEFT_IMAGE, rec.GT_LABELS)):
            stamp = rec.stamp_to_ns(msg.header.stamp)
            if topic == rec.LEFT_IMAGE:
                if msg.encoding != 'rgb8':
                    raise TraversabilityDataError(f'{bag}: {topic} has encoding {msg.encoding!r}, '
                                                  f'expected rgb8')
                lefts[stamp] = rec.image_to_numpy(msg).copy()
            else:
                if msg.encoding != 'mono8':
                    raise TraversabilityDataError(f'{bag}: {topic} has encoding {msg.encoding!r}, '
                                                  f'expected mono8')
                labels[stamp] = rec.image_to_numpy(msg).copy()
    except rec.RecordingError as exc:
        raise TraversabilityDataError(f'{bag}: {exc}') from None
    stamps = sorted(set(lefts) & set(labels))[::frame_stride]
    if not stamps:
        raise TraversabilityDataError(f'{bag}: no samples ({len(lefts)} {rec.LEFT_IMAGE} and '
                                      f'{len(labels)} {rec.GT_LABELS} messages share no stamp)')
    camera = lefts[stamps[0]].shape[1::-1]
    images_small, labels_small = [], []
    for stamp in stamps:
        image, label = lefts[stamp], labels[stamp]
        if image.shape[:2] != label.shape:
            raise TraversabilityDataError(f'{bag}: at stamp {stamp} the left image is '
                                          f'{image.shape[1]}x{image.shape[0]} but the labels are '
                                          f'{label.shape[1]}x{label.shape[0]}')
        if image.shape[1::-1] != camera:
            raise TraversabilityDataError(f'{bag}: image size changes within the bag at stamp {stamp}')
        images_small.append(resize_image(image, spec))
        labels_small.append(resize_labels(label, spec.height, spec.width))
    images_array, labels_array = np.stack(images_small), np.stack(labels_small)
    validate_arrays(images_array, labels_array, str(bag))
    return images_array, labels_array, (int(camera[0]), int(camera[1]))


def _bag_key(bag: Path, spec: SegmentationSpec, frame_stride: int) -> str:
    """Identity of (bag contents, preprocessing): metadata.yaml bytes plus every file's size."""
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_VERSION, spec.height, spec.width, spec.interpolation,
                              frame_stride]).encode())
    for file in sorted(bag.iterdir()):
        digest.update(file.name.encode())
        digest.update(str(file.stat().st_size).encode())
    digest.update((bag / 'metadata.yaml').read_bytes())
    return digest.hexdigest()


def _content_digest(images: np.ndarray, labels: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images).data)
    digest.update(np.ascontiguousarray(labels).data)
    return digest.hexdigest()


def _load_cache(path: Path, key: str) -> dict | None:
    """The cached arrays of one bag, or None when absent or made from other bags/settings."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data['format']) != CACHE_FORMAT or str(data['key']) != key:
                return None
            cached = {name: data[name] for name in ('images', 'labels', 'world_seed', 'camera', 'digest')}
    except (OSError, ValueError, KeyError) as exc:
        raise TraversabilityDataError(f'{path}: unreadable cache file ({exc}); delete it') from None
    validate_arrays(cached['images'], cached['labels'], str(path))
    return cached


def _save_cache(path: Path, arrays: dict) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, 'wb') as f:
            np.savez(f, **arrays)  # uncompressed: small images load ~10x faster than zlib'd ones
    atomic_write(path, write)


def build_dataset(source: str | os.PathLike, cache_dir: str | os.PathLike,
                  spec: SegmentationSpec = SegmentationSpec(), frame_stride: int = 1) -> TraversabilitySet:
    """All bags under `source` at network size, reusing `cache_dir`/*.npz when still valid."""
    if not isinstance(frame_stride, int) or frame_stride < 1:
        raise TraversabilityDataError(f'frame_stride must be an integer >= 1, got {frame_stride!r}')
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    parts, digests, camera = [], [], None
    for bag in find_bags(source):
        key = _bag_key(bag, spec, frame_stride)
        cache_path = cache_dir / f'{bag.name}_{spec.width}x{spec.height}_s{frame_stride}.npz'
        cached = _load_cache(cache_path, key)
        if cached is None:
            info = rec.read_info(bag)
            seed = world_seed_of(bag, info)
            images, labels, bag_camera = read_bag(bag, spec, frame_stride)
            cached = {'format': np.array(CACHE_FORMAT), 'key': np.array(key), 'images': images,
                      'labels': labels, 'world_seed': np.full(len(images), seed, np.int64),
                      'camera': np.array(bag_camera, np.int64),
                      'digest': np.array(_content_digest(images, labels))}
            _save_cache(cache_path, cached)
            logger.info('%s: world %d, %d frames cached in %s', bag.name, seed, len(images), cache_path)
        bag_camera = tuple(int(v) for v in cached['camera'])
        if camera is None:
            camera = bag_camera
        elif bag_camera != camera:
            raise TraversabilityDataError(f'{bag}: camera is {bag_camera[0]}x{bag_camera[1]}, earlier '
                                          f'bags are {camera[0]}x{camera[1]}; one set, one camera')
        parts.append(cached)
        digests.append(str(cached['digest']))
    data_id = 'trav-' + hashlib.sha256('\n'.join(sorted(digests)).encode()).hexdigest()[:16]
    return TraversabilitySet(images=np.concatenate([p['images'] for p in parts]),
                             labels=np.concatenate([p['labels'] for p in parts]),
                             world_seed=np.concatenate([p['world_seed'] for p in parts]),
                             camera_size=camera, data_id=data_id)


def class_frequencies(labels: np.ndarray) -> np.ndarray:
    """Share of pixels of each class id (NUM_CLASSES,)."""
    counts = np.bincount(labels.reshape(-1), minlength=NUM_CLASSES)[:NUM_CLASSES].astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', required=True,
                        help='a `dave collect` directory, a folder of bags, or one bag')
    parser.add_argument('--cache', required=True, help='directory for the per-bag .npz cache (under out/)')
    parser.add_argument('--frame-stride', type=int, default=1, help='keep every k-th frame (default: 1)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        data = build_dataset(args.data, args.cache, frame_stride=args.frame_stride)
    except TraversabilityDataError as exc:
        logger.error('%s', exc)
        return 2
    freq = class_frequencies(data.labels)
    logger.info('%s: %d frames of %d worlds, camera %dx%d, classes %s', data.data_id, len(data),
                len(data.world_seeds), *data.camera_size,
                ', '.join(f'{name} {freq[i]:.1%}' for name, i in CLASS_IDS.items()))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
