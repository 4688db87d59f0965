"""Steering sample shards: write, validate, split by world, load for training.

A data set is a directory:

    manifest.json           format tag, version, data_id, image size, one entry per shard
    shard_00000.npz ...     left, right (N, H, W, 3) uint8 RGB; curvature (N,) float32 in 1/m
                            (+ = left); world_seed (N,) int64; optional: speed (N,) float32
                            m/s, obstacle_ahead (N,) int8 (+1 nearest obstacle ahead is on the
                            left, -1 on the right, 0 none; privileged, for evaluation only),
                            curvature_memoryless (N,) float32 (the reactive expert's choice
                            from this view alone), arc_free_m / arc_clearance_m (N, K) float32
                            (free length and clearance of the expert's K arcs; privileged,
                            auxiliary training targets), direction_fragile (N,) int8 (1 where the
                            expert's direction flips under a one-pixel perception error;
                            evaluation only)

The manifest lists the world seeds in each shard (sim_dataset writes one world per shard), and
the train/validation split is by world seed, never by frame: neighbouring frames of one drive
are near-duplicates, so a frame split would score validation on scenery already trained on.

`data_id` is derived from the shard bytes (sha256), so a checkpoint and a model sidecar name
exactly the data they were trained on, and loading detects a modified or truncated shard.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from dave_core import logs
from dave_core.atomic_file import atomic_write_bytes
from dave_core.preprocess import PreprocessSpec, crop_resize

FORMAT = 'dave-steering-shards'
VERSION = 1
MANIFEST = 'manifest.json'
REQUIRED_ARRAYS = ('left', 'right', 'curvature', 'world_seed')
OPTIONAL_ARRAYS = ('speed', 'obstacle_ahead', 'curvature_memoryless', 'arc_free_m', 'arc_clearance_m',
                   'direction_fragile')
ARC_ARRAYS = ('arc_free_m', 'arc_clearance_m')  # (N, K): one value per arc of the expert's fan
_PARTIAL = '.partial-'  # a data set being built: .<name>.partial-<pid>-<random> beside it


class DatasetError(ValueError):
    """A data set directory, manifest or shard is malformed; the message names the file."""


@dataclass(frozen=True)
class ShardInfo:
    file: str
    num_samples: int
    world_seeds: tuple[int, ...]
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest.json of a shard directory."""
    root: Path
    data_id: str
    image_height: int
    image_width: int
    shards: tuple[ShardInfo, ...]
    source: dict[str, Any] = field(default_factory=dict)  # how the data was made (free form)

    @property
    def num_samples(self) -> int:
        return sum(s.num_samples for s in self.shards)

    @property
    def world_seeds(self) -> tuple[int, ...]:
        return tuple(sorted({seed for s in self.shards for seed in s.world_seeds}))


@dataclass
class Samples:
    """Arrays of one shard, or of several concatenated."""
    left: np.ndarray
    right: np.ndarray
    curvature: np.ndarray
    world_seed: np.ndarray
    speed: np.ndarray | None = None
    obstacle_ahead: np.ndarray | None = None
    curvature_memoryless: np.ndarray | None = None
    arc_free_m: np.ndarray | None = None
    arc_clearance_m: np.ndarray | None = None
    direction_fragile: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.curvature.shape[0])


def data_id_of(shard_hashes: Iterable[str]) -> str:
    """Data set identity: a short hash over the shards' sha256 (order-independent)."""
    digest = hashlib.sha256('\n'.join(sorted(shard_hashes)).encode()).hexdigest()
    return f'steer-{digest[:16]}'


def validate_samples(samples: Samples, where: str) -> None:
    """Raise DatasetError naming `where` (a file) for the first problem in the arrays."""
    left, right = samples.left, samples.right
    for name, images in (('left', left), ('right', right)):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise DatasetError(f'{where}: {name} must be (N, H, W, 3) uint8, got '
                               f'{images.shape} {images.dtype}')
    if left.shape != right.shape:
        raise DatasetError(f'{where}: left {left.shape} and right {right.shape} sizes differ')
    n = left.shape[0]
    if n == 0:
        raise DatasetError(f'{where}: no samples')
    for name in ('curvature', 'world_seed', 'speed', 'obstacle_ahead', 'curvature_memoryless', 'direction_fragile'):
        array = getattr(samples, name)
        if array is not None and array.shape != (n,):
            raise DatasetError(f'{where}: {name} has shape {array.shape}, expected ({n},)')
    for name in ARC_ARRAYS:
        array = getattr(samples, name)
        if array is not None and (array.ndim != 2 or array.shape[0] != n):
            raise DatasetError(f'{where}: {name} has shape {array.shape}, expected ({n}, arcs)')
    for name in ('curvature', 'speed', 'curvature_memoryless') + ARC_ARRAYS:
        array = getattr(samples, name)
        if array is None:
            continue
        if not np.issubdtype(array.dtype, np.floating):
            raise DatasetError(f'{where}: {name} must be floating point, got {array.dtype}')
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise DatasetError(f'{where}: {name} has {bad} NaN/inf label(s), first at index '
                               f'{int(np.flatnonzero(~np.isfinite(array))[0])}')
    if samples.obstacle_ahead is not None and not np.isin(samples.obstacle_ahead, (-1, 0, 1)).all():
        raise DatasetError(f'{where}: obstacle_ahead must hold only -1, 0 or +1')
    if samples.direction_fragile is not None and not np.isin(samples.direction_fragile, (0, 1)).all():
        raise DatasetError(f'{where}: direction_fragile must hold only 0 or 1')
    if not np.issubdtype(samples.world_seed.dtype, np.integer):
        raise DatasetError(f'{where}: world_seed must be integer, got {samples.world_seed.dtype}')


class ShardWriter:
    """Writes one shard per `add` call, and the manifest on `close` (use as a context manager)."""

    def __init__(self, root: str | os.PathLike, source: dict[str, Any] | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        if (self.root / MANIFEST).exists() or any(self.root.glob('shard_*.npz')):
            raise DatasetError(f'{self.root}: already holds a data set; choose an empty directory')
        self.source = dict(source or {})
        self.shards: list[ShardInfo] = []
        self.image_size: tuple[int, int] | None = None
        self.closed = False

    def add(self, samples: Samples) -> ShardInfo:
        """Validate and write `samples` as the next shard."""
        name = f'shard_{len(self.shards):05d}.npz'
        validate_samples(samples, str(self.root / name))
        size = samples.left.shape[1:3]
        if self.image_size is None:
            self.image_size = size
        elif size != self.image_size:
            raise DatasetError(f'{self.root / name}: image size {size} differs from the first '
                               f'shard\'s {self.image_size}')
        arrays = {'left': samples.left, 'right': samples.right,
                  'curvature': samples.curvature.astype(np.float32),
                  'world_seed': samples.world_seed.astype(np.int64)}
        if samples.speed is not None:
            arrays['speed'] = samples.speed.astype(np.float32)
        if samples.obstacle_ahead is not None:
            arrays['obstacle_ahead'] = samples.obstacle_ahead.astype(np.int8)
        if samples.direction_fragile is not None:
            arrays['direction_fragile'] = samples.direction_fragile.astype(np.int8)
        for key in ('curvature_memoryless',) + ARC_ARRAYS:
            if getattr(samples, key) is not None:
                arrays[key] = getattr(samples, key).astype(np.float32)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        data = buffer.getvalue()
        atomic_write_bytes(self.root / name, data)
        info = ShardInfo(file=name, num_samples=len(samples),
                         world_seeds=tuple(int(s) for s in np.unique(samples.world_seed)),
                         sha256=hashlib.sha256(data).hexdigest())
        self.shards.append(info)
        return info

    def add_shard_file(self, shard: ShardInfo, data: bytes) -> ShardInfo:
        """Write the bytes of an already checked shard (from another data set) as the next shard."""
        if hashlib.sha256(data).hexdigest() != shard.sha256:
            raise DatasetError(f'{shard.file}: bytes do not match sha256 {shard.sha256[:12]}...')
        info = ShardInfo(f'shard_{len(self.shards):05d}.npz', shard.num_samples, shard.world_seeds, shard.sha256)
        atomic_write_bytes(self.root / info.file, data)
        self.shards.append(info)
        return info

    def close(self) -> Manifest:
        """Write manifest.json atomically; a directory without it is not a data set."""
        if not self.shards:
            raise DatasetError(f'{self.root}: no shards were written')
        height, width = self.image_size
        manifest = Manifest(root=self.root, data_id=data_id_of(s.sha256 for s in self.shards),
                            image_height=int(height), image_width=int(width),
                            shards=tuple(self.shards), source=self.source)
        document = {
            'format': FORMAT, 'version': VERSION, 'data_id': manifest.data_id,
            'image_height': manifest.image_height, 'image_width': manifest.image_width,
            'num_samples': manifest.num_samples,
            'shards': [{'file': s.file, 'num_samples': s.num_samples,
                        'world_seeds': list(s.world_seeds), 'sha256': s.sha256} for s in self.shards],
            'source': self.source,
        }
        atomic_write_bytes(self.root / MANIFEST, (json.dumps(document, indent=1) + '\n').encode())
        self.closed = True
        return manifest

    def __enter__(self) -> 'ShardWriter':
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self.closed:
            self.close()


def _remove_stale_partials(out: Path) -> None:
    # What a killed build left (its pid is gone); a live build's partial stays.
    for path in out.parent.glob(f'.{out.name}{_PARTIAL}*'):
        try:
            pid = int(path.name.rsplit(_PARTIAL, 1)[1].split('-')[0])
        except ValueError:
            continue
        if not Path(f'/proc/{pid}').exists():
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def building(out: str | os.PathLike, flag: str = '--out') -> Iterator[Path]:
    """A hidden folder beside `out` to write a data set into: renamed to `out` when the block
    ends normally, deleted when it raises (Ctrl-C included). So `out` holds a complete data set
    or nothing, and a failed or interrupted run can simply be repeated with the same command.

    `out` must not exist or be an empty directory (DatasetError naming `flag` otherwise).
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f'{flag} {out}: exists and is not an empty directory; choose a new one')
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f'{flag} {out}: cannot create its parent ({exc.strerror})') from None
    _remove_stale_partials(out)
    partial = out.parent / f'.{out.name}{_PARTIAL}{os.getpid()}-{uuid.uuid4().hex[:8]}'
    try:
        yield partial
        os.rename(partial, out)  # replaces an empty `out`; atomic on one file system
    except (DatasetError, OSError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        # Name the data set the user asked for, not the hidden folder that is gone now.
        if isinstance(exc, OSError):
            for name in ('filename', 'filename2'):
                if getattr(exc, name, None):
                    setattr(exc, name, os.fspath(getattr(exc, name)).replace(str(partial), str(out)))
            raise
        raise DatasetError(str(exc).replace(str(partial), str(out))) from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _require(document: dict, key: str, kind: type | tuple[type, ...], where: Path | str) -> Any:
    if key not in document:
        raise DatasetError(f'{where}: missing key {key!r}')
    value = document[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DatasetError(f'{where}: key {key!r} has the wrong type ({type(value).__name__})')
    return value


def load_manifest(root: str | os.PathLike) -> Manifest:
    """Parse and check `root/manifest.json` (shard files are checked when read)."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise DatasetError(f'{root}: no {MANIFEST}; not a dave steering data set')
    try:
        document = json.loads(path.read_text(encoding='utf-8'))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f'{path}: not valid JSON ({exc})') from None
    if not isinstance(document, dict):
        raise DatasetError(f'{path}: expected a JSON object')
    if document.get('format') != FORMAT:
        raise DatasetError(f'{path}: key \'format\' is {document.get("format")!r}, expected {FORMAT!r}')
    if document.get('version') != VERSION:
        raise DatasetError(f'{path}: key \'version\' is {document.get("version")!r}; this code reads '
                           f'version {VERSION}')
    shards = []
    for i, entry in enumerate(_require(document, 'shards', list, path)):
        where = f'{path} shards[{i}]'
        if not isinstance(entry, dict):
            raise DatasetError(f'{where}: expected an object')
        # Types checked, not converted: int('12') of a string would read worlds 1 and 2.
        for key, kind in (('file', str), ('num_samples', int), ('world_seeds', list), ('sha256', str)):
            _require(entry, key, kind, where)
        if entry['num_samples'] < 0:
            raise DatasetError(f'{where}: key \'num_samples\' is negative ({entry["num_samples"]})')
        seeds = entry['world_seeds']
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise DatasetError(f'{where}: key \'world_seeds\' must list non-negative integers, got {seeds!r}')
        shards.append(ShardInfo(file=entry['file'], num_samples=entry['num_samples'],
                                world_seeds=tuple(seeds), sha256=entry['sha256']))
        if Path(shards[-1].file).name != shards[-1].file or shards[-1].file in ('', '.', '..'):
            raise DatasetError(f'{where}: file {shards[-1].file!r} must be a bare file name')
    if not shards or sum(s.num_samples for s in shards) == 0:
        raise DatasetError(f'{path}: no samples')
    manifest = Manifest(root=root, data_id=_require(document, 'data_id', str, path),
                        image_height=_require(document, 'image_height', int, path),
                        image_width=_require(document, 'image_width', int, path),
                        shards=tuple(shards), source=_require(document, 'source', dict, path)
                        if document.get('source') is not None else {})
    expected = data_id_of(s.sha256 for s in shards)
    if manifest.data_id != expected:
        raise DatasetError(f'{path}: key \'data_id\' is {manifest.data_id!r} but the shard hashes '
                           f'give {expected!r}')
    return manifest


def merge_datasets(roots: Sequence[str | os.PathLike], out: str | os.PathLike) -> Manifest:
    """Concatenate data sets with disjoint world seeds into `out` (new or empty), shards unchanged.

    Shard bytes are copied as they are, so merging the outputs of `sim_dataset --seeds 0-47` and
    `--seeds 48-95` gives the data_id of one `--seeds 0-95` run. A key of the inputs' sources (the
    camera, the expert's arc fan, ...) is kept in the merged source when every input recorded
    the same value; each input's own source is kept under `merged_from`.
    """
    manifests = [load_manifest(root) for root in roots]
    if len(manifests) < 2:
        raise DatasetError('merge: give at least two data sets')
    seen: dict[int, Path] = {}
    for m in manifests:
        if (m.image_height, m.image_width) != (manifests[0].image_height, manifests[0].image_width):
            raise DatasetError(f'{m.root}: image size {m.image_width}x{m.image_height} differs from '
                               f'{manifests[0].root}\'s {manifests[0].image_width}x{manifests[0].image_height}')
        for seed in m.world_seeds:
            if seed in seen:
                raise DatasetError(f'{m.root}: world seed {seed} is also in {seen[seed]}')
            seen[seed] = m.root
    common = {key: value for key, value in manifests[0].source.items()
              if all(key in m.source and m.source[key] == value for m in manifests[1:])}
    source: dict[str, Any] = {**common, 'generator': 'dave_models.datasets.merge_datasets',
                              'merged_from': [{'dir': str(m.root), 'data_id': m.data_id, 'source': m.source}
                                              for m in manifests]}
    with building(out) as partial:
        writer = ShardWriter(partial, source)
        writer.image_size = (manifests[0].image_height, manifests[0].image_width)
        for m in manifests:
            for shard in m.shards:
                writer.add_shard_file(shard, read_shard_bytes(m, shard))
        writer.close()
    return load_manifest(out)


def read_shard_bytes(manifest: Manifest, shard: ShardInfo) -> bytes:
    """The bytes of one shard file, checked against the manifest's sha256."""
    path = manifest.root / shard.file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f'{path}: shard listed in {MANIFEST} is missing') from None
    if hashlib.sha256(data).hexdigest() != shard.sha256:
        raise DatasetError(f'{path}: sha256 differs from {MANIFEST}; the shard was modified or truncated')
    return data


def read_shard(manifest: Manifest, shard: ShardInfo) -> Samples:
    """Read one shard, checking its hash, arrays and labels against the manifest."""
    path = manifest.root / shard.file
    data = read_shard_bytes(manifest, shard)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            missing = [k for k in REQUIRED_ARRAYS if k not in npz.files]
            if missing:
                raise DatasetError(f'{path}: missing array {missing[0]!r}')
            arrays = {k: npz[k] for k in REQUIRED_ARRAYS + OPTIONAL_ARRAYS if k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DatasetError(f'{path}: not a readable .npz ({exc})') from None
    samples = Samples(**arrays)
    validate_samples(samples, str(path))
    if len(samples) != shard.num_samples:
        raise DatasetError(f'{path}: holds {len(samples)} samples, {MANIFEST} says {shard.num_samples}')
    if samples.left.shape[1:3] != (manifest.image_height, manifest.image_width):
        raise DatasetError(f'{path}: images are {samples.left.shape[1:3]}, {MANIFEST} says '
                           f'{(manifest.image_height, manifest.image_width)}')
    return samples



def split_by_world(world_seeds: Sequence[int], val_fraction: float = 0.2, seed: int = 0,
                   val_seeds: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
    """(train seeds, validation seeds): whole worlds only, never frames of one world on both sides.

    With `val_seeds` those are held out (they must exist); otherwise a seeded random
    `val_fraction` of the worlds, at least one, leaving at least one for training.
    """
    seeds = sorted(set(int(s) for s in world_seeds))
    if len(seeds) < 2:
        raise DatasetError(f'split by world needs at least 2 worlds (or recorded drives), the data has {len(seeds)}')
    if val_seeds is not None:
        held = sorted(set(int(s) for s in val_seeds))
        unknown = [s for s in held if s not in seeds]
        if unknown:
            raise DatasetError(f'validation world seed {unknown[0]} is not in the data '
                               f'(has {seeds[0]}..{seeds[-1]})')
        if len(held) >= len(seeds):
            raise DatasetError('validation seeds leave no world for training')
    else:
        if not 0.0 < val_fraction < 1.0:
            raise DatasetError(f'val_fraction must be in (0, 1), got {val_fraction}')
        count = min(len(seeds) - 1, max(1, int(round(val_fraction * len(seeds)))))
        held = sorted(np.random.default_rng(seed).permutation(seeds)[:count].tolist())
    return [s for s in seeds if s not in held], held


@dataclass
class CachedSet(Samples):
    """Samples whose pairs are crop-resized to network size: what training keeps in memory."""


def load_cached(manifest: Manifest, spec: PreprocessSpec, world_seeds: Iterable[int]) -> CachedSet:
    """Read the shards of `world_seeds` and keep them at network size (stage 1 of preprocessing).

    At 66x200 a pair is 79 KB instead of 460 KB at 320x240, so tens of thousands of frames fit.
    Optional arrays are kept only when every selected shard has them.
    """
    wanted = set(int(s) for s in world_seeds)
    parts: list[CachedSet] = []
    for shard in manifest.shards:
        if not wanted.intersection(shard.world_seeds):
            continue
        samples = read_shard(manifest, shard)
        keep = np.isin(samples.world_seed, list(wanted))
        optional = {name: getattr(samples, name)[keep] for name in OPTIONAL_ARRAYS
                    if getattr(samples, name) is not None}
        parts.append(CachedSet(
            left=np.stack([crop_resize(im, spec, 'left') for im in samples.left[keep]]),
            right=np.stack([crop_resize(im, spec, 'right') for im in samples.right[keep]]),
            curvature=samples.curvature[keep].astype(np.float32),
            world_seed=samples.world_seed[keep], **optional))
    if not parts:
        raise DatasetError(f'{manifest.root}: no shard holds world seeds {sorted(wanted)}')
    optional = {name: np.concatenate([getattr(p, name) for p in parts]) for name in OPTIONAL_ARRAYS
                if all(getattr(p, name) is not None for p in parts)}
    return CachedSet(left=np.concatenate([p.left for p in parts]),
                     right=np.concatenate([p.right for p in parts]),
                     curvature=np.concatenate([p.curvature for p in parts]),
                     world_seed=np.concatenate([p.world_seed for p in parts]), **optional)


def main(argv: list[str] | None = None) -> int:
    """`python -m dave_models.datasets merge --out DIR A B ...`: see merge_datasets."""
    import argparse
    import logging

    parser = argparse.ArgumentParser(prog='python -m dave_models.datasets',
                                     description='Tools for steering shard directories.')
    commands = parser.add_subparsers(dest='command', required=True)
    merge = commands.add_parser('merge', help='concatenate data sets with disjoint world seeds')
    merge.add_argument('inputs', nargs='+', help='data set directories')
    merge.add_argument('--out', required=True, help='new directory for the merged data set')
    args = parser.parse_args(argv)
    logs.configure()
    log = logging.getLogger(__name__)
    try:
        manifest = merge_datasets(args.inputs, args.out)
    except DatasetError as exc:
        log.error('%s', exc)
        return 2
    log.info('wrote %s: %d frames, %d worlds, data_id %s', args.out, manifest.num_samples,
             len(manifest.world_seeds), manifest.data_id)
    return 0


if __name__ == '__main__':
    from dave_core.entry import run_tool
    raise SystemExit(run_tool(main, 'python -m dave_models.datasets'))
