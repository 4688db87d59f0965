"""Steering training sets built from the bags `dave collect` writes, and what a bag holds.

    dave data info out/collect/v1
    dave data build steering --data out/collect/v1 --out out/data/steering_bags_v1

Pairing: every message of one camera instant (left, right, camera infos, GT, the label
/expert/cmd_vel) carries the same header stamp (ARCHITECTURE.md), so a sample is the left
image, the right image and the label that share a stamp; nothing is matched by nearest time.

Label (the semantics of dave_sim's experts and of sim_dataset's shards): the path curvature
of the clean expert command, `w / v` of /expert/cmd_vel (1/m, + = left). A turn in place has
v = 0; its label is +-`turn_in_place_curvature_per_m` (signed like w), which `dave collect`
stores in the bag's episode record: the reactive expert labels a turn in place with its sharpest
arc (1.5 1/m), exactly what it labels in process. The planner's turn-in-place label (pure-pursuit
curvature towards an unseen route point) does not follow from (v, w) and is not recorded, so
those frames are left out and counted. Standing still (v = w = 0) is labelled 0.

A bag is one world (seed from its episode record, else its seed_N directory name): one shard
per bag, so training splits by world, never by frame.

`label='human'` reads the bags of `dave record` instead, where a person drove by teleoperation
(DAVE's own data): the label is the person's /teleop/cmd_vel on the frames the person drove
(dave_models.human_labels: /dave/intervention true, i.e. mode manual or a takeover in shared
mode), matched by receive time; frames standing still, turning in place or reversing are left out and counted. Every
segment of one recording (rec_<UTC start>_NNNN) gets the same id, the start time as a number
(rec_20261207T163000Z -> 20261207163000), used as its "world seed": training splits by drive. The output directory appears only when
complete (written under a hidden sibling name, then renamed); a failure leaves nothing behind.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dave_core import recording as rec
from dave_core.live_recording import recording_id
from dave_models.datasets import MANIFEST as SHARD_MANIFEST
from dave_models.datasets import DatasetError, Manifest, Samples, ShardWriter, building, load_manifest
from dave_models.human_labels import HumanDriver

logger = logging.getLogger(__name__)

# Written by dave_sim.collect (not imported: reading bags must not need the simulator).
EPISODE_KEY = 'dave.episode'
SETTINGS_KEY = 'dave.collect'
COLLECT_MANIFEST_FORMAT = 'dave-collect'
# Below these the expert is not driving / not turning: experts drive at >= 0.2 m/s and turn in
# place at >= 1 rad/s, and a label is w = v * k to float64 precision.
SPEED_EPS_MPS = 1e-3
YAW_RATE_EPS_RPS = 1e-3
LABEL_RULE = ('curvature = w / v of /expert/cmd_vel; v ~ 0 and w != 0 (turn in place): '
              '+-turn_in_place_curvature_per_m of the episode record (frame dropped when absent); '
              'v ~ 0 and w ~ 0: 0')
HUMAN_LABEL_RULE = ('curvature = w / v of /teleop/cmd_vel (newest at or before the frame, <= 0.5 s old, by receive '
                    'time) on frames a person drove (/dave/intervention true: mode manual or a shared-mode takeover); '
                    'standing, turning in place and reversing frames dropped')
_SEED_DIR_RE = re.compile(r'seed_(\d+)$')
# A pending instant older than this behind the newest complete one will never complete
# (collect writes an instant's messages together); dropping it bounds memory.
_PAIRING_WINDOW_NS = 1_000_000_000


class BagDataError(ValueError):
    """A bag or output directory that cannot make a data set; the message names it."""


# ---------------------------------------------------------------- finding and describing bags

def is_bag(path: Path) -> bool:
    return (path / 'metadata.yaml').is_file()


def is_collect_dir(path: Path) -> bool:
    return (path / 'manifest.json').is_file() and (path / 'episodes').is_dir()


def is_shard_dir(path: Path) -> bool:
    return (path / SHARD_MANIFEST).is_file() and any(path.glob('shard_*.npz'))


def find_bags(source: str | os.PathLike) -> list[Path]:
    """Bag directories of `source`: one bag, a `dave collect` / `dave record` directory, a folder of
    bags, or a folder of such directories (e.g. all the recordings of a robot)."""
    source = Path(source)
    if not source.is_dir():
        raise BagDataError(f'{source}: not a directory')
    if is_bag(source):
        return [source]
    root = source / 'episodes' if (source / 'episodes').is_dir() else source
    bags = sorted(p for p in root.iterdir() if is_bag(p) and not p.name.startswith('.'))
    if not bags and root == source:
        bags = sorted(p for run in source.iterdir() if (run / 'episodes').is_dir() and not run.name.startswith('.')
                      for p in (run / 'episodes').iterdir() if is_bag(p) and not p.name.startswith('.'))
    if not bags:
        raise BagDataError(f'{source}: no rosbag2 recordings (directories with metadata.yaml) in {root}')
    return bags


@dataclass(frozen=True)
class BagEpisode:
    """What a bag says about itself: metadata, world seed, episode record, collect settings."""

    path: Path
    info: rec.RecordingInfo
    seed: int | None
    record: dict[str, Any]  # dave_sim.collect.EpisodeResult as a dict; {} for other recordings
    settings: dict[str, Any] | None  # dave_sim.collect.CollectConfig.settings(), when known

    @property
    def expert(self) -> str | None:
        if self.record:
            return str(self.record.get('expert', 'planner'))  # records without it predate the reactive one
        return None

    @property
    def turn_in_place_curvature(self) -> float | None:
        value = self.record.get('turn_in_place_curvature_per_m')
        return None if value is None else float(value)

    @property
    def frames(self) -> int:
        return self.info.message_counts.get(rec.LEFT_IMAGE, 0)


def read_episode(bag: str | os.PathLike) -> BagEpisode:
    """Parse a bag's metadata.yaml and the episode record / settings `dave collect` left in it."""
    bag = Path(bag)
    try:
        info = rec.read_info(bag)
    except rec.RecordingError as exc:
        raise BagDataError(str(exc)) from None
    record: dict[str, Any] = {}
    if EPISODE_KEY in info.custom_data:
        try:
            record = json.loads(info.custom_data[EPISODE_KEY])
            if not isinstance(record, dict):
                raise TypeError('not an object')
        except (ValueError, TypeError) as exc:
            raise BagDataError(f'{bag}/metadata.yaml: custom_data {EPISODE_KEY!r} is not a JSON object '
                               f'({exc})') from None
    settings = _settings_of(bag, info)
    seed = record.get('seed')
    if seed is None:
        match = _SEED_DIR_RE.search(bag.name)
        seed = int(match.group(1)) if match else None
    elif not isinstance(seed, int) or isinstance(seed, bool):
        raise BagDataError(f'{bag}/metadata.yaml: episode record seed {seed!r} is not an integer')
    turn = record.get('turn_in_place_curvature_per_m')
    if turn is not None and not (isinstance(turn, (int, float)) and not isinstance(turn, bool)
                                 and math.isfinite(turn) and turn > 0):
        raise BagDataError(f'{bag}/metadata.yaml: episode record turn_in_place_curvature_per_m {turn!r} '
                           'is not a number > 0')
    return BagEpisode(bag, info, seed, record, settings)


def _settings_of(bag: Path, info: rec.RecordingInfo) -> dict[str, Any] | None:
    # Bags written before the settings were stored in them: the manifest of their collect directory.
    text = info.custom_data.get(SETTINGS_KEY)
    if text is not None:
        try:
            settings = json.loads(text)
        except ValueError:
            raise BagDataError(f'{bag}/metadata.yaml: custom_data {SETTINGS_KEY!r} is not JSON') from None
        return settings if isinstance(settings, dict) else None
    manifest = bag.parent.parent / 'manifest.json'
    if bag.parent.name == 'episodes' and manifest.is_file():
        try:
            document = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return None
        if isinstance(document, dict) and document.get('format') == COLLECT_MANIFEST_FORMAT:
            return document.get('settings')
    return None


def bag_summary(bag: str | os.PathLike) -> dict[str, Any]:
    """One row of `dave data info`: seed, expert, duration, frames per topic, image size, outcome."""
    episode = read_episode(bag)
    info = episode.info
    width = height = None
    camera = (episode.settings or {}).get('camera')
    if isinstance(camera, dict) and {'width', 'height'} <= camera.keys():
        width, height = int(camera['width']), int(camera['height'])
    elif info.message_counts.get(rec.LEFT_INFO):
        for _, _, msg in read_bag_messages(episode.path, [rec.LEFT_INFO]):  # the first one is enough
            width, height = int(msg.width), int(msg.height)
            break
    record = episode.record
    size = sum(f.stat().st_size for f in episode.path.iterdir() if f.is_file())
    return {
        'bag': str(episode.path),
        'seed': episode.seed,
        'expert': episode.expert,
        'duration_s': round(info.duration_ns / 1e9, 3),
        'frames': episode.frames,
        'image_width': width,
        'image_height': height,
        'distance_m': record.get('distance_m'),
        'collisions': record.get('collisions'),
        'reached_goal': record.get('reached_goal'),
        'format_version': info.format_version,
        'size_mb': round(size / 1e6, 2),
        'messages': dict(sorted(info.message_counts.items())),
        'problem': rec.storage_problem(info),  # None when the files look whole
    }


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Sums over `bag_summary` rows (unknown values count as 0, and are flagged)."""
    def total(key: str) -> float:
        return sum(r[key] or 0 for r in rows)
    return {
        'bags': len(rows),
        'worlds': len({r['seed'] for r in rows if r['seed'] is not None}),
        'frames': int(total('frames')),
        'duration_s': round(total('duration_s'), 3),
        'distance_m': round(total('distance_m'), 3),
        'collisions': int(total('collisions')),
        'goals_reached': sum(bool(r['reached_goal']) for r in rows),
        'size_mb': round(total('size_mb'), 2),
        'experts': sorted({r['expert'] for r in rows if r['expert']}),
        'complete_records': all(r['expert'] is not None for r in rows),
    }


# ---------------------------------------------------------------- reading

def read_bag_messages(bag: Path, topics: Iterable[str]) -> Iterator[tuple[str, int, Any]]:
    """rec.read_messages, with every failure of a truncated or corrupt file as one BagDataError."""
    messages = rec.read_messages(bag, topics)
    while True:
        try:
            item = next(messages)
        except StopIteration:
            return
        except rec.RecordingError as exc:
            raise BagDataError(f'{bag}: {exc}') from None
        except Exception as exc:  # rosbags, zstd and the CDR decoder each raise their own types on bad bytes
            raise BagDataError(f'{bag}: unreadable recording, truncated or corrupt '
                               f'({type(exc).__name__}: {exc})') from None
        yield item


class InstantPairer:
    """Groups messages of one instant by header stamp; `add` returns the group once complete."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = frozenset(topics)
        self.pending: dict[int, dict[str, Any]] = {}
        self.dropped = 0  # instants that never got all their topics
        self.completed = 0

    def add(self, topic: str, stamp: int, msg: Any) -> dict[str, Any] | None:
        parts = self.pending.setdefault(stamp, {})
        parts[topic] = msg  # a duplicate replaces the earlier message of that instant
        if len(parts) < len(self.topics):
            return None
        del self.pending[stamp]
        self.completed += 1
        stale = [s for s in self.pending if s < stamp - _PAIRING_WINDOW_NS]
        for s in stale:
            del self.pending[s]
        self.dropped += len(stale)
        return parts

    def finish(self) -> int:
        """Count what is still incomplete at the end of the bag; returns all dropped instants."""
        self.dropped += len(self.pending)
        self.pending.clear()
        return self.dropped


def strided_instants(bag: Path, pairer: InstantPairer, other_topics: Iterable[str], frame_stride: int,
                     on_other: Callable[[str, int, Any], None],
                     on_frame: Callable[[], None] | None = None) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Every `frame_stride`-th complete instant of the pairer's topics as (receive ns, stamp,
    messages by topic). Messages of `other_topics` go to `on_other(topic, receive ns, msg)` in
    bag order, so state they carry (a command, a mode) is current when an instant completes.
    `on_frame` is called for every complete instant, kept or not (a progress bar)."""
    for topic, time_ns, msg in read_bag_messages(bag, tuple(pairer.topics) + tuple(other_topics)):
        if topic not in pairer.topics:
            on_other(topic, time_ns, msg)
            continue
        stamp = rec.stamp_to_ns(msg.header.stamp)
        frame = pairer.add(topic, stamp, msg)
        if frame is None:
            continue
        if on_frame is not None:
            on_frame()
        if (pairer.completed - 1) % frame_stride == 0:
            yield time_ns, stamp, frame


def rgb_image(bag: Path, msg: Any, topic: str, stamp: int) -> np.ndarray:
    """HxWx3 view of an rgb8 Image message; other encodings and bad sizes name the bag and stamp."""
    if msg.encoding != 'rgb8':
        raise BagDataError(f'{bag}: {topic} at stamp {stamp} has encoding {msg.encoding!r}, expected rgb8')
    try:
        return rec.image_to_numpy(msg)
    except rec.RecordingError as exc:
        raise BagDataError(f'{bag}: {topic} at stamp {stamp}: {exc}') from None


def curvature_labels(v: np.ndarray, w: np.ndarray, turn_in_place_curvature: float | None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(curvature [1/m], defined) of expert labels (v, w); see the module docstring for the rule."""
    v, w = np.asarray(v, np.float64), np.asarray(w, np.float64)
    driving = np.abs(v) > SPEED_EPS_MPS
    turning = ~driving & (np.abs(w) > YAW_RATE_EPS_RPS)
    curvature = np.zeros(v.shape)
    curvature[driving] = w[driving] / v[driving]
    if turn_in_place_curvature is not None:
        curvature[turning] = np.copysign(turn_in_place_curvature, w[turning])
        return curvature, np.ones(v.shape, bool)
    return curvature, ~turning


class _PairStore:
    """The stereo pairs kept from one bag, decoded into arrays preallocated for `capacity` pairs.

    A 60 s bag at 15 Hz is ~400 MB of 320x240 pairs; lists would double it, and the pages of
    pairs never kept are never touched.
    """

    def __init__(self, bag: Path, capacity: int) -> None:
        self.bag, self.capacity, self.count = bag, capacity, 0
        self._left = self._right = None

    def add(self, frame: dict[str, Any], stamp: int) -> None:
        """Decode and keep the pair of one instant; sizes that do not match name the bag and stamp."""
        bag = self.bag
        left = rgb_image(bag, frame[rec.LEFT_IMAGE], rec.LEFT_IMAGE, stamp)
        right = rgb_image(bag, frame[rec.RIGHT_IMAGE], rec.RIGHT_IMAGE, stamp)
        if left.shape != right.shape:
            raise BagDataError(f'{bag}: at stamp {stamp} the left image is {left.shape[1]}x{left.shape[0]} '
                               f'but the right one is {right.shape[1]}x{right.shape[0]}')
        if self._left is None:
            self._left = np.empty((self.capacity, *left.shape), np.uint8)
            self._right = np.empty_like(self._left)
        elif left.shape != self._left.shape[1:]:
            first = self._left.shape
            raise BagDataError(f'{bag}: image size changes within the bag at stamp {stamp} '
                               f'({left.shape[1]}x{left.shape[0]}, first {first[2]}x{first[1]})')
        self._left[self.count], self._right[self.count] = left, right
        self.count += 1

    @property
    def left(self) -> np.ndarray:
        return self._left[:self.count]

    @property
    def right(self) -> np.ndarray:
        return self._right[:self.count]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the images, (0, 0) before the first pair."""
        return (self._left.shape[2], self._left.shape[1]) if self._left is not None else (0, 0)


@dataclass
class BagSteering:
    """The samples of one bag and what happened to its frames."""

    samples: Samples | None  # None: no frame of the bag is a label (human labels only)
    camera: dict[str, Any]
    stats: dict[str, Any]


def read_steering_bag(bag: str | os.PathLike, frame_stride: int = 1,
                      on_frame: Callable[[], None] | None = None) -> BagSteering:
    """Stereo pairs of one bag labelled with the expert's curvature and speed (see module docstring)."""
    episode = read_episode(bag)
    bag = episode.path
    if episode.seed is None:
        raise BagDataError(f'{bag}: no world seed (neither an episode record nor a seed_N directory name); '
                           'the split by world needs one')
    counts = episode.info.message_counts
    needed = (rec.LEFT_IMAGE, rec.RIGHT_IMAGE, rec.EXPERT_CMD_VEL)
    if min(counts.get(t, 0) for t in needed) == 0:
        raise BagDataError(f'{bag}: no frames (' + ', '.join(f'{counts.get(t, 0)} {t}' for t in needed) + ')')
    pairer = InstantPairer(needed)
    pairs = _PairStore(bag, math.ceil(counts[rec.LEFT_IMAGE] / frame_stride))
    stamps: list[int] = []
    speeds: list[float] = []
    yaw_rates: list[float] = []
    infos: dict[str, Any] = {}
    odom: list[tuple[int, float, float, float]] = []

    def on_other(topic: str, _: int, msg: Any) -> None:
        if topic == rec.ODOM:
            q = msg.pose.pose.orientation
            odom.append((rec.stamp_to_ns(msg.header.stamp), msg.pose.pose.position.x, msg.pose.pose.position.y,
                         2.0 * math.atan2(q.z, q.w)))
        else:
            infos.setdefault(topic, msg)

    others = (rec.LEFT_INFO, rec.RIGHT_INFO, rec.ODOM)
    for _, stamp, frame in strided_instants(bag, pairer, others, frame_stride, on_other, on_frame):
        twist = frame[rec.EXPERT_CMD_VEL].twist
        v, w = float(twist.linear.x), float(twist.angular.z)
        if not (math.isfinite(v) and math.isfinite(w)):
            raise BagDataError(f'{bag}: {rec.EXPERT_CMD_VEL} at stamp {stamp} is not a finite label '
                               f'(v={v}, w={w})')
        pairs.add(frame, stamp)
        stamps.append(stamp)
        speeds.append(v)
        yaw_rates.append(w)
    unpaired = pairer.finish()
    if not stamps:
        raise BagDataError(f'{bag}: no frames ({counts[rec.LEFT_IMAGE]} {rec.LEFT_IMAGE}, '
                           f'{counts[rec.RIGHT_IMAGE]} {rec.RIGHT_IMAGE} and {counts[rec.EXPERT_CMD_VEL]} '
                           f'{rec.EXPERT_CMD_VEL} share no header stamp)')
    n = len(stamps)
    curvature, defined = curvature_labels(np.array(speeds), np.array(yaw_rates), episode.turn_in_place_curvature)
    turning = (np.abs(np.array(speeds)) <= SPEED_EPS_MPS) & (np.abs(np.array(yaw_rates)) > YAW_RATE_EPS_RPS)
    # A slice when every label is defined: fancy indexing would copy the images.
    keep = slice(0, n) if defined.all() else np.flatnonzero(defined)
    kept = int(defined.sum())
    if not kept:
        raise BagDataError(f'{bag}: all {n} frames turn in place and the episode record gives no '
                           f'turn_in_place_curvature_per_m (expert {episode.expert!r}); no label is defined')
    ahead = _obstacle_ahead(episode, np.array(stamps, np.int64)[keep], odom)
    samples = Samples(left=pairs.left[keep], right=pairs.right[keep], curvature=curvature[keep].astype(np.float32),
                      world_seed=np.full(kept, episode.seed, np.int64),
                      speed=np.asarray(speeds, np.float32)[keep], obstacle_ahead=ahead)
    stats = {
        'bag': str(bag), 'seed': episode.seed, 'expert': episode.expert, 'frames_in_bag': counts[rec.LEFT_IMAGE],
        'paired': pairer.completed, 'unpaired': unpaired, 'samples': kept,
        'turn_in_place': int(turning.sum()), 'dropped_undefined_label': n - kept,
        'obstacle_ahead': ahead is not None,
    }
    return BagSteering(samples, _camera(episode, infos, *pairs.size), stats)


def drive_id(bag: Path) -> int:
    """The id of the drive a `dave record` segment belongs to (its UTC start as a number), else a name hash."""
    recording = recording_id(bag.name)
    if recording is not None:
        return recording
    return zlib.crc32(bag.name.encode())  # a bag from elsewhere: one bag, one drive


def read_human_steering_bag(bag: str | os.PathLike, frame_stride: int = 1,
                            on_frame: Callable[[], None] | None = None) -> BagSteering:
    """Stereo pairs of one `dave record` bag labelled with the person's command (module docstring).

    A bag the autopilot drove throughout, or without a stereo pair (the last segment of a recording
    can end between the two images of an instant), gives no samples: not an error, `build_steering`
    skips it and counts its frames.
    """
    episode = read_episode(bag)
    bag = episode.path
    counts = episode.info.message_counts
    driver = HumanDriver()
    pairer = InstantPairer((rec.LEFT_IMAGE, rec.RIGHT_IMAGE))
    pairs = _PairStore(bag, math.ceil(counts.get(rec.LEFT_IMAGE, 0) / frame_stride))
    speeds: list[float] = []
    yaw_rates: list[float] = []
    infos: dict[str, Any] = {}
    dropped = {'autopilot': 0, 'stale': 0, 'invalid': 0, 'standing': 0, 'turn_in_place': 0, 'reversing': 0}

    def on_other(topic: str, time_ns: int, msg: Any) -> None:
        if topic == rec.TELEOP_CMD_VEL:
            driver.teleop(time_ns, msg.twist.linear.x, msg.twist.angular.z)
        elif topic == rec.INTERVENTION:
            driver.intervention(msg.data)
        else:
            infos.setdefault(topic, msg)

    others = (rec.LEFT_INFO, rec.RIGHT_INFO, rec.TELEOP_CMD_VEL, rec.INTERVENTION)
    for time_ns, stamp, frame in strided_instants(bag, pairer, others, frame_stride, on_other, on_frame):
        label = driver.label(time_ns)  # the pair is complete now: its receive time
        if isinstance(label, str):
            dropped[label] += 1
            continue
        v, w = label
        why = _unusable_human_label(v, w)
        if why:
            dropped[why] += 1
            continue
        pairs.add(frame, stamp)
        speeds.append(v)
        yaw_rates.append(w)
    unpaired = pairer.finish()
    n = len(speeds)
    seed = drive_id(bag)
    v, w = np.asarray(speeds, np.float64), np.asarray(yaw_rates, np.float64)
    samples = None
    if n:
        samples = Samples(left=pairs.left, right=pairs.right, curvature=(w / v).astype(np.float32),
                          world_seed=np.full(n, seed, np.int64), speed=v.astype(np.float32))
    stats = {
        'bag': str(bag), 'seed': seed, 'expert': 'human', 'frames_in_bag': counts.get(rec.LEFT_IMAGE, 0),
        'paired': pairer.completed, 'unpaired': unpaired, 'samples': n,
        'turn_in_place': dropped['turn_in_place'],
        # No curvature exists for these (w / v undefined, or not finite); reversing is listed on its own.
        'dropped_undefined_label': dropped['turn_in_place'] + dropped['invalid'],
        'obstacle_ahead': False, 'intervention_recorded': counts.get(rec.INTERVENTION, 0) > 0,
        **{f'dropped_{k}': c for k, c in dropped.items()},
    }
    return BagSteering(samples, _camera(episode, infos, *pairs.size), stats)


def _unusable_human_label(v: float, w: float) -> str | None:
    """Why a person's command is no curvature label, or None."""
    if not (math.isfinite(v) and math.isfinite(w)):
        return 'invalid'  # the command node stopped the vehicle on it
    if v < -SPEED_EPS_MPS:
        return 'reversing'  # the network predicts the forward path
    if v <= SPEED_EPS_MPS:
        return 'turn_in_place' if abs(w) > YAW_RATE_EPS_RPS else 'standing'
    return None


def _camera(episode: BagEpisode, infos: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    """The recorded camera: the collect settings' StereoCameraConfig, else from CameraInfo."""
    camera = (episode.settings or {}).get('camera')
    if isinstance(camera, dict) and (camera.get('width'), camera.get('height')) == (width, height):
        return dict(camera)
    left, right = infos.get(rec.LEFT_INFO), infos.get(rec.RIGHT_INFO)
    if left is None or not left.k[0] > 0:
        return {'width': width, 'height': height}
    fx = float(left.k[0])
    camera = {'width': width, 'height': height, 'hfov_deg': math.degrees(2 * math.atan(width / 2 / fx))}
    if right is not None and right.p[3] != 0:
        camera['baseline_m'] = -float(right.p[3]) / fx
    return camera


def _obstacle_ahead(episode: BagEpisode, stamps: np.ndarray, odom: list[tuple[int, float, float, float]]
                    ) -> np.ndarray | None:
    """sim_dataset's privileged 'obstacle ahead' side per frame, from the regenerated world and /odom.

    None when the world cannot be rebuilt (no settings, no simulator package) or does not match
    the bag (its start pose differs from the first odometry: the world generator has changed).
    """
    world_settings = (episode.settings or {}).get('world')
    if world_settings is None or not odom:
        return None
    try:
        from dave_models.sim_dataset import obstacle_ahead
        from dave_sim.world import generate_world, world_config_from_mapping
    except ImportError:
        return None
    try:
        mapping = dict(world_settings)
        if isinstance(mapping.get('obstacle_weights'), list):  # settings hold asdict()'s pairs, YAML a mapping
            mapping['obstacle_weights'] = dict(mapping['obstacle_weights'])
        world = generate_world(int(episode.seed), world_config_from_mapping(mapping, f'{episode.path} settings'))
    except (ValueError, TypeError) as exc:
        logger.warning('%s: cannot rebuild world %s (%s); no obstacle_ahead', episode.path, episode.seed, exc)
        return None
    poses = np.array(odom)
    poses = poses[np.argsort(poses[:, 0], kind='stable')]
    if math.hypot(poses[0, 1] - world.start.x, poses[0, 2] - world.start.y) > 0.05:
        logger.warning('%s: world %d starts at (%.2f, %.2f) but the bag at (%.2f, %.2f); the world generator '
                       'changed since recording, so no obstacle_ahead', episode.path, episode.seed,
                       world.start.x, world.start.y, poses[0, 1], poses[0, 2])
        return None
    obstacles = np.array([(o.x, o.y, o.bounding_radius) for o in world.obstacles]).reshape(-1, 3)
    # Odometry runs at 50 Hz, frames at 15 Hz between its samples: interpolate the pose (<1 cm off).
    x = np.interp(stamps, poses[:, 0], poses[:, 1])
    y = np.interp(stamps, poses[:, 0], poses[:, 2])
    yaw = np.interp(stamps, poses[:, 0], np.unwrap(poses[:, 3]))
    return np.array([obstacle_ahead(obstacles, *pose) for pose in zip(x, y, yaw)], np.int8)


# ---------------------------------------------------------------- building a shard directory

# --label -> (reader of one bag, the label rule recorded in the shard manifest)
LABELS: dict[str, tuple[Callable[..., BagSteering], str]] = {
    'expert': (read_steering_bag, LABEL_RULE),
    'human': (read_human_steering_bag, HUMAN_LABEL_RULE),
}


def build_steering(data: str | os.PathLike, out: str | os.PathLike, frame_stride: int = 1, command: str = '',
                   progress: bool = True, label: str = 'expert') -> tuple[Manifest, list[dict[str, Any]]]:
    """Write one steering shard per bag of `data` into the new directory `out`, atomically.

    `label`: 'expert' (`dave collect` bags) or 'human' (`dave record` bags of a person driving).
    Returns the manifest and per-bag statistics. `out` must not exist or be empty; on any error it is left as it was.
    """
    from tqdm import tqdm

    if not isinstance(frame_stride, int) or isinstance(frame_stride, bool) or frame_stride < 1:
        raise BagDataError(f'--frame-stride must be an integer >= 1, got {frame_stride!r}')
    if label not in LABELS:
        raise BagDataError(f'--label must be one of {", ".join(LABELS)}, got {label!r}')
    read_bag, rule = LABELS[label]
    data, out = Path(data), Path(out)
    bags = find_bags(data)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):  # before reading any bag
        raise BagDataError(f'--out {out}: exists and is not an empty directory; choose a new one')
    total = sum(read_episode(b).frames for b in bags)
    source: dict[str, Any] = {'generator': 'dave_models.bag_dataset', 'command': command,
                              'data': str(data.resolve()), 'frame_stride': frame_stride, 'label': rule,
                              'bags': []}
    stats: list[dict[str, Any]] = []
    camera = None
    with building(out) as partial:
        writer = ShardWriter(partial, source)
        with tqdm(total=total, unit='frame', desc=f'{len(bags)} bags', disable=not progress,
                  dynamic_ncols=True) as bar:
            for bag in bags:
                bar.set_postfix_str(bag.name)
                part = read_bag(bag, frame_stride, on_frame=lambda: bar.update(1))
                relative = os.path.relpath(bag.resolve(), data.resolve())
                part.stats['bag'] = relative if not relative.startswith('..') else str(bag.resolve())
                stats.append(part.stats)
                if part.samples is None:
                    continue  # nobody drove it by hand: nothing to learn from this bag
                if camera is None:
                    camera = part.camera
                elif _camera_key(part.camera) != _camera_key(camera):
                    raise BagDataError(f'{bag}: camera {_camera_key(part.camera)} differs from the first bag\'s '
                                       f'{_camera_key(camera)}; one data set, one camera')
                bar.set_postfix_str(f'{bag.name}: compressing its shard')  # seconds per bag, not a hang
                try:
                    writer.add(part.samples)
                except DatasetError as exc:  # the shard's temporary path would mean nothing to the user
                    raise BagDataError(f'{bag}: {str(exc).split(": ", 1)[-1]}') from None
        if camera is None:
            raise BagDataError(_no_human_frames(data, stats))
        source['camera'] = camera
        source['bags'] = stats
        writer.source = source
        writer.close()
    return load_manifest(out), stats


def _no_human_frames(data: Path, stats: list[dict[str, Any]]) -> str:
    """The error when no bag of `data` has a frame a person drove."""
    autopilot = sum(s['dropped_autopilot'] for s in stats)
    stale = sum(s['dropped_stale'] for s in stats)
    standing = sum(s['dropped_standing'] for s in stats)
    hint = ''
    if not any(s['intervention_recorded'] for s in stats):
        hint = ('; no /dave/intervention was recorded, which the command node publishes: record with '
                'the stack running (dave record records it by default)')
    pairs = sum(s['paired'] for s in stats)
    return (f'{data}: no frame a person drove with a fresh teleop command ({pairs} stereo pairs: autopilot '
            f'drove {autopilot}, no fresh /teleop/cmd_vel {stale}, standing {standing}){hint}')


def _camera_key(camera: dict[str, Any]) -> tuple:
    return tuple(round(float(camera[k]), 6) if isinstance(camera.get(k), (int, float)) else None
                 for k in ('width', 'height', 'hfov_deg', 'baseline_m'))


# ---------------------------------------------------------------- shard directories

def shard_labels(manifest: Manifest) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray | None]]]:
    """(all curvature labels, per shard (curvature, speed or None)), without decoding any image.

    npz members load one at a time, so only the label arrays are decompressed; the shard hash is
    not checked here (training checks it).
    """
    parts = []
    for shard in manifest.shards:
        path = manifest.root / shard.file
        try:
            with np.load(path, allow_pickle=False) as npz:
                parts.append((npz['curvature'].astype(np.float64),
                              npz['speed'].astype(np.float64) if 'speed' in npz.files else None))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise BagDataError(f'{path}: not a readable shard ({type(exc).__name__}: {exc})') from None
    return np.concatenate([c for c, _ in parts]), parts


def shard_summary(root: str | os.PathLike, deadband: float = 0.05) -> dict[str, Any]:
    """`dave data info` of a steering shard directory: per shard samples, worlds and label stats."""
    manifest = load_manifest(root)
    rows = []
    for shard, (curvature, speed) in zip(manifest.shards, shard_labels(manifest)[1]):
        rows.append({'shard': shard.file, 'world_seeds': list(shard.world_seeds), 'samples': shard.num_samples,
                     **label_stats(curvature, deadband),
                     'speed_mean_mps': None if speed is None else round(float(speed.mean()), 3)})
    return {'data_id': manifest.data_id, 'image_width': manifest.image_width,
            'image_height': manifest.image_height, 'samples': manifest.num_samples,
            'worlds': len(manifest.world_seeds), 'generator': manifest.source.get('generator'),
            'shards': rows}


def label_stats(curvature: np.ndarray, deadband: float = 0.05) -> dict[str, float]:
    """Mean, std and left / straight / right shares of curvature labels (deadband in 1/m)."""
    curvature = np.asarray(curvature, np.float64)
    return {'curvature_mean': round(float(curvature.mean()), 4), 'curvature_std': round(float(curvature.std()), 4),
            'left': round(float(np.mean(curvature > deadband)), 3),
            'straight': round(float(np.mean(np.abs(curvature) <= deadband)), 3),
            'right': round(float(np.mean(curvature < -deadband)), 3)}
