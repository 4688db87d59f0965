"""Traversability training sets built from the bags `dave collect` (or `dave record`) writes.

    python -m dave_models.traversability_data --data out/collect/trav_v1 --cache out/cache/trav_v1
    python -m dave_models.traversability_data --data out/collect/trav_v1 --cache out/cache/s --labels stereo

Two label sources (`labels`):
- 'gt': the simulator's ground-truth classes (/sim/left/labels, mono8: 0 traversable, 1 obstacle,
  2 sky/unknown), paired with the left image by header stamp.
- 'stereo': labels made from the recorded stereo pair and its CameraInfos by
  dave_core.stereo_geometry at camera resolution (0/1/2 or IGNORE = 255, not a training target),
  what a real robot has. When the bags also hold simulator ground truth, it is kept beside them
  for scoring only: `gt_labels`, and `far`, the pixels whose true depth (/sim/left/depth) is
  beyond the labeller's range, where the network has to see further than stereo.

Images are resized to network size with area averaging, labels (and the far mask) by nearest
neighbour (classes are never blended, IGNORE stays IGNORE), and cached as one .npz per bag and
label source, so a second run reads ~60-120 KB per frame instead of decoding MCAP (and matching
stereo) again. The cache key holds the label source and the whole stereo configuration and a hash of
the labeller's source: caches of other settings or other labelling code are never read.

A bag is one world (its seed comes from the episode record `dave collect` stores in the bag's
metadata), and training splits BY WORLD SEED, never by frame: consecutive frames of one drive
are near-duplicates, so a frame split would score validation on scenery already trained on.
`data_id` is a hash of the cached pixels and labels, so a checkpoint names exactly its data.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from dave_core import logs
from dave_core import recording as rec
from dave_core import stereo_geometry
from dave_core.atomic_file import atomic_write
from dave_core.segmentation import CLASS_IDS, SegmentationSpec, resize_image, resize_labels
from dave_core.stereo_geometry import (IGNORE, StereoCalibration, StereoGeometryError, StereoLabelConfig,
                                       label_pair)
from dave_models.traversability_train_config import LABEL_SOURCES

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
    labels: np.ndarray  # (N, h, w) uint8 training targets: class ids, IGNORE (255) = none
    world_seed: np.ndarray  # (N,) int64
    camera_size: tuple[int, int]  # (width, height) of the recorded camera
    data_id: str
    label_source: str = 'gt'
    # Simulator ground truth for scoring (None: the bags have none, e.g. a real robot's).
    gt_labels: np.ndarray | None = None  # (N, h, w) uint8 class ids
    far: np.ndarray | None = None  # (N, h, w) bool: true depth beyond the stereo labeller's range

    def __post_init__(self) -> None:
        if self.label_source == 'gt' and self.gt_labels is None:
            self.gt_labels = self.labels  # the targets are the ground truth

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def world_seeds(self) -> list[int]:
        return sorted(int(s) for s in np.unique(self.world_seed))

    def select(self, seeds: Iterable[int]) -> 'TraversabilitySet':
        """The frames of the given worlds (the data_id stays the whole set's)."""
        keep = np.isin(self.world_seed, list(seeds))
        pick = (lambda a: None if a is None else a[keep])
        return TraversabilitySet(self.images[keep], self.labels[keep], self.world_seed[keep],
                                 self.camera_size, self.data_id, self.label_source,
                                 pick(self.gt_labels) if self.label_source != 'gt' else None,
                                 pick(self.far))


def validate_arrays(images: np.ndarray, labels: np.ndarray, where: str, ignore_ok: bool = False) -> None:
    """Raise TraversabilityDataError naming `where` for the first problem in the arrays.

    `ignore_ok`: the labels are training targets that may hold IGNORE (stereo labels)."""
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
    values = labels[labels != IGNORE] if ignore_ok else labels
    if values.size and values.max() >= NUM_CLASSES:
        raise TraversabilityDataError(f'{where}: label value {int(values.max())} is not a class id '
                                      f'(expected 0..{NUM_CLASSES - 1}{" or 255" if ignore_ok else ""})')


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


def read_topics(bag: Path, topics: tuple[str, ...]) -> dict[str, dict[int, object]]:
    """topic -> {header stamp ns: message} of one bag; a corrupt or foreign file names the bag."""
    found: dict[str, dict[int, object]] = {topic: {} for topic in topics}
    try:
        for topic, _, msg in rec.read_messages(bag, topics):
            found[topic][rec.stamp_to_ns(msg.header.stamp)] = msg
    except rec.RecordingError as exc:
        raise TraversabilityDataError(f'{bag}: {exc}') from None
    except Exception as exc:  # rosbags/zstd/mcap errors of a truncated or corrupt file
        raise TraversabilityDataError(f'{bag}: unreadable recording ({type(exc).__name__}: {exc})') from None
    return found


def _image(bag: Path, topic: str, msg, encoding: str) -> np.ndarray:
    if msg.encoding != encoding:
        raise TraversabilityDataError(f'{bag}: {topic} has encoding {msg.encoding!r}, expected {encoding}')
    try:
        return rec.image_to_numpy(msg).copy()
    except rec.RecordingError as exc:
        raise TraversabilityDataError(f'{bag}: {topic}: {exc}') from None


def _size(array: np.ndarray) -> str:
    return f'{array.shape[1]}x{array.shape[0]}'


def read_bag(bag: Path, spec: SegmentationSpec, frame_stride: int = 1
             ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(images, labels, camera (width, height)) of one bag: left images paired with GT by stamp."""
    found = read_topics(bag, (rec.LEFT_IMAGE, rec.GT_LABELS))
    lefts, labels = found[rec.LEFT_IMAGE], found[rec.GT_LABELS]
    stamps = sorted(set(lefts) & set(labels))[::frame_stride]
    if not stamps:
        raise TraversabilityDataError(f'{bag}: no samples ({len(lefts)} {rec.LEFT_IMAGE} and '
                                      f'{len(labels)} {rec.GT_LABELS} messages share no stamp)')
    camera = None
    images_small, labels_small = [], []
    for stamp in stamps:
        image = _image(bag, rec.LEFT_IMAGE, lefts[stamp], 'rgb8')
        label = _image(bag, rec.GT_LABELS, labels[stamp], 'mono8')
        camera = camera or image.shape[1::-1]
        if image.shape[:2] != label.shape:
            raise TraversabilityDataError(f'{bag}: at stamp {stamp} the left image is {_size(image)} '
                                          f'but the labels are {_size(label)}')
        if image.shape[1::-1] != camera:
            raise TraversabilityDataError(f'{bag}: image size changes within the bag at stamp {stamp}')
        images_small.append(resize_image(image, spec))
        labels_small.append(resize_labels(label, spec.height, spec.width))
    images_array, labels_array = np.stack(images_small), np.stack(labels_small)
    validate_arrays(images_array, labels_array, str(bag))
    return images_array, labels_array, (int(camera[0]), int(camera[1]))


@dataclass
class StereoBagFrames:
    """One bag's frames at network size with stereo labels (and GT for scoring when recorded)."""
    images: np.ndarray  # (N, h, w, 3) uint8
    labels: np.ndarray  # (N, h, w) uint8 stereo labels, IGNORE where the labeller abstains
    gt_labels: np.ndarray | None  # (N, h, w) uint8, None without /sim/left/labels
    far: np.ndarray | None  # (N, h, w) bool, None without /sim/left/depth
    camera: tuple[int, int]
    no_ground: int  # frames where no ground plane fit the prior (all IGNORE)


def bag_calibration(bag: Path, left_infos: dict, right_infos: dict) -> StereoCalibration:
    """The one calibration of a bag's CameraInfos (a rectified camera's do not change)."""
    pairs = sorted(set(left_infos) & set(right_infos))
    if not pairs:
        raise TraversabilityDataError(f'{bag}: no {rec.LEFT_INFO} / {rec.RIGHT_INFO} pair with one stamp '
                                      f'({len(left_infos)} and {len(right_infos)} messages); stereo '
                                      f'labels need the camera calibration')
    seen = {}
    for stamp in pairs:
        left, right = left_infos[stamp], right_infos[stamp]
        key = (int(left.width), int(left.height), int(right.width), int(right.height),
               tuple(np.asarray(left.p, float)), tuple(np.asarray(right.p, float)))
        seen.setdefault(key, stamp)
    if len(seen) > 1:
        stamps = sorted(seen.values())
        raise TraversabilityDataError(f'{bag}: the camera calibration changes within the bag (at stamp '
                                      f'{stamps[1]}); one bag, one calibration')
    (width, height, right_width, right_height, left_p, right_p), = seen
    if (width, height) != (right_width, right_height):
        raise TraversabilityDataError(f'{bag}: camera_info sizes differ: left {width}x{height}, right '
                                      f'{right_width}x{right_height}')
    try:
        return StereoCalibration.from_projections(width, height, left_p, right_p)
    except StereoGeometryError as exc:
        raise TraversabilityDataError(f'{bag}: {exc}') from None


def read_stereo_bag(bag: Path, spec: SegmentationSpec, frame_stride: int = 1,
                    config: StereoLabelConfig = StereoLabelConfig()) -> StereoBagFrames:
    """Stereo labels of every left/right pair of one bag (paired by stamp), at network size."""
    topics = (rec.LEFT_IMAGE, rec.RIGHT_IMAGE, rec.LEFT_INFO, rec.RIGHT_INFO, rec.GT_LABELS, rec.GT_DEPTH)
    found = read_topics(bag, topics)
    lefts, rights = found[rec.LEFT_IMAGE], found[rec.RIGHT_IMAGE]
    truth, depths = found[rec.GT_LABELS], found[rec.GT_DEPTH]
    stamps = set(lefts) & set(rights)
    has_truth = bool(truth) and bool(depths)  # simulator bags; a robot's have neither
    if has_truth:
        stamps &= set(truth) & set(depths)
    stamps = sorted(stamps)[::frame_stride]
    if not stamps:
        extra = f', {len(truth)} {rec.GT_LABELS}, {len(depths)} {rec.GT_DEPTH}' if has_truth else ''
        raise TraversabilityDataError(f'{bag}: no samples ({len(lefts)} {rec.LEFT_IMAGE}, {len(rights)} '
                                      f'{rec.RIGHT_IMAGE}{extra} messages share no stamp)')
    calibration = bag_calibration(bag, found[rec.LEFT_INFO], found[rec.RIGHT_INFO])
    camera = (calibration.width, calibration.height)
    images, labels, gt_labels, far, no_ground = [], [], [], [], 0
    for stamp in stamps:
        left = _image(bag, rec.LEFT_IMAGE, lefts[stamp], 'rgb8')
        right = _image(bag, rec.RIGHT_IMAGE, rights[stamp], 'rgb8')
        if left.shape != right.shape:
            raise TraversabilityDataError(f'{bag}: at stamp {stamp} the left image is {_size(left)} but '
                                          f'the right image is {_size(right)}')
        if left.shape[1::-1] != camera:
            raise TraversabilityDataError(f'{bag}: at stamp {stamp} the images are {_size(left)} but '
                                          f'camera_info says {camera[0]}x{camera[1]}')
        try:
            result = label_pair(left, right, calibration, config)
        except StereoGeometryError as exc:
            raise TraversabilityDataError(f'{bag}: at stamp {stamp}: {exc}') from None
        no_ground += result.plane is None
        images.append(resize_image(left, spec))
        labels.append(resize_labels(result.labels, spec.height, spec.width))
        if has_truth:
            label = _image(bag, rec.GT_LABELS, truth[stamp], 'mono8')
            depth = _image(bag, rec.GT_DEPTH, depths[stamp], '32FC1')
            for name, array in ((rec.GT_LABELS, label), (rec.GT_DEPTH, depth)):
                if array.shape != left.shape[:2]:
                    raise TraversabilityDataError(f'{bag}: at stamp {stamp} the left image is '
                                                  f'{_size(left)} but {name} is {_size(array)}')
            if np.isnan(depth).any():  # +inf is "nothing there"; NaN is a broken recording
                raise TraversabilityDataError(f'{bag}: at stamp {stamp} {rec.GT_DEPTH} contains NaN')
            gt_labels.append(resize_labels(label, spec.height, spec.width))
            beyond = (np.isfinite(depth) & (depth > config.max_range_m)).astype(np.uint8)
            far.append(resize_labels(beyond, spec.height, spec.width).astype(bool))
    frames = StereoBagFrames(np.stack(images), np.stack(labels), np.stack(gt_labels) if has_truth else None,
                             np.stack(far) if has_truth else None, camera, no_ground)
    validate_arrays(frames.images, frames.labels, str(bag), ignore_ok=True)
    if frames.gt_labels is not None:
        validate_arrays(frames.images, frames.gt_labels, f'{bag} {rec.GT_LABELS}')
    return frames


def _bag_key(bag: Path, spec: SegmentationSpec, frame_stride: int, labels: str = 'gt',
             stereo: StereoLabelConfig | None = None) -> str:
    """Identity of (bag contents, preprocessing, label source and its settings): metadata.yaml bytes,
    every file's size, and for stereo labels the whole labeller configuration."""
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_VERSION, spec.height, spec.width, spec.interpolation,
                              frame_stride]).encode())
    if labels != 'gt':  # the gt key is unchanged, so existing GT caches stay valid
        digest.update(json.dumps([labels, (stereo or StereoLabelConfig()).to_dict()], sort_keys=True).encode())
        digest.update(_labeller_source_digest().encode())
    for file in sorted(bag.iterdir()):
        digest.update(file.name.encode())
        digest.update(str(file.stat().st_size).encode())
    digest.update((bag / 'metadata.yaml').read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _labeller_source_digest() -> str:
    """sha256 of the stereo labeller's source: labels cached by other code are never reused."""
    return hashlib.sha256(Path(stereo_geometry.__file__).read_bytes()).hexdigest()


def _content_digest(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


_CACHED = ('images', 'labels', 'world_seed', 'camera', 'digest')
_CACHED_TRUTH = ('gt_labels', 'far')  # stereo caches of simulator bags only


def _load_cache(path: Path, key: str, ignore_ok: bool = False) -> dict | None:
    """The cached arrays of one bag, or None when absent or made from other bags/settings."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data['format']) != CACHE_FORMAT or str(data['key']) != key:
                return None
            cached = {name: data[name] for name in _CACHED}
            cached.update({name: data[name] for name in _CACHED_TRUTH if name in data.files})
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise TraversabilityDataError(f'{path}: unreadable cache file ({exc}); delete it') from None
    validate_arrays(cached['images'], cached['labels'], str(path), ignore_ok)
    if 'gt_labels' in cached:
        validate_arrays(cached['images'], cached['gt_labels'], f'{path} gt_labels')
        if cached.get('far') is None or cached['far'].shape != cached['gt_labels'].shape \
                or cached['far'].dtype != bool:
            raise TraversabilityDataError(f'{path}: far mask missing or not (N, H, W) bool; delete it')
    return cached


def _save_cache(path: Path, arrays: dict) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, 'wb') as f:
            np.savez(f, **arrays)  # uncompressed: small images load ~10x faster than zlib'd ones
    atomic_write(path, write)


def _read_for_cache(bag: Path, key: str, spec: SegmentationSpec, frame_stride: int, labels: str,
                    stereo: StereoLabelConfig) -> dict:
    """Decode one bag (and label it) into the arrays a cache file holds."""
    seed = world_seed_of(bag, rec.read_info(bag))
    arrays = {'format': np.array(CACHE_FORMAT), 'key': np.array(key)}
    if labels == 'gt':
        images, targets, camera = read_bag(bag, spec, frame_stride)
        arrays['digest'] = np.array(_content_digest(images, targets))
    else:
        frames = read_stereo_bag(bag, spec, frame_stride, stereo)
        images, targets, camera = frames.images, frames.labels, frames.camera
        arrays['digest'] = np.array(_content_digest(images, targets))
        if frames.gt_labels is not None:
            arrays.update(gt_labels=frames.gt_labels, far=frames.far)
        if frames.no_ground:
            logger.warning('%s: no ground plane fit the prior in %d of %d frames (left unlabelled)',
                           bag.name, frames.no_ground, len(images))
    arrays.update(images=images, labels=targets, world_seed=np.full(len(images), seed, np.int64),
                  camera=np.array(camera, np.int64))
    return arrays


def build_dataset(source: str | os.PathLike, cache_dir: str | os.PathLike,
                  spec: SegmentationSpec = SegmentationSpec(), frame_stride: int = 1, labels: str = 'gt',
                  stereo: StereoLabelConfig | None = None) -> TraversabilitySet:
    """All bags under `source` at network size, reusing `cache_dir`/*.npz when still valid.

    labels: 'gt' (simulator ground truth) or 'stereo' (dave_core.stereo_geometry with `stereo`,
    default StereoLabelConfig()). A stereo set keeps the ground truth for scoring when every
    bag has it (gt_labels, far), else gt_labels is None.
    """
    if labels not in LABEL_SOURCES:
        raise TraversabilityDataError(f'labels must be one of {LABEL_SOURCES}, got {labels!r}')
    if not isinstance(frame_stride, int) or frame_stride < 1:
        raise TraversabilityDataError(f'frame_stride must be an integer >= 1, got {frame_stride!r}')
    stereo = stereo or StereoLabelConfig()
    bags = find_bags(source)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    suffix = '' if labels == 'gt' else f'_stereo-{_stereo_id(stereo)}'
    parts, digests, camera = [], [], None
    for bag in bags:
        key = _bag_key(bag, spec, frame_stride, labels, stereo)
        cache_path = cache_dir / f'{bag.name}_{spec.width}x{spec.height}_s{frame_stride}{suffix}.npz'
        cached = _load_cache(cache_path, key, ignore_ok=labels != 'gt')
        if cached is None:
            cached = _read_for_cache(bag, key, spec, frame_stride, labels, stereo)
            _save_cache(cache_path, cached)
            logger.info('%s: world %d, %d frames (%s labels) cached in %s', bag.name,
                        int(cached['world_seed'][0]), len(cached['images']), labels, cache_path)
        bag_camera = tuple(int(v) for v in cached['camera'])
        if camera is None:
            camera = bag_camera
        elif bag_camera != camera:
            raise TraversabilityDataError(f'{bag}: camera is {bag_camera[0]}x{bag_camera[1]}, earlier '
                                          f'bags are {camera[0]}x{camera[1]}; one set, one camera')
        parts.append(cached)
        digests.append(str(cached['digest']))
    data_id = 'trav-' + hashlib.sha256('\n'.join(sorted(digests)).encode()).hexdigest()[:16]
    with_truth = labels != 'gt' and all('gt_labels' in p for p in parts)
    if labels != 'gt' and not with_truth and any('gt_labels' in p for p in parts):
        logger.warning('%s: only some bags hold simulator ground truth; scoring against stereo labels', source)
    join = (lambda name: np.concatenate([p[name] for p in parts]))
    return TraversabilitySet(images=join('images'), labels=join('labels'), world_seed=join('world_seed'),
                             camera_size=camera, data_id=data_id, label_source=labels,
                             gt_labels=join('gt_labels') if with_truth else None,
                             far=join('far') if with_truth else None)


def _stereo_id(config: StereoLabelConfig) -> str:
    """Short hash of a labeller configuration, for cache file names."""
    return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:8]


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
    parser.add_argument('--labels', choices=LABEL_SOURCES, default='gt',
                        help='gt: simulator ground truth; stereo: labels from stereo geometry (default: gt)')
    args = parser.parse_args(argv)
    logs.configure()
    try:
        data = build_dataset(args.data, args.cache, frame_stride=args.frame_stride, labels=args.labels)
    except TraversabilityDataError as exc:
        logger.error('%s', exc)
        return 2
    freq = class_frequencies(data.labels)
    labelled = float(np.mean(data.labels != IGNORE))
    logger.info('%s: %d frames of %d worlds, camera %dx%d, %s labels on %.1f %% of the pixels, classes %s',
                data.data_id, len(data), len(data.world_seeds), *data.camera_size, args.labels,
                100 * labelled, ', '.join(f'{name} {freq[i]:.1%}' for name, i in CLASS_IDS.items()))
    return 0


if __name__ == '__main__':
    from dave_core.entry import run_tool
    raise SystemExit(run_tool(main, 'python -m dave_models.traversability_data'))
