"""Contact sheets: a grid of evenly spaced frames with their steering labels, and label plots.

    dave data show out/collect/v1/episodes/seed_000003 --out seed3.png
    dave data show out/data/steering_bags_v1 --out shards.png

For a bag: each frame is the left image with the labelled path drawn on the ground (the arc of
the label curvature, projected through the recorded camera), next to the simulator's
ground-truth classes blended over it; below, the label over time: curvature, and the label's vs
the driven yaw rate (the gap is the DART noise), with collisions marked. For a bag of `dave record`
(a person driving, no expert) the label is the person's teleop command on the frames they drove
(dave_models.human_labels), and the time a person was in charge is shaded. For a shard directory:
the frames with their arcs, the label over the samples (world boundaries marked) and its
histogram. Drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dave_core import recording as rec
from dave_core.atomic_file import atomic_write
from dave_models.bag_dataset import BagDataError, curvature_labels, read_bag_messages, read_episode, rgb_image
from dave_models.human_labels import HumanDriver
from dave_models.datasets import load_manifest, read_shard

# GT class id -> RGB tint (0 traversable, 1 obstacle, 2 sky/unknown: ARCHITECTURE.md).
CLASS_COLOURS = np.array([(40, 200, 60), (230, 40, 40), (70, 120, 230)], np.uint8)
CLASS_NAMES = ('traversable', 'obstacle', 'sky/unknown')
ARC_COLOUR = (255, 230, 0)
ARC_LENGTH_M = 4.0
# Camera mount of dave_sim.camera.StereoCameraConfig, used when the data does not record one.
DEFAULT_MOUNT = {'mount_height_m': 0.30, 'mount_forward_m': 0.20, 'pitch_deg': 10.0, 'baseline_m': 0.12,
                 'hfov_deg': 85.0}


@dataclass
class SheetFrame:
    """One cell of the sheet."""

    image: np.ndarray  # HxWx3 uint8 RGB (left)
    curvature: float  # label, 1/m
    title: str
    labels: np.ndarray | None = None  # HxW uint8 GT classes, bags only


@dataclass
class Sheet:
    """Everything a contact sheet shows."""

    title: str
    frames: list[SheetFrame]
    camera: dict[str, Any]
    series: dict[str, Any] = field(default_factory=dict)  # plot data, by kind ('bag' or 'shards')


def evenly_spaced(count: int, n: int) -> list[int]:
    """`n` indices spread over range(count), first and last included (fewer if count < n)."""
    if count <= 0 or n <= 0:
        return []
    return sorted(set(np.linspace(0, count - 1, min(n, count)).round().astype(int).tolist()))


# ---------------------------------------------------------------- drawing

def arc_pixels(curvature: float, camera: dict[str, Any], width: int, height: int,
               length_m: float = ARC_LENGTH_M) -> np.ndarray:
    """(N, 2) pixel coordinates in the left image of the ground arc of `curvature`, from the truck.

    Flat ground at the wheels (z = 0), left camera `mount_height_m` above it, pitched down
    `pitch_deg` (dave_sim.camera conventions: optical x right, y down, z forward).
    """
    c = {**DEFAULT_MOUNT, **{k: v for k, v in camera.items() if isinstance(v, (int, float))}}
    k = float(curvature)
    # At most half a circle: beyond that a sharp arc comes back behind the camera.
    s = np.linspace(0.05, min(length_m, math.pi / abs(k)) if abs(k) > 1e-6 else length_m, 80)
    if abs(k) > 1e-6:
        x, y = np.sin(k * s) / k, (1.0 - np.cos(k * s)) / k
    else:
        x, y = s, np.zeros_like(s)
    pitch = math.radians(c['pitch_deg'])
    rel = np.stack([x - c['mount_forward_m'], y - c['baseline_m'] / 2, np.full_like(s, -c['mount_height_m'])])
    optical = np.array([[0.0, -1.0, 0.0],
                        [-math.sin(pitch), 0.0, -math.cos(pitch)],
                        [math.cos(pitch), 0.0, -math.sin(pitch)]]) @ rel
    optical = optical[:, optical[2] > 0.05]
    fx = (width / 2) / math.tan(math.radians(c['hfov_deg']) / 2)
    u = fx * optical[0] / optical[2] + (width - 1) / 2
    v = fx * optical[1] / optical[2] + (height - 1) / 2
    return np.stack([u, v], axis=1)


def draw_arc(image: np.ndarray, curvature: float, camera: dict[str, Any]) -> np.ndarray:
    """A copy of `image` with the label's path on the ground (yellow) and a centre tick."""
    out = np.ascontiguousarray(image).copy()
    height, width = out.shape[:2]
    thickness = max(1, round(width / 160))
    points = arc_pixels(curvature, camera, width, height)
    inside = (np.abs(points) < 4 * max(width, height)).all(axis=1)  # keep cv2's int32 coordinates sane
    if inside.sum() >= 2:
        cv2.polylines(out, [np.round(points[inside]).astype(np.int32)], False, ARC_COLOUR, thickness, cv2.LINE_AA)
    cv2.line(out, (width // 2, height - 1), (width // 2, height - 1 - height // 12), (255, 255, 255), 1)
    return out


def blend_labels(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The image with each pixel tinted by its GT class colour."""
    tint = CLASS_COLOURS[np.clip(labels, 0, len(CLASS_COLOURS) - 1)]
    return (image.astype(np.float32) * (1 - alpha) + tint.astype(np.float32) * alpha).astype(np.uint8)


# ---------------------------------------------------------------- reading

def bag_sheet(bag: str | os.PathLike, n_frames: int = 8) -> Sheet:
    """The contact sheet data of one bag: N evenly spaced frames and the whole label series."""
    episode = read_episode(bag)
    bag = episode.path
    count = episode.frames
    if count == 0:
        raise BagDataError(f'{bag}: no frames ({rec.LEFT_IMAGE} has no messages)')
    wanted = set(evenly_spaced(count, n_frames))
    # A person's recording: labels are their teleop commands while in charge, by receive time.
    human = (episode.info.message_counts.get(rec.EXPERT_CMD_VEL, 0) == 0
             and episode.info.message_counts.get(rec.TELEOP_CMD_VEL, 0) > 0)
    driver = HumanDriver()
    human_label: dict[int, tuple[float, float] | str] = {}
    in_charge: list[tuple[int, bool]] = []
    # Images of the chosen frames only (by their ordinal in the bag), GT and labels by header stamp.
    chosen: dict[int, np.ndarray] = {}
    received: dict[int, int] = {}  # the chosen frames' receive times: the bag's clock, not the camera's
    gt: dict[int, np.ndarray] = {}
    label: list[tuple[int, float, float]] = []
    applied: list[tuple[int, float, float]] = []
    collisions: list[tuple[int, int]] = []
    left_index = 0
    infos: dict[str, Any] = {}
    topics = (rec.LEFT_IMAGE, rec.GT_LABELS, rec.EXPERT_CMD_VEL, rec.CMD_VEL, rec.COLLISIONS, rec.LEFT_INFO,
              rec.TELEOP_CMD_VEL, rec.INTERVENTION)
    for topic, log_ns, msg in read_bag_messages(bag, topics):
        if topic == rec.EXPERT_CMD_VEL:
            label.append((rec.stamp_to_ns(msg.header.stamp), msg.twist.linear.x, msg.twist.angular.z))
        elif topic == rec.TELEOP_CMD_VEL:
            driver.teleop(log_ns, msg.twist.linear.x, msg.twist.angular.z)
            if human and not isinstance(driver.label(log_ns), str):
                label.append((log_ns, msg.twist.linear.x, msg.twist.angular.z))
        elif topic == rec.INTERVENTION:
            driver.intervention(msg.data)
            in_charge.append((log_ns, bool(msg.data)))
        elif topic == rec.CMD_VEL:  # a Twist has no stamp; collect logs it at its frame's stamp
            applied.append((log_ns, msg.linear.x, msg.angular.z))
        elif topic == rec.COLLISIONS:
            collisions.append((log_ns, int(msg.data)))
        elif topic == rec.LEFT_INFO:
            infos.setdefault(topic, msg)
        elif topic == rec.LEFT_IMAGE:
            stamp = rec.stamp_to_ns(msg.header.stamp)
            if left_index in wanted:
                chosen[stamp] = rgb_image(bag, msg, topic, stamp).copy()
                received[stamp] = log_ns
                if human:
                    human_label[stamp] = driver.label(log_ns)
            left_index += 1
        elif topic == rec.GT_LABELS:
            stamp = rec.stamp_to_ns(msg.header.stamp)
            if stamp in chosen and msg.encoding == 'mono8':  # GT follows its left image in the bag
                gt[stamp] = rec.image_to_numpy(msg).copy()
    start_ns = episode.info.start_ns
    label_by_stamp = {s: (v, w) for s, v, w in label}
    turn_k = episode.turn_in_place_curvature
    frames = []
    for stamp in sorted(chosen):
        by_person = human_label.get(stamp)
        if isinstance(by_person, tuple):
            label_by_stamp[stamp] = by_person
        v, w = label_by_stamp.get(stamp, (math.nan, math.nan))
        k = float(curvature_labels(np.array([v]), np.array([w]), turn_k)[0][0]) if math.isfinite(v) else math.nan
        labels = gt.get(stamp)
        if labels is not None and labels.shape != chosen[stamp].shape[:2]:
            labels = None
        why = f'({by_person})' if isinstance(by_person, str) else '(no label)'
        t = (received[stamp] - start_ns) / 1e9
        title = f't {t:.1f} s  k {k:+.2f} 1/m  v {v:.2f}' if math.isfinite(k) else f't {t:.1f} s  {why}'
        frames.append(SheetFrame(chosen[stamp], k, title, labels))
    camera = dict((episode.settings or {}).get('camera') or {})
    info = infos.get(rec.LEFT_INFO)
    if 'hfov_deg' not in camera and info is not None and info.k[0] > 0:
        camera['hfov_deg'] = math.degrees(2 * math.atan(info.width / 2 / info.k[0]))
    seed = f'world {episode.seed}' if episode.seed is not None else bag.name
    expert = f', {episode.expert} expert' if episode.expert else (', driven by a person' if human else '')
    title = f'{bag.name}: {seed}{expert}, {count} frames, {episode.info.duration_ns / 1e9:.1f} s'
    label_array = np.array(label, np.float64).reshape(-1, 3)
    label_array = label_array[np.argsort(label_array[:, 0], kind='stable')]
    curvature, defined = curvature_labels(label_array[:, 1], label_array[:, 2], turn_k)
    curvature[~defined] = np.nan
    series = {
        'kind': 'bag',
        'label_t': (label_array[:, 0] - start_ns) / 1e9, 'label_v': label_array[:, 1],
        'label_w': label_array[:, 2], 'curvature': curvature,
        'applied_t': (np.array([a[0] for a in applied]) - start_ns) / 1e9 if applied else np.zeros(0),
        'applied_w': np.array([a[2] for a in applied]),
        # The count is latched and published on change: each increase is a new contact episode.
        'collision_t': [(t - start_ns) / 1e9 for (t, c), (_, before) in zip(collisions, [(0, 0)] + collisions)
                        if c > before],
        'frame_t': [(received[s] - start_ns) / 1e9 for s in sorted(chosen)],
        'duration_s': episode.info.duration_ns / 1e9,
        'label_name': 'person' if human else 'label',
        # (start, end) of each span a person was in charge (/dave/intervention true)
        'person_spans': _spans([((t - start_ns) / 1e9, on) for t, on in in_charge], episode.info.duration_ns / 1e9),
    }
    return Sheet(title, frames, camera, series)


def _spans(changes: list[tuple[float, bool]], end_s: float) -> list[tuple[float, float]]:
    """(start, end) of the intervals a latched boolean was true, from its (time, value) messages."""
    spans, since = [], None
    for t, on in changes:
        if on and since is None:
            since = t
        elif not on and since is not None:
            spans.append((since, t))
            since = None
    if since is not None:
        spans.append((since, end_s))
    return spans


def shard_sheet(root: str | os.PathLike, n_frames: int = 8) -> Sheet:
    """The contact sheet data of a shard directory: N evenly spaced samples, all labels."""
    manifest = load_manifest(root)
    wanted = evenly_spaced(manifest.num_samples, n_frames)
    frames = []
    curvature, world, speed = [], [], []
    offset = 0
    for shard in manifest.shards:
        local = [i - offset for i in wanted if offset <= i < offset + shard.num_samples]
        samples = read_shard(manifest, shard)  # also checks the hash: show what training would read
        for i in local:
            seed = int(samples.world_seed[i])
            k = float(samples.curvature[i])
            frames.append(SheetFrame(samples.left[i], k, f'world {seed} #{i}  k {k:+.2f} 1/m'))
        curvature.append(samples.curvature)
        world.append(samples.world_seed)
        if samples.speed is not None:
            speed.append(samples.speed)
        offset += shard.num_samples
    camera = dict(manifest.source.get('camera') or {})
    title = (f'{Path(root).name}: {manifest.num_samples} samples, {len(manifest.world_seeds)} worlds, '
             f'{manifest.image_width}x{manifest.image_height}, {manifest.data_id}')
    series = {'kind': 'shards', 'curvature': np.concatenate(curvature), 'world_seed': np.concatenate(world),
              'speed': np.concatenate(speed) if len(speed) == len(manifest.shards) else None, 'frame_index': wanted}
    return Sheet(title, frames, camera, series)


# ---------------------------------------------------------------- the figure

def render_sheet(sheet: Sheet, out: str | os.PathLike, columns: int = 4) -> Path:
    """Draw `sheet` to a PNG at `out` (written atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if not sheet.frames:
        raise BagDataError(f'{sheet.title}: no frames to show')
    with_gt = any(f.labels is not None for f in sheet.frames)
    columns = min(columns, len(sheet.frames))
    rows = math.ceil(len(sheet.frames) / columns)
    height, width = sheet.frames[0].image.shape[:2]
    # Sizes in inches, so the images fill their cells whatever the camera's aspect ratio.
    cell_w, gap_w, margin_l, margin_r = 3.0, 0.08, 0.7, 0.7
    image_h = cell_w * height / width * (2 if with_gt else 1)
    title_h, header_h, plot_h, plot_gap, bottom_h = 0.25, 0.75, 2.2, 0.8, 0.5
    fig_w = margin_l + margin_r + columns * cell_w + (columns - 1) * gap_w
    fig_h = header_h + rows * (image_h + title_h) + 2 * (plot_h + plot_gap) + bottom_h
    fig = Figure(figsize=(fig_w, fig_h))
    FigureCanvasAgg(fig)
    fig.suptitle(sheet.title, fontsize=11, y=1 - 0.12 / fig_h, va='top')

    def box(left_in: float, top_in: float, w_in: float, h_in: float) -> list[float]:
        return [left_in / fig_w, 1 - (top_in + h_in) / fig_h, w_in / fig_w, h_in / fig_h]

    for i, frame in enumerate(sheet.frames):
        row, column = divmod(i, columns)
        ax = fig.add_axes(box(margin_l + column * (cell_w + gap_w), header_h + row * (image_h + title_h) + title_h,
                              cell_w, image_h))
        picture = draw_arc(frame.image, frame.curvature, sheet.camera) if math.isfinite(frame.curvature) \
            else frame.image
        if with_gt:
            below = blend_labels(frame.image, frame.labels) if frame.labels is not None \
                else np.zeros_like(frame.image)
            picture = np.concatenate([picture, below], axis=0)
        ax.imshow(picture, interpolation='nearest', aspect='auto')
        ax.set_title(f'{i + 1}: {frame.title}', fontsize=8, pad=3)
        ax.set_axis_off()
    handles = [Patch(color=np.array(ARC_COLOUR) / 255, label='label: path of the curvature on the ground')]
    if with_gt:
        handles += [Patch(color=CLASS_COLOURS[i] / 255, label=f'GT {name}') for i, name in enumerate(CLASS_NAMES)]
    fig.legend(handles=handles, loc='upper center', bbox_to_anchor=(0.5, 1 - 0.38 / fig_h), fontsize=8,
               ncol=len(handles), frameon=False)
    plots_top = header_h + rows * (image_h + title_h) + plot_gap
    top = fig.add_axes(box(margin_l, plots_top, fig_w - margin_l - margin_r, plot_h))
    bottom = fig.add_axes(box(margin_l, plots_top + plot_h + plot_gap, fig_w - margin_l - margin_r, plot_h))
    series = sheet.series
    if series['kind'] == 'bag':
        _plot_bag(top, bottom, series)
    else:
        _plot_shards(top, bottom, series)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    return atomic_write(out, lambda tmp: fig.savefig(tmp, format='png', dpi=80))


def _plot_bag(top: Any, bottom: Any, s: dict[str, Any]) -> None:
    name = s['label_name']
    for i, (start, end) in enumerate(s['person_spans']):
        for ax in (top, bottom):
            ax.axvspan(start, end, color='tab:purple', alpha=0.12, lw=0,
                       label='a person in charge' if i == 0 and ax is top else None)
    top.plot(s['label_t'], s['curvature'], '.' if name == 'person' else '-', ms=2, lw=1.2,
             label=f'{name} curvature')
    for i, t in enumerate(s['frame_t']):
        top.axvline(t, color='0.6', lw=0.8, ls=':')
        top.annotate(str(i + 1), (t, 1.0), xycoords=('data', 'axes fraction'), fontsize=7, ha='center', va='bottom')
    top.set(ylabel='curvature [1/m]', xlim=(0, max(float(s['label_t'].max(initial=0.0)), s['duration_s'], 1e-3)))
    top.legend(loc='lower left', fontsize=8)
    driven = 'driven /cmd_vel w' + (' (noisy)' if name == 'label' else '')
    bottom.plot(s['applied_t'], s['applied_w'], '-', lw=0.9, color='tab:orange', label=driven)
    style = '.' if name == 'person' else '-'
    bottom.plot(s['label_t'], s['label_w'], style, ms=2, lw=1.2, color='tab:blue', label=f'{name} w')
    speed = bottom.twinx()
    speed.plot(s['label_t'], s['label_v'], style, ms=2, lw=1.0, color='tab:green', label=f'{name} v')
    speed.set_ylabel('v [m/s]', color='tab:green')
    speed.set_ylim(0, max(float(np.max(s['label_v'], initial=0.0)) * 1.25, 0.1))
    for t in s['collision_t']:
        bottom.axvline(t, color='red', lw=1.2)
    bottom.set(xlabel='time in the bag [s]', ylabel='yaw rate [rad/s]', xlim=top.get_xlim())
    handles = bottom.get_legend_handles_labels()[0] + speed.get_legend_handles_labels()[0]
    bottom.legend(handles=handles, loc='lower left', fontsize=8, ncol=3,
                  title=f'{len(s["collision_t"])} collisions (red)' if s['collision_t'] else None,
                  title_fontsize=8)


def _plot_shards(top: Any, bottom: Any, s: dict[str, Any]) -> None:
    curvature, world = s['curvature'], s['world_seed']
    top.plot(np.arange(len(curvature)), curvature, '-', lw=0.8, label='label curvature')
    starts = np.flatnonzero(np.diff(world)) + 1
    for b in starts:
        top.axvline(b, color='0.5', lw=0.8)
    for i, index in enumerate(s['frame_index']):
        top.annotate(str(i + 1), (index, 1.0), xycoords=('data', 'axes fraction'), fontsize=7, ha='center',
                     va='bottom')
    top.set(xlabel='sample (grey lines: next world)', ylabel='curvature [1/m]', xlim=(0, max(len(curvature) - 1, 1)))
    bottom.hist(curvature, bins=41, color='tab:blue', alpha=0.8, label='curvature [1/m]')
    bottom.set(xlabel='curvature [1/m] (+ = left)', ylabel='samples')
    deadband = 0.05
    shares = (np.mean(curvature > deadband), np.mean(np.abs(curvature) <= deadband), np.mean(curvature < -deadband))
    bottom.set_title(f'left {shares[0]:.0%}, straight (|k| <= {deadband}) {shares[1]:.0%}, right {shares[2]:.0%}'
                     + (f'; speed mean {float(np.mean(s["speed"])):.2f} m/s' if s['speed'] is not None else ''),
                     fontsize=9)


def show(path: str | os.PathLike, out: str | os.PathLike, n_frames: int = 8) -> Path:
    """Contact sheet of a bag or a steering shard directory, written to the PNG `out`."""
    from dave_models.bag_dataset import is_bag, is_collect_dir, is_shard_dir

    path = Path(path)
    if is_bag(path):
        sheet = bag_sheet(path, n_frames)
    elif is_shard_dir(path):
        sheet = shard_sheet(path, n_frames)
    elif is_collect_dir(path):
        first = sorted(p for p in (path / 'episodes').iterdir() if is_bag(p))
        hint = f', e.g. {first[0]}' if first else ''
        raise BagDataError(f'{path} is a dave collect directory; show one of its bags{hint}')
    else:
        raise BagDataError(f'{path}: neither a bag (metadata.yaml) nor a steering shard directory (manifest.json)')
    return render_sheet(sheet, out)
